import { type Clock, systemClock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { type EventBus, nullEventBus } from '../observe/events.ts';
import { trackThrottle } from '../observe/pipeline-events.ts';
import { formatReply, reply } from '../smtp/reply.ts';
import type {
  Agent,
  AgentEventName,
  AgentSession,
  AuthEvent,
  ConnectEvent,
  EndOfDataEvent,
  EndOfHeadersEvent,
  HeaderOutcome,
  HeaderRemoval,
  HeaderVerdict,
  HeloEvent,
  MailEvent,
  Outcome,
  RcptEvent,
  Reject,
} from './types.ts';

export interface AgentPipelineOptions {
  readonly agents: ReadonlyArray<Agent>;
  readonly logger: Logger;
  /** An agent that throws refuses with 451 4.7.0 instead of being skipped. */
  readonly failClosed?: boolean;
  /** A THROTTLE tracking event whenever an agent tarpits a command or refuses it with a 4xx. */
  readonly events?: EventBus;
  readonly clock?: Clock;
}

const FAILED: Reject = {
  action: 'reject',
  reply: reply(451, '4.7.0', 'Temporary local problem (agent failure); try again later'),
};

const NOTHING: Outcome = { delayMs: 0 };

/**
 * Runs the configured agents in order for each event. The first `reject` ends the event; tarpits
 * add up to the longest one asked for; header directives are collected from every agent. An agent
 * that throws (or returns something that is not a verdict) is logged and, unless the pipeline
 * fails closed, skipped: a broken agent never crashes the session.
 */
export class AgentPipeline {
  readonly #agents: ReadonlyArray<Agent>;
  readonly #logger: Logger;
  readonly #failClosed: boolean;
  readonly #events: EventBus;
  readonly #clock: Clock;

  constructor(options: AgentPipelineOptions) {
    this.#agents = options.agents;
    this.#logger = options.logger;
    this.#failClosed = options.failClosed ?? false;
    this.#events = options.events ?? nullEventBus;
    this.#clock = options.clock ?? systemClock;
  }

  /** An empty pipeline: every event continues. */
  static none(logger: Logger): AgentPipeline {
    return new AgentPipeline({ agents: [], logger });
  }

  get agents(): ReadonlyArray<Agent> {
    return this.#agents;
  }

  connect(event: ConnectEvent): Promise<Outcome> {
    return this.#run('connect', event);
  }
  helo(event: HeloEvent): Promise<Outcome> {
    return this.#run('helo', event);
  }
  auth(event: AuthEvent): Promise<Outcome> {
    return this.#run('auth', event);
  }
  mail(event: MailEvent): Promise<Outcome> {
    return this.#run('mail', event);
  }
  rcpt(event: RcptEvent): Promise<Outcome> {
    return this.#run('rcpt', event);
  }
  /** Header removals are refused here: the header section is already stored. */
  endOfData(event: EndOfDataEvent): Promise<HeaderOutcome> {
    return this.#edits('endOfData', event, false);
  }

  endOfHeaders(event: EndOfHeadersEvent): Promise<HeaderOutcome> {
    return this.#edits('endOfHeaders', event, true);
  }

  async #edits(
    name: 'endOfHeaders' | 'endOfData',
    event: EndOfHeadersEvent | EndOfDataEvent,
    removals: boolean,
  ): Promise<HeaderOutcome> {
    const addHeaders: string[] = [];
    const removeHeaders: HeaderRemoval[] = [];
    const outcome = await this.#run(name, event, (verdict) => {
      if (verdict.action !== 'editHeaders') return false;
      if (!removals && (verdict.removeHeaders?.length ?? 0) > 0) return false;
      for (const h of verdict.addHeaders ?? []) addHeaders.push(h);
      for (const r of verdict.removeHeaders ?? []) removeHeaders.push(r);
      return true;
    });
    return { ...outcome, addHeaders, removeHeaders };
  }

  async #run(
    name: AgentEventName,
    event: { readonly session: AgentSession },
    extra?: (verdict: HeaderVerdict) => boolean,
  ): Promise<Outcome> {
    const outcome = await this.#verdicts(name, event, extra);
    // A broken agent's 451 (failClosed) is a local problem, not throttling.
    const later = outcome.reject && outcome.reject !== FAILED && outcome.reject.reply.code < 500;
    if ((outcome.delayMs > 0 || later) && this.#events !== nullEventBus) {
      this.#throttled(name, event, outcome);
    }
    return outcome;
  }

  #throttled(name: AgentEventName, event: { readonly session: AgentSession }, outcome: Outcome): void {
    const e = event as { session: AgentSession; sender?: unknown; recipient?: unknown };
    const refusal = outcome.reject ? formatReply(outcome.reject.reply).trimEnd() : undefined;
    const reasons = [
      ...(outcome.delayMs > 0 ? [`tarpit ${outcome.delayMs} ms`] : []),
      ...(refusal ? [refusal] : []),
    ];
    trackThrottle(this.#events, {
      time: this.#clock.now(),
      stage: name,
      session: e.session,
      ...(typeof e.sender === 'string' ? { sender: e.sender } : {}),
      ...(typeof e.recipient === 'string' ? { recipient: e.recipient } : {}),
      reason: reasons.join('; '),
      ...(refusal ? { status: refusal } : {}),
    });
  }

  async #verdicts(
    name: AgentEventName,
    event: { readonly session: AgentSession },
    extra?: (verdict: HeaderVerdict) => boolean,
  ): Promise<Outcome> {
    let delayMs = 0;
    for (const agent of this.#agents) {
      const handler = agent[name] as ((e: typeof event) => unknown) | undefined;
      if (typeof handler !== 'function') continue;
      let verdict: unknown;
      try {
        verdict = await handler.call(agent, event);
      } catch (error) {
        this.#logger.error(
          { err: error, agent: agent.name, event: name, session: event.session.id },
          'agent failed',
        );
        if (this.#failClosed) return { reject: FAILED, delayMs };
        continue;
      }
      if (verdict === undefined || verdict === null) continue;
      const v = verdict as HeaderVerdict;
      if (v.action === 'continue') continue;
      if (v.action === 'reject' && isReply(v.reply)) return { reject: v, delayMs };
      if (v.action === 'tarpit' && Number.isFinite(v.delayMs)) {
        delayMs = Math.max(delayMs, Math.max(0, v.delayMs));
        continue;
      }
      if (extra?.(v)) continue;
      this.#logger.error(
        { agent: agent.name, event: name, session: event.session.id, verdict: v.action },
        'agent returned an invalid verdict',
      );
      if (this.#failClosed) return { reject: FAILED, delayMs };
    }
    return delayMs === 0 ? NOTHING : { delayMs };
  }
}

function isReply(r: unknown): boolean {
  if (typeof r !== 'object' || r === null) return false;
  const { code, lines } = r as { code?: unknown; lines?: unknown };
  return typeof code === 'number' && code >= 400 && code <= 599 && Array.isArray(lines);
}
