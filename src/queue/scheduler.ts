import type { Clock } from '../core/clock.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { AttemptResult, DeliveryAgent } from '../delivery/types.ts';
import { queueName } from './queue-name.ts';
import type { RetryPolicy } from './retry-policy.ts';
import type {
  DeliveryJob,
  NextHop,
  QueuedMessage,
  QueuedRecipient,
  QueueStore,
  RecipientOutcome,
  RecipientRef,
} from './types.ts';

export interface DeliverySchedulerOptions {
  store: QueueStore;
  agents: ReadonlyArray<DeliveryAgent>;
  clock: Clock;
  logger?: Logger;
  retryPolicy: (hop: NextHop['type']) => RetryPolicy;
  /** Jobs running at once per agent: one figure for all, or one per next-hop type. */
  concurrency: number | ((hop: NextHop['type']) => number);
  /** Longest sleep between looks at the queue, ms: notices clock jumps and outside changes. */
  pollInterval?: number;
  /**
   * Called once a job's outcomes are durable; the notifications they call for (an NDR for a
   * failure, a success DSN) are pending in the store by then, so this is where the notifier wakes.
   */
  onRecorded?: (outcomes: ReadonlyArray<{ ref: RecipientRef; outcome: RecipientOutcome }>) => void;
  /**
   * Called right before each job goes to its agent (its message is in the store's in-flight
   * journal by then): fault tests install a hook that crashes the process here.
   */
  beforeDelivery?: (job: DeliveryJob) => void | Promise<void>;
  /** Called once per job with every recipient's outcome, before they are recorded (tracking). */
  onJobOutcomes?: (
    message: QueuedMessage,
    results: ReadonlyArray<{ recipient: QueuedRecipient; outcome: RecipientOutcome }>,
  ) => void;
}

/**
 * Moves due recipients to their delivery agent and records what happened. One loop per agent;
 * it claims as many jobs as it has free slots, sleeps until the next recipient is due (or until
 * `wake()`), and never lets an agent's failure escape.
 */
export class DeliveryScheduler {
  readonly #o: Required<Omit<DeliverySchedulerOptions, 'onRecorded' | 'onJobOutcomes' | 'beforeDelivery'>> &
    Pick<DeliverySchedulerOptions, 'onRecorded' | 'onJobOutcomes' | 'beforeDelivery'>;
  readonly #running = new Map<DeliveryAgent, number>();
  readonly #inflight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;
  #pumping = false;
  #again = false;

  constructor(options: DeliverySchedulerOptions) {
    this.#o = { pollInterval: 1000, logger: silentLogger, ...options };
    for (const agent of options.agents) this.#running.set(agent, 0);
  }

  start(): void {
    this.#stopped = false;
    this.wake();
  }

  /** Look at the queue now (a message was just committed, or a test moved the clock). */
  wake(): void {
    this.#fullLook = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    // Wakes within one turn of the event loop (many jobs finishing, many messages committed)
    // become one look at the queue, which then claims for every free slot at once.
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      if (this.#pumping) this.#again = true;
      else if (!this.#stopped) this.#pumpDone = this.#pump();
    });
  }

  #wakeScheduled = false;
  /** The look at the queue in progress, so stop() can wait for the claim it may be reading. */
  #pumpDone: Promise<void> = Promise.resolve();
  /** Jobs claimed ahead of a free slot, per agent (their recipients are already claimed). */
  readonly #ready = new Map<DeliveryAgent, DeliveryJob[]>();
  /**
   * Per-queue limits (agents with maxConcurrentJobs): jobs claimed and not yet attempted, ready
   * or running, per queue name. A claim gives a queue only the room its limit leaves.
   */
  readonly #perQueue = new Map<string, number>();
  /**
   * An agent whose last full claim found less than it asked for: when it was made. Every row due
   * by then was claimed or passed over (its queue was full), so until something new happens
   * (a commit or a wake from outside, a row coming due) only the slots given back since can
   * have work: claims ask for that many, and the sleep waits for rows due after this time.
   */
  readonly #shortSince = new Map<DeliveryAgent, number>();
  /** Jobs of an agent that finished since its last claim. */
  readonly #freed = new Map<DeliveryAgent, number>();
  /** A wake from outside (or the timer) came since the last look: claims look at everything due. */
  #fullLook = true;

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#pumpDone;
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  #slots(agent: DeliveryAgent): number {
    const c = this.#o.concurrency;
    return typeof c === 'number' ? c : c(agent.hopType);
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    clearTimeout(this.#timer);
    try {
      do {
        this.#again = false;
        const fullLook = this.#fullLook;
        this.#fullLook = false;
        for (const agent of this.#o.agents) {
          const slots = this.#slots(agent);
          let free = slots - (this.#running.get(agent) ?? 0);
          if (free <= 0 || this.#stopped) continue;
          // Claims are read a slot-full at a time and kept ready here: one query per
          // `concurrency` deliveries instead of one per freed slot.
          const ready = this.#ready.get(agent) ?? [];
          if (ready.length < free) ready.push(...(await this.#claim(agent, slots, fullLook)));
          // Jobs claimed while stop() began stay ready (and claimed) rather than start after it.
          for (; free > 0 && ready.length > 0 && !this.#stopped; free--) this.#run(agent, ready.shift()!);
          this.#ready.set(agent, ready);
        }
      } while (this.#again && !this.#stopped);
    } catch (error) {
      this.#o.logger.error({ err: error }, 'delivery scheduler could not read the queue');
    } finally {
      this.#pumping = false;
    }
    if (this.#stopped) return;
    // A wake that came while the last claim was being read must not wait for the timer.
    if (this.#again) return this.#schedule();
    await this.#sleep();
  }

  /**
   * Due jobs for an agent. With per-queue limits, a queue at its limit is passed over (its rows
   * stay pending), so one busy destination cannot take every slot of the agent.
   */
  async #claim(agent: DeliveryAgent, slots: number, fullLook: boolean): Promise<DeliveryJob[]> {
    const { maxConcurrentJobs } = agent;
    const now = this.#o.clock.now();
    if (!maxConcurrentJobs) return this.#o.store.claimDue({ now, limit: slots, hopType: agent.hopType });
    const shortSince = this.#shortSince.get(agent);
    // After a short claim, a freed slot's own queue is the only one that can have rows waiting
    // for it: asking for just that many keeps a completion from re-reading a full queue's
    // backlog each time (the rows passed over count against the claim's cap).
    const full = fullLook || shortSince === undefined;
    const limit = full ? slots : Math.min(slots, this.#freed.get(agent) ?? 0);
    this.#freed.set(agent, 0);
    if (limit <= 0) return [];
    const jobs = await this.#o.store.claimDue({
      now,
      limit,
      hopType: agent.hopType,
      queueRoom: (queue, hop) => maxConcurrentJobs.call(agent, hop) - (this.#perQueue.get(queue) ?? 0),
    });
    for (const job of jobs) this.#countQueue(job, +1);
    if (full) {
      if (jobs.length < limit) this.#shortSince.set(agent, now);
      else this.#shortSince.delete(agent);
    }
    return jobs;
  }

  #countQueue(job: DeliveryJob, delta: number): void {
    const hop = job.recipients[0]?.nextHop;
    if (!hop) return;
    const queue = queueName(hop);
    const n = (this.#perQueue.get(queue) ?? 0) + delta;
    if (n > 0) this.#perQueue.set(queue, n);
    else this.#perQueue.delete(queue);
  }

  async #sleep(): Promise<void> {
    let delay = this.#o.pollInterval;
    try {
      // Only hop types with an agent count: a due recipient nobody can deliver (the Unreachable
      // queue, a hop type without agent) would otherwise make every sleep zero.
      for (const agent of this.#o.agents) {
        if ((this.#running.get(agent) ?? 0) >= this.#slots(agent)) continue;
        // Rows due before a short claim are in full queues: a finishing job of theirs wakes us.
        const after = this.#shortSince.get(agent);
        const due = await this.#o.store.nextDueAt(agent.hopType, after === undefined ? {} : { after });
        if (due !== undefined) delay = Math.min(delay, Math.max(0, due - this.#o.clock.now()));
      }
    } catch {
      // Keep the poll interval.
    }
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.wake(), delay);
    this.#timer.unref();
  }

  #run(agent: DeliveryAgent, job: DeliveryJob): void {
    this.#running.set(agent, (this.#running.get(agent) ?? 0) + 1);
    // The slot is free as soon as the attempt is over; recording its outcome (a batched
    // transaction) goes on in the background. The recipients stay claimed until it is recorded,
    // so nobody attempts them twice meanwhile.
    const task = this.#attempt(agent, job)
      .then((outcomes) => {
        this.#running.set(agent, (this.#running.get(agent) ?? 1) - 1);
        if (agent.maxConcurrentJobs) {
          this.#countQueue(job, -1);
          this.#freed.set(agent, (this.#freed.get(agent) ?? 0) + 1);
        }
        this.#schedule();
        return this.#record(job.message.id, outcomes);
      })
      .finally(() => {
        this.#inflight.delete(task);
      });
    this.#inflight.add(task);
  }

  async #attempt(
    agent: DeliveryAgent,
    job: DeliveryJob,
  ): Promise<Array<{ ref: RecipientRef; outcome: RecipientOutcome }>> {
    const { message } = job;
    let results: ReadonlyMap<number, AttemptResult>;
    try {
      await this.#o.beforeDelivery?.(job);
      results = await agent.deliver(job, () => this.#o.store.readBody(message.id));
    } catch (error) {
      this.#o.logger.error({ err: error, queueId: message.id }, 'delivery agent failed');
      const response = `451 4.3.0 ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
      results = new Map(job.recipients.map((r) => [r.index, { kind: 'transient', response } as const]));
    }
    const now = this.#o.clock.now();
    const outcomes: Array<{ ref: RecipientRef; outcome: RecipientOutcome }> = [];
    for (const recipient of job.recipients) {
      const result = results.get(recipient.index) ?? {
        kind: 'transient' as const,
        response: '451 4.3.0 No result from the delivery agent',
      };
      const outcome = this.#toOutcome(message, recipient, result, now);
      outcomes.push({ ref: { messageId: message.id, index: recipient.index }, outcome });
    }
    // An observer's failure must not leave the agent's slot taken and the recipients claimed.
    try {
      this.#o.onJobOutcomes?.(
        message,
        job.recipients.map((recipient, i) => ({ recipient, outcome: outcomes[i]!.outcome })),
      );
    } catch (error) {
      this.#o.logger.error({ err: error, queueId: message.id }, 'outcome observer failed');
    }
    return outcomes;
  }

  async #record(
    messageId: string,
    outcomes: Array<{ ref: RecipientRef; outcome: RecipientOutcome }>,
  ): Promise<void> {
    try {
      await this.#o.store.recordOutcomes(outcomes);
    } catch (error) {
      // The recipients stay pending in the store and will be tried again: at least once, never lost.
      this.#o.logger.error({ err: error, queueId: messageId }, 'could not record delivery outcomes');
      return;
    }
    try {
      this.#o.onRecorded?.(outcomes);
    } catch (error) {
      this.#o.logger.error({ err: error, queueId: messageId }, 'onRecorded hook failed');
    }
  }

  #toOutcome(
    message: QueuedMessage,
    recipient: QueuedRecipient,
    result: AttemptResult,
    now: number,
  ): RecipientOutcome {
    switch (result.kind) {
      case 'delivered':
        return { kind: 'delivered', response: result.response };
      case 'permanent':
        return { kind: 'failed', response: result.response };
      case 'transient':
        // Failed as any permanent failure is, so the store sets the failure notification (the
        // NDR says 4.4.7) in the same transaction.
        if (now >= message.expiresAt) {
          return { kind: 'failed', response: `550 4.4.7 Message expired: ${result.response}` };
        }
        return {
          kind: 'deferred',
          response: result.response,
          nextAttemptAt: this.#o.retryPolicy(recipient.nextHop.type).nextAttemptAt(recipient, now),
        };
    }
  }
}
