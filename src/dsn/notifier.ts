import { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { type EventBus, nullEventBus } from '../observe/events.ts';
import { trackReport } from '../observe/pipeline-events.ts';
import type {
  NotificationBatch,
  NotificationRef,
  QueuedMessage,
  QueuedRecipient,
  QueueStore,
} from '../queue/types.ts';
import type { GeneratedMessageSubmitter } from '../routing/generated.ts';
import { buildDsn } from './build-dsn.ts';
import { shouldNotify } from './should-notify.ts';
import type { DsnAction, DsnIds, DsnKind, DsnRecipientReport } from './types.ts';

export type { GeneratedEnvelope, GeneratedMessageSubmitter } from '../routing/generated.ts';

export interface DsnNotifierOptions {
  readonly store: QueueStore;
  readonly submit: GeneratedMessageSubmitter;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Our host name, for Reporting-MTA and the report's Message-ID. */
  readonly reportingMta: string;
  /** The reports' From address. */
  readonly postmaster: string;
  /** ms after arrival when a recipient still not delivered gets a delay notice; 0 = never. */
  readonly delayNotification: number;
  /** RET=FULL returns the whole original only up to this many bytes (headers only beyond). */
  readonly maxFullReturnSize: number;
  /** Longest real-time sleep between passes, ms (outcomes wake it sooner). Default 10 s. */
  readonly pollInterval?: number;
  /** ms by the clock before a report that could not be queued is tried again. Default 60 s. */
  readonly retryInterval?: number;
  /**
   * ms by the clock between sweeps for expired and delayed messages. A wake after outcomes only
   * sends what is pending; passes on the poll timer, `flush()` and the first pass always sweep.
   * Default 60 s.
   */
  readonly sweepInterval?: number;
  /** Reports built at once, and rows per sweep transaction. Default 16. */
  readonly batchSize?: number;
  /** Message-ID and boundary source, for reproducible tests. */
  readonly ids?: DsnIds;
  /** A DSN tracking event for every report queued. */
  readonly events?: EventBus;
}

const ACTION: Record<DsnKind, DsnAction> = { failure: 'failed', delay: 'delayed', success: 'delivered' };
const FALLBACK_STATUS: Record<DsnKind, string> = { failure: '5.0.0', delay: '4.0.0', success: '2.0.0' };

/** `550 5.1.1 user unknown` → `5.1.1`; a reply without an enhanced code gets the kind's fallback. */
export function enhancedStatus(response: string | undefined, kind: DsnKind): string {
  const match = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(response ?? '');
  const status = match?.[1];
  if (status === undefined) return FALLBACK_STATUS[kind];
  // A delay is a transient condition and a success a success, whatever the last reply said.
  if (kind === 'delay' && !status.startsWith('4.')) return FALLBACK_STATUS.delay;
  if (kind === 'success' && !status.startsWith('2.')) return FALLBACK_STATUS.success;
  return status;
}

/**
 * Sends the delivery status notifications the queue owes: NDRs for failed (and expired)
 * recipients, delay notices, and success DSNs when asked for. The store records the need for
 * each in the same transaction as the outcome; this loop turns them into reports, queues them
 * through `submit`, and only then clears them, so a crash in between sends a report again
 * rather than never (at least once). One report per message and kind covers every recipient
 * of it that is owed one.
 *
 * Each pass also sweeps the queue: recipients of expired messages that are not being attempted
 * are failed (4.4.7), and recipients waiting longer than `delayNotification` are marked for
 * their one delay notice.
 */
export class DsnNotifier {
  readonly #o: Required<Omit<DsnNotifierOptions, 'ids'>> & Pick<DsnNotifierOptions, 'ids'>;
  #stopped = true;
  #running = false;
  #again = false;
  #wakeScheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #passDone: Promise<void> = Promise.resolve();
  /** The next pass sweeps whatever the time (start, poll timer, flush). */
  #sweepRequested = true;
  #lastSweep = Number.NEGATIVE_INFINITY;
  /** Reports that could not be queued: still claimed, tried again from `at` (by the clock). */
  readonly #retry = new Map<string, { refs: NotificationRef[]; at: number }>();

  constructor(options: DsnNotifierOptions) {
    this.#o = {
      logger: silentLogger,
      pollInterval: 10_000,
      sweepInterval: 60_000,
      retryInterval: 60_000,
      batchSize: 16,
      events: nullEventBus,
      ...options,
    };
  }

  /** Begins at once, so notifications a crash left pending go out first. */
  start(): void {
    this.#stopped = false;
    this.wake();
  }

  /** Look now (outcomes were just recorded, or a test moved the clock). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      if (this.#running) this.#again = true;
      else if (!this.#stopped) this.#passDone = this.#loop();
    });
  }

  /** A pass that begins after this call, done: tests use it to know the notifier has looked. */
  flush(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#sweepRequested = true;
      this.wake();
    });
  }

  #waiters: Array<() => void> = [];

  /** Finishes the report being queued, then stops; held reports are released to the store. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#passDone;
    for (const resolve of this.#waiters.splice(0)) resolve();
    const held = [...this.#retry.values()].flatMap((r) => r.refs);
    this.#retry.clear();
    await this.#o.store.releaseNotifications(held).catch(() => undefined);
  }

  async #loop(): Promise<void> {
    this.#running = true;
    clearTimeout(this.#timer);
    try {
      do {
        this.#again = false;
        const waiting = this.#waiters.splice(0);
        try {
          await this.#pass();
        } catch (error) {
          this.#o.logger.error({ err: error }, 'notifier pass failed');
        }
        for (const resolve of waiting) resolve();
      } while (this.#again && !this.#stopped);
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return;
    if (this.#again) return this.wake();
    this.#timer = setTimeout(() => {
      this.#sweepRequested = true;
      this.wake();
    }, this.#o.pollInterval);
    this.#timer.unref();
  }

  async #pass(): Promise<void> {
    const { store, logger, batchSize } = this.#o;
    const now = this.#o.clock.now();
    // Outcomes wake this often under load; the sweeps need not run that often.
    if (this.#sweepRequested || now - this.#lastSweep >= this.#o.sweepInterval) {
      this.#sweepRequested = false;
      this.#lastSweep = now;
      await this.#sweep(now);
    }
    for (const [key, held] of this.#retry) {
      if (held.at > now) continue;
      this.#retry.delete(key);
      await store.releaseNotifications(held.refs);
    }
    while (!this.#stopped) {
      let batches: NotificationBatch[];
      try {
        batches = await store.claimNotifications(batchSize);
      } catch (error) {
        logger.error({ err: error }, 'could not read pending notifications');
        return;
      }
      if (batches.length === 0) return;
      const results = await Promise.all(batches.map((b) => this.#send(b, now)));
      // The store failing to clear a notification would hand it out again at once: wait instead.
      if (results.includes('store-failed')) return;
    }
  }

  async #sweep(now: number): Promise<void> {
    const { store, logger, batchSize } = this.#o;
    try {
      const expired = await store.expireDue(now, batchSize);
      if (expired > 0) logger.info({ recipients: expired }, 'recipients of expired messages failed');
    } catch (error) {
      logger.error({ err: error }, 'could not expire queued messages');
    }
    if (this.#o.delayNotification > 0) {
      try {
        await store.requestDelayNotices(now, this.#o.delayNotification, batchSize);
      } catch (error) {
        logger.error({ err: error }, 'could not look for delayed messages');
      }
    }
  }

  async #send(batch: NotificationBatch, now: number): Promise<'done' | 'held' | 'store-failed'> {
    const { message, kind } = batch;
    const refs: NotificationRef[] = batch.recipients.map((r) => ({
      messageId: message.id,
      index: r.index,
      kind,
    }));
    // The store never asks for these, but a database written otherwise might: RFC 3461 decides.
    const owed = batch.recipients.filter((r) => shouldNotify(kind, r, message));
    if (owed.length > 0) {
      const log = { queueId: message.id, kind, recipients: owed.map((r) => r.address) };
      /** The report once it is durably queued; tracked only after, so tracking can't re-queue it. */
      let queued: Parameters<typeof trackReport>[1] | undefined;
      try {
        const report = buildDsn({
          kind,
          // RET asks for the original in a failure report only (RFC 3461 §4.3).
          message: kind === 'failure' ? message : withoutRet(message),
          recipients: owed.map((r) => recipientReport(kind, r, message)),
          reportingMta: this.#o.reportingMta,
          postmaster: this.#o.postmaster,
          now: this.#o.clock.now(),
          originalBody: () =>
            orNothing(this.#o.store.readBody(message.id), (error) =>
              this.#o.logger.error(
                { err: error, queueId: message.id },
                'original unreadable; reported without it',
              ),
            ),
          maxFullReturnSize: this.#o.maxFullReturnSize,
          ...(this.#o.ids ? { ids: this.#o.ids } : {}),
        });
        try {
          const { queueId } = await this.#o.submit.submit(
            {
              sender: '',
              recipient: report.envelope.recipients[0],
              bodyType: report.envelope.bodyType,
              smtpUtf8: report.envelope.smtpUtf8,
              messageId: report.messageId,
              subject: report.subject,
            },
            report.message,
          );
          this.#o.logger.info({ ...log, reportQueueId: queueId }, 'delivery status notification queued');
          if (queueId !== undefined) {
            queued = {
              kind,
              reportId: queueId,
              messageId: report.messageId,
              subject: report.subject,
              about: owed.map((r) => r.address),
            };
          }
        } finally {
          report.message.destroy();
        }
      } catch (error) {
        this.#o.logger.error({ err: error, ...log }, 'could not queue a delivery status notification');
        this.#retry.set(`${message.id}/${kind}`, { refs, at: now + this.#o.retryInterval });
        return 'held';
      }
      if (queued) trackReport(this.#o.events, queued, message, this.#o.clock.now());
    }
    try {
      await this.#o.store.completeNotifications(refs);
      return 'done';
    } catch (error) {
      // Still pending in the store: the report goes again (twice rather than never).
      this.#o.logger.error({ err: error, queueId: message.id, kind }, 'could not clear notifications');
      await this.#o.store.releaseNotifications(refs).catch(() => undefined);
      return 'store-failed';
    }
  }
}

/**
 * The stored original, ending early instead of failing when it cannot be read (its file was lost):
 * the sender is still owed the report, and no retry would bring the original back.
 */
function orNothing(source: Readable, onError: (error: unknown) => void): Readable {
  async function* copy(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) yield chunk;
    } catch (error) {
      onError(error);
    }
  }
  return Readable.from(copy(), { objectMode: false });
}

function withoutRet(message: QueuedMessage): QueuedMessage {
  const { ret: _ret, ...dsn } = message.dsn;
  return { ...message, dsn };
}

function recipientReport(kind: DsnKind, r: QueuedRecipient, message: QueuedMessage): DsnRecipientReport {
  return {
    recipient: r,
    status: enhancedStatus(r.lastResponse, kind),
    action: ACTION[kind],
    ...(r.lastResponse !== undefined ? { diagnostic: r.lastResponse } : {}),
    ...(r.attempts > 0 ? { lastAttemptAt: r.updatedAt } : {}),
    ...(kind === 'delay' ? { willRetryUntil: message.expiresAt } : {}),
  };
}
