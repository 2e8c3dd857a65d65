import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { TrackingEvent } from '../observe/events.ts';
import { encodeCursor, normalizeQuery } from './tracking-query.ts';
import { TrackingThread } from './tracking-thread.ts';
import type { StoredTrackingEvent, TrackingLog, TrackingPage, TrackingQuery } from './types.ts';

export interface SqliteTrackingLogOptions {
  /** The database file, normally `<dataDir>/tracking/tracking.db`; its folder is created. */
  path: string;
  logger?: Logger;
  /** ms an event waits for company before its batch is written. */
  batchInterval?: number;
  /** A batch this large is written at once, without waiting. */
  batchSize?: number;
  /** Events held in memory while the disk fails; beyond, the oldest are dropped. */
  maxBuffered?: number;
  /** ms between attempts after a failed write. */
  retryInterval?: number;
  /** ms a write waits for another connection's lock before it fails (default 10 s). */
  busyTimeout?: number;
}

interface Buffered {
  /** The event's place in the order record() saw it, for flush(). */
  readonly n: number;
  readonly event: TrackingEvent;
}

/** Events per transaction at most when a backlog is written. */
const MAX_TRANSACTION = 2000;

/**
 * The message tracking log in SQLite (`tracking-db.ts`). record() only appends to an array; the
 * batches go to a writer thread, searches to a reader thread (a long subject search must not
 * stall SMTP sessions either). Measured with bench/tracking-write.ts at 3,000 events/s: SQLite on
 * the main thread kept it 11–37% busy (quiet vs loaded machine), with 20–180 ms stalls at WAL
 * checkpoints; with the writer thread, 5% against 2% for the same loop recording nothing.
 */
export class SqliteTrackingLog implements TrackingLog {
  readonly #writer: TrackingThread;
  readonly #path: string;
  readonly #busyTimeout: number | undefined;
  /** Started by the first search: a node nobody searches does not pay for its isolate (25–40 MB). */
  #reader: Promise<TrackingThread> | undefined;
  readonly #logger: Logger;
  readonly #batchInterval: number;
  readonly #batchSize: number;
  readonly #maxBuffered: number;
  readonly #retryInterval: number;

  #buffer: Buffered[] = [];
  #inFlight: Buffered[] | undefined;
  #inFlightDone: Promise<boolean> | undefined;
  #recorded = 0;
  #timer: NodeJS.Timeout | undefined;
  #waiters: Array<{ n: number; resolve: () => void; reject: (error: Error) => void }> = [];
  /** Set while writes fail; cleared (and the recovery logged) by the next successful write. */
  #failing: Error | undefined;
  #dropped = 0;
  #closing: Promise<void> | undefined;

  private constructor(writer: TrackingThread, options: SqliteTrackingLogOptions) {
    this.#writer = writer;
    this.#path = options.path;
    this.#busyTimeout = options.busyTimeout;
    this.#logger = options.logger ?? silentLogger;
    this.#batchInterval = options.batchInterval ?? 50;
    this.#batchSize = options.batchSize ?? 500;
    this.#maxBuffered = options.maxBuffered ?? 100_000;
    this.#retryInterval = options.retryInterval ?? 1000;
  }

  /** Opens (creating or migrating) the database; rejects when it cannot be opened. */
  static async open(options: SqliteTrackingLogOptions): Promise<SqliteTrackingLog> {
    await mkdir(dirname(options.path), { recursive: true });
    // The writer creates the schema; only then can the read-only connection open it.
    const writer = await TrackingThread.start(options.path, false, options.busyTimeout);
    return new SqliteTrackingLog(writer, options);
  }

  record(event: TrackingEvent): void {
    if (this.#closing) return;
    if (!recordable(event)) {
      this.#logger.warn({ eventId: event?.eventId }, 'malformed tracking event not recorded');
      return;
    }
    this.#buffer.push({ n: ++this.#recorded, event });
    if (this.#buffer.length > this.#maxBuffered) this.#dropOldest();
    if (!this.#inFlight && !this.#failing)
      this.#schedule(this.#buffer.length >= this.#batchSize ? 0 : undefined);
  }

  /** Drops down to the bound in one go (not one event per record()), and says so once per outage. */
  #dropOldest(): void {
    const excess = this.#buffer.length - this.#maxBuffered + Math.ceil(this.#maxBuffered / 10);
    this.#buffer.splice(0, excess);
    if (this.#dropped === 0) {
      this.#logger.error(
        { err: this.#failing, buffered: this.#maxBuffered },
        'message tracking log cannot write: dropping the oldest unwritten events',
      );
    }
    this.#dropped += excess;
    this.#settle();
  }

  /** `delay` undefined: the batch interval, unless a timer is already set. */
  #schedule(delay?: number): void {
    if (this.#timer) {
      if (delay === undefined) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#writeNext();
    }, delay ?? this.#batchInterval);
    // Waiting events never keep the process alive (close() writes them); a waiting flush() does.
    if (this.#waiters.length === 0) this.#timer.unref();
  }

  /** Sends the next batch; resolves to whether it was written. */
  #writeNext(): Promise<boolean> | undefined {
    if (this.#inFlight || this.#buffer.length === 0) return undefined;
    const batch = this.#buffer.splice(0, MAX_TRANSACTION);
    this.#inFlight = batch;
    this.#inFlightDone = this.#writer.request({ op: 'insert', events: batch.map((b) => b.event) }).then(
      () => {
        this.#inFlight = undefined;
        this.#inFlightDone = undefined;
        if (this.#failing) {
          this.#logger.info({ dropped: this.#dropped }, 'message tracking log writes again');
          this.#failing = undefined;
          this.#dropped = 0;
        }
        this.#settle();
        this.#continue();
        return true;
      },
      (error: Error) => {
        this.#inFlight = undefined;
        this.#inFlightDone = undefined;
        if (!this.#failing) this.#logger.error({ err: error }, 'message tracking log write failed; retrying');
        this.#failing = error;
        // Back at the front, in order; the bound still applies.
        this.#buffer = batch.concat(this.#buffer);
        if (this.#buffer.length > this.#maxBuffered) this.#dropOldest();
        for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
        this.#continue();
        return false;
      },
    );
    return this.#inFlightDone;
  }

  /** After a batch: the next one now if it is full or awaited, else after the interval (or the retry wait). */
  #continue(): void {
    if (this.#buffer.length === 0 || this.#closing) return;
    if (this.#failing) this.#schedule(this.#retryInterval);
    else this.#schedule(this.#buffer.length >= this.#batchSize || this.#waiters.length > 0 ? 0 : undefined);
  }

  /** Resolves the flushes whose events are all written (or dropped). */
  #settle(): void {
    const oldest = this.#inFlight?.[0]?.n ?? this.#buffer[0]?.n ?? Number.POSITIVE_INFINITY;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.n >= oldest) return true;
      waiter.resolve();
      return false;
    });
  }

  flush(): Promise<void> {
    const n = this.#recorded;
    const oldest = this.#inFlight?.[0]?.n ?? this.#buffer[0]?.n;
    if (oldest === undefined || oldest > n) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ n, resolve, reject });
      // Now, not after the batch interval or the retry wait: someone is waiting.
      if (!this.#inFlight) this.#schedule(0);
    });
  }

  async search(query: TrackingQuery): Promise<TrackingPage> {
    const normalized = normalizeQuery(query);
    if (this.#closing) throw new Error('the message tracking log is closed');
    this.#reader ??= TrackingThread.start(this.#path, true, this.#busyTimeout);
    const reader = await this.#reader.catch((error: unknown) => {
      this.#reader = undefined; // the next search tries again
      throw error;
    });
    const rows = await reader.request<StoredTrackingEvent[]>({ op: 'search', query: normalized });
    if (rows.length <= normalized.limit) return { events: rows };
    const events = rows.slice(0, normalized.limit);
    const last = events[events.length - 1]!;
    return { events, nextCursor: encodeCursor(last) };
  }

  async purge(before: number): Promise<number> {
    if (!Number.isFinite(before)) throw new RangeError(`purge needs a time in ms, got ${before}`);
    if (this.#closing) throw new Error('the message tracking log is closed');
    // Chunk by chunk, each its own request: batches of new events are written in between, and
    // close() does not wait for the rest of a long purge.
    let removed = 0;
    for (;;) {
      const chunk = await this.#writer.request<{ removed: number; done: boolean }>({ op: 'purge', before });
      removed += chunk.removed;
      if (chunk.done || this.#closing) return removed;
    }
  }

  /**
   * Writes what is buffered, then ends both threads. A write that fails now is not retried:
   * the events it held are logged as lost, and close() still completes.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      for (;;) {
        const pending = this.#inFlightDone ?? this.#writeNext();
        if (!pending) break;
        if (!(await pending)) {
          this.#logger.error(
            { lost: this.#buffer.length },
            'message tracking log closed with events it could not write',
          );
          break;
        }
      }
      for (const waiter of this.#waiters.splice(0))
        waiter.reject(new Error('the message tracking log is closed'));
      await this.#writer.close();
      const reader = await this.#reader?.catch(() => undefined);
      await reader?.close();
    })();
    return this.#closing;
  }
}

/** The fields every row needs; a malformed event is refused alone, not with its whole batch. */
function recordable(event: TrackingEvent): boolean {
  return (
    typeof event === 'object' &&
    event !== null &&
    typeof event.time === 'number' &&
    Number.isFinite(event.time) &&
    typeof event.eventId === 'string' &&
    typeof event.source === 'string' &&
    Array.isArray(event.recipients) &&
    Array.isArray(event.recipientStatus) &&
    event.recipients.every((r) => typeof r === 'string')
  );
}
