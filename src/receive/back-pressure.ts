/**
 * Back pressure (Exchange's name): when the queue holds more work than the node can get through,
 * mail from anonymous senders is refused with `452 4.3.1 Insufficient system resources` at MAIL,
 * so they keep it and retry later, while authenticated submission and partner or server
 * connections go on. Hysteresis keeps it from flapping: it turns on at the high watermark and off
 * only below the low one, by itself, without a restart.
 *
 * The queue length is sampled every `checkInterval` (as Exchange's resource monitor samples),
 * never counted per command: a MAIL costs one comparison with the last sample.
 */
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { type EventBus, track } from '../observe/events.ts';
import { type Reply, reply } from '../smtp/reply.ts';

export interface BackPressureSettings {
  /** Recipients due for delivery and not delivered yet (the backlog) at which pressure starts. */
  readonly highWatermark: number;
  /** Pressure ends once the count is below this. */
  readonly lowWatermark: number;
  /** ms between samples of the queue length. */
  readonly checkInterval: number;
}

/** Who is asking to send, as the receive session knows it at MAIL. */
export interface MailRequester {
  readonly connector: string;
  readonly remoteIp: string;
  readonly helo?: string | undefined;
  readonly sender: string;
  /** Set once the session has authenticated. */
  readonly authUser?: string | undefined;
  /** The permission group a verified client certificate granted (partners or servers). */
  readonly certificateGroup?: string | undefined;
}

/** A MAIL refused under back pressure: the reply, and why (for the session's protocol log). */
export interface BackPressureRefusal {
  readonly reply: Reply;
  readonly reason: string;
}

/** What a receive session asks at MAIL; absent from the context, nothing is ever refused. */
export interface BackPressureGate {
  /** The refusal for this requester now, or undefined to go on. */
  refusal(requester: MailRequester): BackPressureRefusal | undefined;
}

export const BACK_PRESSURE_REPLY: Reply = reply(452, '4.3.1', 'Insufficient system resources');

/**
 * The backlog: recipients due now and not delivered yet, counted up to `atMost`
 * (QueueStore.countDueBacklog). Recipients waiting for a retry are not work the node can do now:
 * counting them would let one destination that is down (a million deferred messages) stop all
 * inbound mail, which is not what Exchange's back pressure on the submission queue does either.
 */
export type QueueCounter = (atMost: number) => Promise<number>;

export interface BackPressureOptions extends BackPressureSettings {
  readonly count: QueueCounter;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events?: EventBus;
}

export class BackPressureMonitor implements BackPressureGate {
  readonly #o: BackPressureOptions;
  #queued = 0;
  #engaged = false;
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> | undefined;

  constructor(options: BackPressureOptions) {
    if (options.lowWatermark > options.highWatermark)
      throw new RangeError('back pressure: lowWatermark must not be above highWatermark');
    this.#o = options;
  }

  /** Takes a first sample, then one every checkInterval. */
  async start(): Promise<void> {
    await this.sample();
    this.#timer = setInterval(() => void this.sample(), this.#o.checkInterval);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** True while anonymous mail is refused. */
  get engaged(): boolean {
    return this.#engaged;
  }

  /** The queue length at the last sample. */
  get queued(): number {
    return this.#queued;
  }

  /** Reads the queue length now and applies the watermarks; one sample at a time. */
  sample(): Promise<void> {
    this.#sampling ??= this.#sample().finally(() => {
      this.#sampling = undefined;
    });
    return this.#sampling;
  }

  async #sample(): Promise<void> {
    let queued: number;
    try {
      // Counting past the high watermark tells nothing more, and bounds the cost of a sample.
      queued = await this.#o.count(this.#o.highWatermark + 1);
    } catch (error) {
      // A queue that cannot be read keeps the last state; the commit itself reports a broken store.
      this.#o.logger.warn({ err: error }, 'back pressure: queue length not available');
      return;
    }
    this.#queued = queued;
    const { highWatermark, lowWatermark } = this.#o;
    if (!this.#engaged && queued >= highWatermark) {
      this.#engaged = true;
      this.#o.logger.warn(
        { queued, highWatermark, lowWatermark },
        'back pressure on: anonymous mail refused with 452 4.3.1',
      );
    } else if (this.#engaged && queued < lowWatermark) {
      this.#engaged = false;
      this.#o.logger.info({ queued, lowWatermark }, 'back pressure off: accepting all mail again');
    }
  }

  refusal(requester: MailRequester): BackPressureRefusal | undefined {
    if (!this.#engaged) return undefined;
    // Exchange keeps accepting from authenticated clients and from its own servers and partners.
    if (requester.authUser !== undefined) return undefined;
    if (requester.certificateGroup === 'partners' || requester.certificateGroup === 'servers')
      return undefined;
    const detail = `back pressure: ${this.#queued > this.#o.highWatermark ? `more than ${this.#o.highWatermark}` : this.#queued} recipients due (high watermark ${this.#o.highWatermark})`;
    // Per refused MAIL, so at debug: the warning when pressure starts is the operator's signal.
    this.#o.logger.debug(
      { connector: requester.connector, remoteIp: requester.remoteIp, sender: requester.sender },
      `${detail}; MAIL refused with 452 4.3.1`,
    );
    if (this.#o.events) {
      track(this.#o.events, {
        time: this.#o.clock.now(),
        eventId: 'THROTTLE',
        source: 'AGENT',
        connector: requester.connector,
        clientIp: requester.remoteIp,
        ...(requester.helo ? { clientHostname: requester.helo } : {}),
        sender: requester.sender,
        recipients: [],
        recipientStatus: [],
        directionality: 'Incoming',
        detail,
      });
    }
    return { reply: BACK_PRESSURE_REPLY, reason: `${detail}; anonymous MAIL refused` };
  }
}
