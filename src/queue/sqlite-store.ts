import { constants, createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { Clock } from '../core/clock.ts';
import { fsyncDirectory } from '../core/fsync.ts';
import type { IdGenerator } from '../core/ids.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { noteLargeBodyBytes } from '../core/young-garbage.ts';
import { type EventBus, nullEventBus } from '../observe/events.ts';
import { QueueAdminError } from './admin-types.ts';
import { InflightJournal } from './inflight-journal.ts';
import { trackQueueEvent } from './queue-events.ts';
import { queueName } from './queue-name.ts';
import { type ReaderQuery, ReaderThread } from './reader-thread.ts';
import {
  MIGRATE_V1_TO_V2,
  MIGRATE_V2_TO_V3,
  MIGRATE_V3_TO_V4,
  SCHEMA,
  SCHEMA_VERSION,
  STATUS_COUNTS_SQL,
} from './sqlite-schema.ts';
import {
  type AdminRow,
  type ExpiryRow,
  type InsertRow,
  type NotificationRow,
  type OutcomeRow,
  PRAGMAS,
  type RerouteRow,
  type WriteBatch,
  type WriteResult,
} from './sqlite-writer.ts';
import {
  type BodyWriter,
  type ClaimOptions,
  type DeliveryJob,
  type NewMessage,
  type NextHop,
  type NotificationBatch,
  type NotificationKind,
  type NotificationRef,
  type QueuedMessage,
  type QueuedRecipient,
  type QueueStore,
  QueueUnavailableError,
  type RecipientOutcome,
  type RecipientRef,
  type RecipientStatus,
} from './types.ts';

export interface SqliteQueueStoreOptions {
  /** The queue's folder: `queue.db`, `incoming/` and `bodies/` live here. */
  dir: string;
  clock: Clock;
  ids: IdGenerator;
  /** ms a message may stay queued before it expires. */
  messageExpiration: number;
  /** ms the first commit of an idle store waits for company; 0 = none (batching still happens under load). */
  groupCommitWindow?: number;
  /**
   * Bodies up to this size are stored inside the database, so the one WAL fsync of a group commit
   * makes them durable; larger ones spill to a file of their own. Measured: for 4 KB messages the
   * inline path needs one fsync per batch instead of one per message plus a folder fsync.
   */
  inlineBodyLimit?: number;
  /**
   * A cap on the queue database in bytes (rounded down to whole pages). Beyond it commits are
   * refused with QueueUnavailableError, so a flood fills the queue, not the disk.
   */
  maxDatabaseSize?: number;
  /** The file operations whose failure matters; tests replace them to make the disk fail. */
  fileOps?: Partial<QueueFileOps>;
  logger?: Logger;
  /**
   * Crashes of the node while a message was being delivered after which the message goes to the
   * Poison queue (Exchange's PoisonThreshold, default 2).
   */
  poisonThreshold?: number;
  /** Tracking events of what the store itself decides: FAIL (expiry, removal with NDR), DROP, POISONMESSAGE. */
  events?: EventBus;
  /**
   * Queues whose newest deferral is kept in memory for the viewer (default 10,000, one per
   * destination deferred); the least recently deferred beyond it are looked up in their rows.
   */
  lastErrorQueues?: number;
}

/** A recipient handed out by claimDue (or held while a sweep fails it) and not yet given an outcome. */
interface Claim {
  /** Its queue, for the viewer's Active status and last error. */
  readonly queue: string;
  /** Claimed for delivery, so its message is in the in-flight journal. */
  readonly delivery: boolean;
}

/** The store's writes to files. Each failure must end in QueueUnavailableError and nothing half-stored. */
export interface QueueFileOps {
  open(path: string, flags: number, mode: number): Promise<FileHandle>;
  rename(from: string, to: string): Promise<void>;
  fsyncDirectory(path: string): Promise<void>;
}

const realFileOps: QueueFileOps = { open, rename, fsyncDirectory };

const DEFAULT_INLINE_LIMIT = 128 * 1024;
/**
 * Outcomes (delivered, deferred) wait this long to share a transaction: no client waits on
 * them, and under load it turns one fsync per delivery into one per batch.
 */
const OUTCOME_BATCH_WINDOW_MS = 2;
/** I/O errors that mean "no room or no disk now": the client should try again later. */
const RESOURCE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EMFILE', 'ENFILE']);

interface PendingCommit {
  body: SqliteBodyWriter;
  message: NewMessage;
  resolve: (queued: QueuedMessage) => void;
  reject: (error: Error) => void;
}

interface PendingOutcomes {
  outcomes: ReadonlyArray<{ ref: RecipientRef; outcome: RecipientOutcome }>;
  admin?: ReadonlyArray<AdminRow>;
  /** Notification changes written in the same batch as outcomes (no client waits on them either). */
  completions?: ReadonlyArray<NotificationRow>;
  delayRequests?: ReadonlyArray<NotificationRow>;
  expirations?: ReadonlyArray<ExpiryRow>;
  reroutes?: ReadonlyArray<RerouteRow>;
  /** Receives the rows each `admin` entry changed. */
  resolve: (adminChanges: number[]) => void;
  reject: (error: Error) => void;
}

interface MessageRow {
  id: string;
  sender: string;
  received_at: number;
  expires_at: number;
  size: number;
  body_type: string;
  smtputf8: number;
  dsn_ret: string | null;
  dsn_envid: string | null;
  origin: string;
  message_id: string | null;
  subject: string | null;
  body_file: number;
  auth_results: string | null;
  crash_count: number;
}

interface RecipientRow {
  message_id: string;
  idx: number;
  address: string;
  orcpt: string | null;
  notify: string | null;
  hop_type: string;
  hop_target: string;
  status: string;
  attempts: number;
  next_attempt_at: number;
  last_response: string | null;
  updated_at: number;
  notify_pending: string | null;
  delay_notified: number;
  queue: string;
}

/** SQLite's "disk full" and I/O errors mean the same as ENOSPC and EIO for us. */
function sqliteCode(code: string | undefined, message: string | undefined): string | undefined {
  if (code === '13' || /database or disk is full/i.test(message ?? '')) return 'ENOSPC';
  if (code === '10' || /disk I\/O error/i.test(message ?? '')) return 'EIO';
  return code;
}

function asQueueError(error: unknown, what: string): Error {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code && RESOURCE_ERRORS.has(code)) return new QueueUnavailableError(`${what}: ${code}`);
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * A body on its way in: kept in memory while small, spilled to `incoming/<id>` once it passes
 * the inline limit, so memory per session stays bounded whatever the message size.
 */
class SqliteBodyWriter implements BodyWriter {
  readonly id: string;
  size = 0;
  chunks: Buffer[] = [];
  file: FileHandle | undefined;
  #tail: Promise<void> = Promise.resolve();
  #aborted = false;
  readonly #path: string;
  readonly #limit: number;
  readonly #ops: QueueFileOps;

  constructor(id: string, path: string, limit: number, ops: QueueFileOps) {
    this.id = id;
    this.#path = path;
    this.#limit = limit;
    this.#ops = ops;
  }

  get path(): string {
    return this.#path;
  }

  /** Bytes that go before the body (prepend); stored in the row for a spilled body. */
  prefix: Buffer = Buffer.alloc(0);

  prepend(bytes: Buffer): void {
    if (this.#aborted || bytes.length === 0) return;
    this.prefix = Buffer.concat([bytes, this.prefix]);
    this.size += bytes.length;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.#aborted) return Promise.reject(new Error('body aborted'));
    this.size += chunk.length;
    if (!this.file && this.size <= this.#limit) {
      this.chunks.push(chunk);
      return Promise.resolve();
    }
    // A body this large streams: its chunks die young outside the JS heap (young-garbage.ts).
    noteLargeBodyBytes(this.size - chunk.length, chunk.length);
    this.#tail = this.#tail.then(async () => {
      if (!this.file) {
        this.file = await this.#ops.open(
          this.#path,
          constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY,
          0o600,
        );
        const buffered = Buffer.concat(this.chunks);
        this.chunks = [];
        if (buffered.length > 0) await this.file.write(buffered);
      }
      await this.file.write(chunk);
    });
    this.#tail = this.#tail.catch((error: unknown) => {
      throw asQueueError(error, 'writing the message body');
    });
    return this.#tail;
  }

  /** Waits for pending writes, then fsyncs and closes the spill file (if any). */
  async seal(): Promise<void> {
    if (this.#aborted) throw new Error('body aborted');
    await this.#tail;
    if (this.file) {
      await this.file.sync();
      await this.file.close();
      this.file = undefined;
      this.spilled = true;
    }
  }

  spilled = false;

  async abort(): Promise<void> {
    if (this.#aborted) return;
    this.#aborted = true;
    this.chunks = [];
    await this.#tail.catch(() => undefined);
    if (this.file) await this.file.close().catch(() => undefined);
    this.file = undefined;
    await unlink(this.#path).catch(() => undefined);
  }
}

/**
 * The embedded queue store: SQLite (WAL, synchronous=FULL) for the rows and small bodies,
 * files for large bodies. Commits and outcome updates that arrive together share one
 * transaction and so one fsync (group commit).
 */
export class SqliteQueueStore implements QueueStore {
  readonly #opts: Required<Omit<SqliteQueueStoreOptions, 'logger' | 'maxDatabaseSize' | 'fileOps'>> & {
    logger: Logger;
    maxDatabaseSize: number | undefined;
  };
  readonly #fs: QueueFileOps;
  #db: DatabaseSync | undefined;
  #stmts: ReturnType<typeof prepare> | undefined;
  #closed = false;
  #commits: PendingCommit[] = [];
  #outcomes: PendingOutcomes[] = [];
  #flushing: Promise<void> | undefined;
  #flushScheduled = false;
  /** Recipients handed out by claimDue and not yet given an outcome: `messageId/index`. */
  readonly #claimed = new Map<string, Claim>();
  /** Per message, its recipients claimed for delivery: the message is in the journal while > 0. */
  readonly #deliveriesPerMessage = new Map<string, number>();
  #journal: InflightJournal | undefined;
  /** Queues an administrator suspended (mirrors the suspended_queues table). */
  readonly #suspendedQueues = new Set<string>();
  /**
   * The newest deferral response seen per queue, for the viewer's lastError; the queues deferred
   * most recently, at most `lastErrorQueues` (older ones are looked up in their rows again).
   */
  readonly #lastError = new Map<string, string>();
  /** Notifications handed out by claimNotifications and not yet completed: `messageId/index/kind`. */
  readonly #notificationsClaimed = new Set<string>();
  /** Messages up to this (received_at, id) were swept for delay notices since open(). */
  #delayCursor: { receivedAt: number; id: string } = { receivedAt: -1, id: '' };
  #stats = { commits: 0, commitBatches: 0 };

  constructor(options: SqliteQueueStoreOptions) {
    this.#opts = {
      groupCommitWindow: 0,
      inlineBodyLimit: DEFAULT_INLINE_LIMIT,
      poisonThreshold: 2,
      events: nullEventBus,
      lastErrorQueues: 10_000,
      ...options,
      logger: options.logger ?? silentLogger,
      maxDatabaseSize: options.maxDatabaseSize,
    };
    this.#fs = { ...realFileOps, ...options.fileOps };
  }

  get #incoming(): string {
    return join(this.#opts.dir, 'incoming');
  }
  get #bodies(): string {
    return join(this.#opts.dir, 'bodies');
  }

  stats(): { commits: number; commitBatches: number } {
    return { ...this.#stats };
  }

  async open(): Promise<void> {
    await mkdir(this.#incoming, { recursive: true, mode: 0o700 });
    await mkdir(this.#bodies, { recursive: true, mode: 0o700 });
    const db = new DatabaseSync(join(this.#opts.dir, 'queue.db'));
    db.exec(PRAGMAS);
    const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(
        `queue database schema ${version} is newer than this Ferrymail understands (${SCHEMA_VERSION})`,
      );
    }
    // One transaction: a crash mid-migration leaves the database at the old version, intact.
    db.exec('BEGIN IMMEDIATE');
    try {
      if (version === 1) db.exec(MIGRATE_V1_TO_V2);
      if (version === 1 || version === 2) db.exec(MIGRATE_V2_TO_V3);
      if (version >= 1 && version <= 3) db.exec(MIGRATE_V3_TO_V4);
      db.exec(SCHEMA);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      db.exec('COMMIT');
    } catch (error) {
      db.exec('ROLLBACK');
      db.close();
      throw error;
    }
    this.#db = db;
    this.#stmts = prepare(db);
    await this.#recover();
    this.#startWriter(join(this.#opts.dir, 'queue.db'));
    this.#countReader = new ReaderThread(join(this.#opts.dir, 'queue.db'));
    this.#pageReader = new ReaderThread(join(this.#opts.dir, 'queue.db'));
  }

  /** Counts over the whole queue, and the viewer's pages: each on a read-only thread of its own. */
  #countReader: ReaderThread | undefined;
  #pageReader: ReaderThread | undefined;

  #read(query: ReaderQuery): Promise<unknown[]> {
    const reader = typeof query === 'string' ? this.#countReader : this.#pageReader;
    if (!reader) return Promise.reject(new QueueUnavailableError('queue reader not running'));
    return reader.read(query);
  }

  #worker: Worker | undefined;
  #requests = new Map<number, { resolve: (r: WriteResult) => void; reject: (e: Error) => void }>();
  #nextRequest = 1;

  /** The writer thread: every insert and update goes through it (this thread only reads). */
  #startWriter(path: string): void {
    const worker = new Worker(new URL('./sqlite-writer-worker.ts', import.meta.url), {
      workerData: { path, maxDatabaseSize: this.#opts.maxDatabaseSize },
    });
    worker.on(
      'message',
      (reply: { id: number; ok: boolean; result?: WriteResult; message?: string; code?: string }) => {
        const request = this.#requests.get(reply.id);
        this.#requests.delete(reply.id);
        if (!request) return;
        if (reply.ok) request.resolve(reply.result!);
        else
          request.reject(
            Object.assign(new Error(reply.message), { code: sqliteCode(reply.code, reply.message) }),
          );
      },
    );
    const fail = (error: Error) => {
      this.#opts.logger.error({ err: error }, 'queue writer thread failed');
      this.#writerFailed = error;
      for (const request of this.#requests.values()) request.reject(new QueueUnavailableError(error.message));
      this.#requests.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`queue writer thread exited with code ${code}`));
    });
    this.#worker = worker;
  }

  #writerFailed: Error | undefined;

  /** Open, and its writer thread alive: it can take commits now (readiness). */
  canCommit(): boolean {
    return this.#db !== undefined && !this.#closed && this.#worker !== undefined && !this.#writerFailed;
  }

  #write(batch: WriteBatch): Promise<WriteResult> {
    if (this.#writerFailed || !this.#worker) {
      return Promise.reject(
        new QueueUnavailableError(this.#writerFailed?.message ?? 'queue writer not running'),
      );
    }
    const id = this.#nextRequest++;
    return new Promise((resolve, reject) => {
      this.#requests.set(id, { resolve, reject });
      this.#worker!.postMessage({ id, batch });
    });
  }

  /** After a crash: drop never-acknowledged files, and fail recipients whose body is gone. */
  async #recover(): Promise<void> {
    for (const name of await readdir(this.#incoming)) {
      await unlink(join(this.#incoming, name)).catch(() => undefined);
    }
    // This store keeps claims in memory, but a database written by another kind of store (or a
    // future version) may hold `active` rows: after a restart nobody is delivering them.
    this.#stmts!.releaseActive.run();
    this.#countCrashes();
    for (const { name } of this.#stmts!.suspendedQueues.all() as Array<{ name: string }>)
      this.#suspendedQueues.add(name);
    const fileBodies = new Set(await readdir(this.#bodies));
    const expected = this.#stmts!.fileBodyIds.all() as Array<{ id: string }>;
    const now = this.#opts.clock.now();
    for (const { id } of expected) {
      if (fileBodies.delete(id)) continue;
      this.#opts.logger.error({ queueId: id }, 'queue body file missing; failing its recipients');
      this.#stmts!.failMissingBody.run('451 4.3.0 Queue file missing', now, id);
    }
    // Files without a row were renamed but never committed, so never acknowledged.
    for (const orphan of fileBodies) await unlink(join(this.#bodies, orphan)).catch(() => undefined);
  }

  /**
   * Messages the in-flight journal says were being delivered when the process died get a crash
   * counted; at the threshold their undelivered recipients go to the Poison queue, where they
   * stay (never delivered, never expired) until an administrator releases or removes them. The
   * counts are committed (this connection, synchronous=FULL) before the journal is emptied, so a
   * crash in between counts the crash again at worst.
   */
  #countCrashes(): void {
    const path = join(this.#opts.dir, 'inflight.journal');
    const s = this.#stmts!;
    const poisoned: QueuedMessage[] = [];
    const leftovers = InflightJournal.leftovers(path);
    if (leftovers.size > 0) {
      const now = this.#opts.clock.now();
      this.#db!.exec('BEGIN IMMEDIATE');
      try {
        for (const id of leftovers) {
          const row = s.countCrash.get(id) as { crash_count: number } | undefined;
          if (!row) continue;
          this.#opts.logger.warn(
            { queueId: id, crashCount: row.crash_count },
            'message was being delivered when the node stopped unexpectedly',
          );
          if (row.crash_count < this.#opts.poisonThreshold) continue;
          if (Number(s.poisonMessage.run(now, id).changes) > 0) poisoned.push(this.#load(id)!);
        }
        this.#db!.exec('COMMIT');
      } catch (error) {
        this.#db!.exec('ROLLBACK');
        throw error;
      }
    }
    this.#journal = new InflightJournal(path, (error) =>
      this.#opts.logger.error(
        { err: error, path },
        'in-flight journal cannot be written: poison detection is off until restart',
      ),
    );
    this.#journal.open();
    for (const message of poisoned) {
      this.#opts.logger.error(
        { queueId: message.id, threshold: this.#opts.poisonThreshold },
        'message moved to the Poison queue: the node crashed while delivering it',
      );
      const recipients = message.recipients.filter((r) => r.status === 'poison');
      trackQueueEvent(this.#opts.events, 'POISONMESSAGE', message, recipients, this.#opts.clock.now(), {
        detail: `crashed the node ${this.#opts.poisonThreshold} times while being delivered`,
      });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Commits accepted before close() began are finished, not dropped: their clients wait for a 250.
    while (this.#flushing || this.#flushScheduled) {
      await (this.#flushing ?? new Promise((resolve) => setTimeout(resolve, 1)));
    }
    await this.#countReader?.close();
    await this.#pageReader?.close();
    if (this.#worker) {
      const exited = new Promise((resolve) => this.#worker!.once('exit', resolve));
      this.#worker.postMessage({ id: 0, close: true });
      await exited;
      this.#worker = undefined;
    }
    this.#db?.close();
    this.#db = undefined;
    // Stopped cleanly: whatever was still claimed was not being delivered when the node went down.
    this.#journal?.close();
    this.#journal = undefined;
  }

  async openBody(): Promise<BodyWriter> {
    if (this.#closed || !this.#db) throw new QueueUnavailableError('queue is closed');
    const id = this.#opts.ids.queueId();
    return new SqliteBodyWriter(id, join(this.#incoming, id), this.#opts.inlineBodyLimit, this.#fs);
  }

  commit(body: BodyWriter, message: NewMessage): Promise<QueuedMessage> {
    if (this.#closed || !this.#db) return Promise.reject(new QueueUnavailableError('queue is closed'));
    if (!(body instanceof SqliteBodyWriter))
      return Promise.reject(new Error('body was not opened by this store'));
    return new Promise((resolve, reject) => {
      this.#commits.push({ body, message, resolve, reject });
      this.#scheduleFlush();
    });
  }

  recordOutcomes(outcomes: ReadonlyArray<{ ref: RecipientRef; outcome: RecipientOutcome }>): Promise<void> {
    if (!this.#db) return Promise.reject(new QueueUnavailableError('queue is closed'));
    if (outcomes.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#outcomes.push({ outcomes, resolve: () => resolve(), reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushing) return;
    this.#flushScheduled = true;
    const start = () => {
      this.#flushScheduled = false;
      this.#flushing = this.#flushLoop().finally(() => {
        this.#flushing = undefined;
        // Work that arrived after the loop's last look but before this point (a caller resumed
        // by the last batch may already have queued more) would otherwise wait forever.
        if (this.#commits.length > 0 || this.#outcomes.length > 0) this.#scheduleFlush();
      });
    };
    if (this.#opts.groupCommitWindow > 0) setTimeout(start, this.#opts.groupCommitWindow);
    else if (this.#commits.length === 0) setTimeout(start, OUTCOME_BATCH_WINDOW_MS);
    else setImmediate(start);
  }

  /** Flushes batches until nothing waits; whatever arrives during a flush forms the next batch. */
  async #flushLoop(): Promise<void> {
    while (this.#commits.length > 0 || this.#outcomes.length > 0) {
      const commits = this.#commits;
      const outcomes = this.#outcomes;
      this.#commits = [];
      this.#outcomes = [];
      await this.#flushBatch(commits, outcomes);
    }
  }

  async #flushBatch(commits: PendingCommit[], outcomes: PendingOutcomes[]): Promise<void> {
    // 1. Spilled bodies: fsync each (in parallel), move into bodies/, then one folder fsync.
    const ready: PendingCommit[] = [];
    await Promise.all(
      commits.map(async (c) => {
        try {
          await c.body.seal();
          if (c.body.spilled) await this.#fs.rename(c.body.path, join(this.#bodies, c.body.id));
          ready.push(c);
        } catch (error) {
          await c.body.abort();
          c.reject(asQueueError(error, 'storing the message body'));
        }
      }),
    );
    const spilled = ready.filter((c) => c.body.spilled);
    if (spilled.length > 0) {
      try {
        await this.#fs.fsyncDirectory(this.#bodies);
      } catch (error) {
        for (const c of spilled) {
          await unlink(join(this.#bodies, c.body.id)).catch(() => undefined);
          c.reject(asQueueError(error, 'syncing the queue folder'));
        }
        ready.splice(0, ready.length, ...ready.filter((c) => !c.body.spilled));
      }
    }

    // 2. One transaction for every commit and outcome of the batch, in the writer thread.
    const now = this.#opts.clock.now();
    const inserts: InsertRow[] = [];
    const queued = ready.map((c) => this.#toInsert(c, now, inserts));
    const completions = outcomes.flatMap((batch) => batch.completions ?? []);
    const delayRequests = outcomes.flatMap((batch) => batch.delayRequests ?? []);
    const expirations = outcomes.flatMap((batch) => batch.expirations ?? []);
    const reroutes = outcomes.flatMap((batch) => batch.reroutes ?? []);
    const admin = outcomes.flatMap((batch) => batch.admin ?? []);
    const outcomeRows: OutcomeRow[] = outcomes.flatMap((batch) =>
      batch.outcomes.map(({ ref, outcome }): OutcomeRow => {
        const base = { messageId: ref.messageId, index: ref.index, response: outcome.response, now };
        return outcome.kind === 'deferred'
          ? { ...base, status: 'deferred', nextAttemptAt: outcome.nextAttemptAt }
          : { ...base, status: outcome.kind };
      }),
    );
    let result: WriteResult;
    try {
      result = await this.#write({
        inserts,
        outcomes: outcomeRows,
        completions,
        delayRequests,
        expirations,
        reroutes,
        admin,
      });
    } catch (error) {
      const failure = asQueueError(error, 'committing to the queue database');
      for (const c of ready) {
        if (c.body.spilled) await unlink(join(this.#bodies, c.body.id)).catch(() => undefined);
        c.reject(failure);
      }
      for (const o of outcomes) {
        // Released so the scheduler can try these recipients again.
        for (const { ref } of o.outcomes) this.#release(`${ref.messageId}/${ref.index}`, ref.messageId);
        o.reject(failure);
      }
      return;
    }
    this.#stats.commits += ready.length;
    if (ready.length > 0) this.#stats.commitBatches++;
    ready.forEach((c, i) => c.resolve(queued[i]!));
    let adminOffset = 0;
    for (const o of outcomes) {
      for (const { ref, outcome } of o.outcomes) {
        const key = `${ref.messageId}/${ref.index}`;
        const queue = this.#claimed.get(key)?.queue;
        if (queue && outcome.kind === 'deferred') this.#rememberLastError(queue, outcome.response);
        this.#release(key, ref.messageId);
      }
      const count = o.admin?.length ?? 0;
      o.resolve(result.adminChanges.slice(adminOffset, adminOffset + count));
      adminOffset += count;
    }
    // Rows are durably gone: the files can follow (a crash here leaves orphans that open() removes).
    for (const id of result.removedFileBodies) await unlink(join(this.#bodies, id)).catch(() => undefined);
  }

  /** The rows for one commit (appended to `inserts`) and the message as it will be stored. */
  #toInsert(c: PendingCommit, now: number, inserts: InsertRow[]): QueuedMessage {
    const m = c.message;
    const expiresAt = now + this.#opts.messageExpiration;
    const recipients: QueuedRecipient[] = m.recipients.map((r, index) => ({
      ...r,
      index,
      status: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      updatedAt: now,
    }));
    inserts.push({
      message: [
        c.body.id,
        m.sender,
        now,
        expiresAt,
        c.body.size,
        m.bodyType,
        m.smtpUtf8 ? 1 : 0,
        m.dsn.ret ?? null,
        m.dsn.envid ?? null,
        JSON.stringify(m.origin),
        m.messageId ?? null,
        m.subject ?? null,
        c.body.spilled ? 1 : 0,
        m.authResults ? JSON.stringify(m.authResults) : null,
        c.body.spilled && c.body.prefix.length > 0 ? c.body.prefix : null,
      ],
      inlineBody: c.body.spilled ? null : Buffer.concat([c.body.prefix, ...c.body.chunks]),
      recipients: recipients.map((r) => {
        const [hopType, hopTarget] = encodeHop(r.nextHop);
        const notify = r.notify === undefined ? null : r.notify === 'NEVER' ? 'NEVER' : r.notify.join(',');
        return [
          c.body.id,
          r.index,
          r.address,
          r.orcpt ?? null,
          notify,
          hopType,
          hopTarget,
          now,
          now,
          queueName(r.nextHop),
        ];
      }),
    });
    const { recipients: _ignored, ...rest } = m;
    return { ...rest, id: c.body.id, receivedAt: now, expiresAt, size: c.body.size, recipients };
  }

  readBody(messageId: string): Readable {
    const row = this.#stmts?.getInlineBody.get(messageId) as { data: Uint8Array } | undefined;
    if (row) return Readable.from([Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength)]);
    const stored = this.#stmts?.getBodyPrefix.get(messageId) as
      | { body_prefix: Uint8Array | null }
      | undefined;
    // A removed message's file may linger a moment (it is unlinked after the rows are gone): it is
    // not the message's body any more.
    if (!stored) {
      const gone = Object.assign(new Error(`ENOENT: message ${messageId} is not in the queue`), {
        code: 'ENOENT',
      });
      return new Readable({
        read() {
          this.destroy(gone);
        },
      });
    }
    const prefix = stored.body_prefix;
    const path = join(this.#bodies, messageId);
    return Readable.from(
      (async function* () {
        if (prefix && prefix.byteLength > 0)
          yield Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength);
        // Opened at the first read, so a stream destroyed before it never holds a descriptor.
        const file = createReadStream(path);
        // Each read is a fresh Buffer that dies once sent on (src/core/young-garbage.ts says why).
        let offset = 0;
        for await (const chunk of file) {
          noteLargeBodyBytes(offset, (chunk as Buffer).length);
          offset += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      })(),
    );
  }

  async claimDue(options: ClaimOptions): Promise<DeliveryJob[]> {
    if (!this.#db || options.limit <= 0) return [];
    const s = this.#stmts!;
    // Rows come in due order; reading stops at the first row of a job beyond the limit, so a
    // claim costs about as many rows as it hands out (plus the ones already claimed).
    const cap = options.limit * 64 + this.#claimed.size;
    const rows = (
      options.hopType === undefined
        ? s.dueAny.iterate(options.now, cap)
        : s.dueByHop.iterate(options.hopType, options.now, cap)
    ) as Iterable<Pick<RecipientRow, 'message_id' | 'idx' | 'hop_type' | 'hop_target' | 'queue'>>;
    const jobs = new Map<string, { messageId: string; indexes: number[] }>();
    // Jobs each queue may still get in this claim (queueRoom): rows of a queue without room are
    // passed over and count against the cap like any row read. A backlog of one queue larger
    // than the cap can therefore hide the rows due after it until it drains below the cap.
    const room = options.queueRoom;
    const left = room ? new Map<string, number>() : undefined;
    for (const row of rows) {
      const key = `${row.message_id}/${row.idx}`;
      if (this.#claimed.has(key)) continue;
      // All local mailboxes form one next hop (the mailbox delivery queue); remote hops are per domain.
      const jobKey = `${row.message_id}|${row.hop_type}|${row.hop_type === 'mailbox' ? '' : row.hop_target}`;
      let job = jobs.get(jobKey);
      if (!job) {
        if (jobs.size >= options.limit) break;
        if (room && left) {
          const n = left.get(row.queue) ?? room(row.queue, decodeHop(row.hop_type, row.hop_target));
          left.set(row.queue, n - 1);
          if (n <= 0) continue;
        }
        job = { messageId: row.message_id, indexes: [] };
        jobs.set(jobKey, job);
      }
      job.indexes.push(row.idx);
      this.#claimed.set(key, { queue: row.queue, delivery: true });
      this.#deliveriesPerMessage.set(
        row.message_id,
        (this.#deliveriesPerMessage.get(row.message_id) ?? 0) + 1,
      );
    }
    // Before the jobs are handed out, so a crash during their delivery is counted (inflight-journal.ts).
    this.#journal?.begin([...jobs.values()].map((job) => job.messageId));
    const result: DeliveryJob[] = [];
    for (const job of jobs.values()) {
      const message = this.#load(job.messageId);
      if (!message) continue;
      result.push({ message, recipients: message.recipients.filter((r) => job.indexes.includes(r.index)) });
    }
    return result;
  }

  async nextDueAt(
    hopType?: NextHop['type'],
    options: { readonly after?: number } = {},
  ): Promise<number | undefined> {
    if (!this.#db) return undefined;
    let earliest: number | undefined;
    for (const type of hopType === undefined ? HOP_TYPES : [hopType]) {
      const due = this.#nextUnclaimed(type, options.after);
      if (due !== undefined && (earliest === undefined || due < earliest)) earliest = due;
    }
    return earliest;
  }

  /**
   * Claimed recipients are still `pending` in their rows; they are skipped here, or a scheduler
   * would see a long delivery in progress as work due now and wake without pause. The index
   * gives the rows in due order, so this reads at most the claimed ones plus one.
   */
  #nextUnclaimed(hopType: NextHop['type'], after?: number): number | undefined {
    const rows = (
      after === undefined
        ? this.#stmts!.dueOrderByHop.iterate(hopType)
        : this.#stmts!.dueOrderByHopAfter.iterate(hopType, after)
    ) as Iterable<Pick<RecipientRow, 'message_id' | 'idx' | 'next_attempt_at'>>;
    for (const row of rows) {
      if (!this.#claimed.has(`${row.message_id}/${row.idx}`)) return row.next_attempt_at;
    }
    return undefined;
  }

  async getMessage(id: string): Promise<QueuedMessage | undefined> {
    return this.#db ? this.#load(id) : undefined;
  }

  async listMessages(options: { limit?: number; after?: string } = {}): Promise<QueuedMessage[]> {
    if (!this.#db) return [];
    const ids = this.#stmts!.listIds.all(options.after ?? '', options.limit ?? 100) as Array<{ id: string }>;
    return ids.map(({ id }) => this.#load(id)).filter((m): m is QueuedMessage => m !== undefined);
  }

  async countDueBacklog(now: number, atMost: number): Promise<number> {
    if (!this.#db || atMost <= 0) return 0;
    let total = 0;
    // Two bounded range scans of the (status, hop_type, next_attempt_at) index: claimed
    // recipients are still `pending` in their rows, so they count too.
    for (const hopType of ['mailbox', 'smtp'] as const) {
      const row = this.#stmts!.countDue.get(hopType, now, atMost - total) as { n: number };
      total += row.n;
      if (total >= atMost) break;
    }
    return total;
  }

  async countRecipients(): Promise<Record<RecipientStatus, number>> {
    const counts: Record<RecipientStatus, number> = {
      pending: 0,
      active: 0,
      suspended: 0,
      poison: 0,
      delivered: 0,
      failed: 0,
    };
    if (!this.#db) return counts;
    const rows = (await this.#read('statusCounts').catch((error: unknown) => {
      // The count is still owed: taken here, on the event loop, rather than not at all.
      this.#opts.logger.warn({ err: error }, 'queue reader thread failed; counting on the main thread');
      return this.#stmts!.countByStatus.all();
    })) as Array<{ status: string; n: number }>;
    for (const row of rows) {
      // `held` (its queue is suspended) waits like `pending`; the viewer tells queues apart.
      const status = (row.status === 'held' ? 'pending' : row.status) as RecipientStatus;
      counts[status] = (counts[status] ?? 0) + row.n;
    }
    let inDelivery = 0;
    for (const n of this.#deliveriesPerMessage.values()) inDelivery += n;
    counts.active = inDelivery;
    counts.pending -= inDelivery;
    return counts;
  }

  /** Like recordOutcomes: batched into the next transaction, resolved once durable. */
  #writeNotificationState(
    work: Pick<
      PendingOutcomes,
      'completions' | 'delayRequests' | 'expirations' | 'reroutes' | 'admin' | 'outcomes'
    >,
  ): Promise<number[]> {
    if (!this.#db) return Promise.reject(new QueueUnavailableError('queue is closed'));
    return new Promise((resolve, reject) => {
      this.#outcomes.push({ ...work, resolve, reject });
      this.#scheduleFlush();
    });
  }

  /** A claim ends; the message leaves the in-flight journal once none of its deliveries is claimed. */
  #release(key: string, messageId: string): void {
    const claim = this.#claimed.get(key);
    if (!claim) return;
    this.#claimed.delete(key);
    if (!claim.delivery) return;
    const left = (this.#deliveriesPerMessage.get(messageId) ?? 1) - 1;
    if (left > 0) {
      this.#deliveriesPerMessage.set(messageId, left);
      return;
    }
    this.#deliveriesPerMessage.delete(messageId);
    this.#journal?.end(messageId);
  }

  /** The messages and recipients of `refs` as they are now, for tracking events (none without a bus). */
  #trackingSnapshot(
    refs: ReadonlyArray<RecipientRef>,
  ): Array<{ message: QueuedMessage; recipients: QueuedRecipient[] }> {
    if (this.#opts.events === nullEventBus) return [];
    const byMessage = new Map<string, Set<number>>();
    for (const ref of refs) {
      const set = byMessage.get(ref.messageId) ?? new Set<number>();
      set.add(ref.index);
      byMessage.set(ref.messageId, set);
    }
    const out: Array<{ message: QueuedMessage; recipients: QueuedRecipient[] }> = [];
    for (const [id, indexes] of byMessage) {
      const message = this.#load(id);
      if (message) out.push({ message, recipients: message.recipients.filter((r) => indexes.has(r.index)) });
    }
    return out;
  }

  async claimNotifications(limit: number): Promise<NotificationBatch[]> {
    if (!this.#db || limit <= 0) return [];
    const rows = this.#stmts!.pendingNotifications.iterate() as Iterable<
      Pick<RecipientRow, 'message_id' | 'idx' | 'notify_pending'>
    >;
    const groups = new Map<string, { messageId: string; kind: NotificationKind; indexes: number[] }>();
    for (const row of rows) {
      const kind = row.notify_pending as NotificationKind;
      const key = `${row.message_id}/${row.idx}/${kind}`;
      if (this.#notificationsClaimed.has(key)) continue;
      const groupKey = `${row.message_id}/${kind}`;
      let group = groups.get(groupKey);
      if (!group) {
        if (groups.size >= limit) break;
        group = { messageId: row.message_id, kind, indexes: [] };
        groups.set(groupKey, group);
      }
      group.indexes.push(row.idx);
      this.#notificationsClaimed.add(key);
    }
    const batches: NotificationBatch[] = [];
    for (const group of groups.values()) {
      const message = this.#load(group.messageId);
      const recipients =
        message?.recipients.filter(
          (r) => group.indexes.includes(r.index) && r.pendingNotification === group.kind,
        ) ?? [];
      if (!message || recipients.length === 0) {
        for (const index of group.indexes)
          this.#notificationsClaimed.delete(`${group.messageId}/${index}/${group.kind}`);
        continue;
      }
      batches.push({ message, kind: group.kind, recipients });
    }
    return batches;
  }

  async completeNotifications(refs: ReadonlyArray<NotificationRef>): Promise<void> {
    if (refs.length === 0) return;
    try {
      await this.#writeNotificationState({
        completions: refs.map((r) => ({ messageId: r.messageId, index: r.index, kind: r.kind })),
        outcomes: [],
      });
    } finally {
      // Written or not, the claim ends: if the write failed, the notification is still pending
      // and will be claimed again.
      for (const r of refs) this.#notificationsClaimed.delete(`${r.messageId}/${r.index}/${r.kind}`);
    }
  }

  async releaseNotifications(refs: ReadonlyArray<NotificationRef>): Promise<void> {
    for (const r of refs) this.#notificationsClaimed.delete(`${r.messageId}/${r.index}/${r.kind}`);
  }

  async requestDelayNotices(now: number, delayAfter: number, limit: number): Promise<number> {
    if (!this.#db || limit <= 0) return 0;
    const s = this.#stmts!;
    const cutoff = now - delayAfter;
    let requested = 0;
    // Each message is looked at once, when it becomes old enough: whatever of it is not final
    // then gets its notice. The cursor makes a sweep read only the messages that crossed the
    // line since the last one (after a restart, the first sweep reads the old ones once more,
    // and `delay_notified` keeps them from a second notice).
    for (;;) {
      const cursor = this.#delayCursor;
      const page = s.delayPage.all(cursor.receivedAt, cursor.id, cutoff, limit) as Array<
        Pick<MessageRow, 'id' | 'received_at' | 'sender'>
      >;
      if (page.length === 0) return requested;
      const rows: NotificationRow[] = [];
      for (const m of page) {
        if (m.sender === '') continue;
        for (const r of s.delayCandidates.all(m.id) as Array<Pick<RecipientRow, 'idx' | 'notify'>>) {
          if (r.notify === null || (r.notify !== 'NEVER' && r.notify.split(',').includes('DELAY')))
            rows.push({ messageId: m.id, index: r.idx, kind: 'delay' });
        }
      }
      if (rows.length > 0) await this.#writeNotificationState({ delayRequests: rows, outcomes: [] });
      // The first sweep after a start reads every old message once: let the sessions run between pages.
      else await new Promise((resolve) => setImmediate(resolve));
      requested += rows.length;
      const last = page.at(-1)!;
      this.#delayCursor = { receivedAt: last.received_at, id: last.id };
      if (page.length < limit) return requested;
    }
  }

  async rerouteUnreachable(
    route: (recipient: QueuedRecipient, message: QueuedMessage) => NextHop,
    now: number,
  ): Promise<number> {
    if (!this.#db) return 0;
    const rows = this.#stmts!.unreachablePending.all() as Array<Pick<RecipientRow, 'message_id' | 'idx'>>;
    const byMessage = new Map<string, Set<number>>();
    for (const row of rows) {
      const set = byMessage.get(row.message_id) ?? new Set<number>();
      set.add(row.idx);
      byMessage.set(row.message_id, set);
    }
    const reroutes: RerouteRow[] = [];
    for (const [id, indexes] of byMessage) {
      const message = this.#load(id);
      if (!message) continue;
      for (const recipient of message.recipients) {
        if (!indexes.has(recipient.index)) continue;
        const hop = route(recipient, message);
        if (hop.type === 'unreachable') continue;
        const [hopType, hopTarget] = encodeHop(hop);
        reroutes.push({
          messageId: id,
          index: recipient.index,
          hopType,
          hopTarget,
          queue: queueName(hop),
          now,
        });
      }
    }
    if (reroutes.length > 0) await this.#writeNotificationState({ reroutes, outcomes: [] });
    return reroutes.length;
  }

  async expireDue(now: number, limit: number): Promise<number> {
    if (!this.#db || limit <= 0) return 0;
    let expired = 0;
    for (;;) {
      const rows = this.#stmts!.expiredPending.all(now, limit + this.#claimed.size) as Array<
        Pick<RecipientRow, 'message_id' | 'idx'>
      >;
      const keys: string[] = [];
      const expirations: ExpiryRow[] = [];
      for (const row of rows) {
        const key = `${row.message_id}/${row.idx}`;
        // Being delivered now: the scheduler fails it with 4.4.7 if this attempt is transient.
        if (this.#claimed.has(key)) continue;
        keys.push(key);
        expirations.push({ messageId: row.message_id, index: row.idx, now });
        if (expirations.length >= limit) break;
      }
      if (expirations.length === 0) return expired;
      // Claimed while the write is on its way, so no delivery starts on a recipient being failed.
      for (const key of keys) this.#claimed.set(key, { queue: '', delivery: false });
      // Read before the write: a message whose recipients all become final may be gone after it.
      const before = this.#trackingSnapshot(expirations);
      try {
        await this.#writeNotificationState({ expirations, outcomes: [] });
      } finally {
        for (const key of keys) this.#claimed.delete(key);
      }
      for (const { message, recipients } of before) {
        trackQueueEvent(
          this.#opts.events,
          'FAIL',
          message,
          recipients.map((r) => ({
            ...r,
            lastResponse: `550 4.4.7 Message expired: ${r.lastResponse ?? 'no delivery attempt succeeded'}`,
          })),
          now,
          { detail: 'message expired' },
        );
      }
      expired += expirations.length;
      if (expirations.length < limit) return expired;
    }
  }

  // ---- The queue viewer (src/queue/admin.ts builds the viewer's model on these). Every read is
  // an index range scan with a LIMIT, except queueTotals, which is one pass over the covering
  // index recipients_queue (the admin caches it). Writes go through the writer thread like all
  // others and are durable when they resolve.

  /**
   * Per queue (not Poison): its recipients that are not final and their earliest due time.
   * Counted in the reader thread, so the event loop never waits on it; still one pass over
   * every waiting recipient, so callers cache it (StoreQueueAdmin).
   */
  async queueTotals(): Promise<QueueTotals[]> {
    if (!this.#db) return [];
    const rows = (await this.#read('queueTotals')) as Array<{
      queue: string;
      recipients: number;
      messages: number;
      pending: number;
      next_due: number | null;
    }>;
    const totals: QueueTotals[] = [];
    for (const row of rows) {
      if (row.recipients === 0 || !this.#db) continue;
      const sample = this.#stmts!.queueSample.get(row.queue) as
        | { hop_type: string; hop_target: string }
        | undefined;
      const hop = sample ? decodeHop(sample.hop_type, sample.hop_target) : undefined;
      totals.push({
        queue: row.queue,
        recipients: row.recipients,
        messages: row.messages,
        pending: row.pending,
        ...(row.next_due !== null ? { nextDueAt: row.next_due } : {}),
        ...(hop?.type === 'smtp' && hop.connector !== undefined ? { connector: hop.connector } : {}),
      });
    }
    return totals;
  }

  /** Whether a queue holds a recipient that is not final (one index seek). */
  queueExists(queue: string): boolean {
    if (!this.#db) return false;
    return this.#stmts!.queueHasRecipients.get(queue) !== undefined;
  }

  /** Recipients claimed for delivery now, per queue. */
  deliveriesPerQueue(): Map<string, number> {
    const claimed = new Map<string, number>();
    for (const claim of this.#claimed.values())
      if (claim.delivery) claimed.set(claim.queue, (claimed.get(claim.queue) ?? 0) + 1);
    return claimed;
  }

  /** The Poison queue's size. */
  poisonTotals(): { recipients: number; messages: number } {
    if (!this.#db) return { recipients: 0, messages: 0 };
    return this.#stmts!.poisonTotals.get() as { recipients: number; messages: number };
  }

  /**
   * The newest deferral of the queue since open() or, before there is one, the newest of the
   * last few messages waiting in it (a bounded look, not a scan of the queue).
   */
  queueLastError(queue: string): string | undefined {
    const known = this.#lastError.get(queue);
    if (known !== undefined || !this.#db) return known;
    const row = this.#stmts!.queueLastError.get(queue) as { last_response: string } | undefined;
    if (row) this.#rememberLastError(queue, row.last_response);
    return row?.last_response;
  }

  #rememberLastError(queue: string, response: string): void {
    // Deleted first so the Map's order stays the order of use: the oldest is evicted first.
    this.#lastError.delete(queue);
    this.#lastError.set(queue, response);
    if (this.#lastError.size > this.#opts.lastErrorQueues) {
      this.#lastError.delete(this.#lastError.keys().next().value!);
    }
  }

  /** Messages with a recipient claimed for delivery now, in id order. */
  messagesInDelivery(): string[] {
    return [...this.#deliveriesPerMessage.keys()].sort();
  }

  suspendedQueueNames(): ReadonlySet<string> {
    return this.#suspendedQueues;
  }

  /** A message as the viewer shows it: its rows' own states, claims, queues and crash count. */
  inspectMessage(id: string): MessageInspection | undefined {
    if (!this.#db) return undefined;
    const loaded = this.#loadRows(id);
    if (!loaded) return undefined;
    return {
      message: loaded.message,
      crashCount: loaded.row.crash_count ?? 0,
      recipients: loaded.recipientRows.map((r) => ({
        index: r.idx,
        status: r.status,
        queue: r.status === 'poison' ? 'poison' : r.queue,
        claimed: this.#claimed.has(`${r.message_id}/${r.idx}`),
      })),
    };
  }

  /**
   * Ids of messages with a recipient not final, in id order after `after`, matching the page
   * query. One index drives the scan (a recipient's, a queue's or a sender's range, the Poison
   * rows, or the messages' primary key) and SQLite applies the other conditions as it goes.
   * It reads a snapshot: the admin checks each id against the rows as they are now.
   */
  async pageMessageIds(q: MessagePageQuery): Promise<string[]> {
    if (!this.#db) return [];
    const params: Array<string | number> = [];
    const where: string[] = [];
    let sql: string;
    if (q.recipient !== undefined) {
      params.push(q.recipient.toLowerCase(), q.after);
      sql = `SELECT r.message_id AS id FROM recipients r INDEXED BY recipients_address JOIN messages m ON m.id = r.message_id
        WHERE lower(r.address) = ? AND r.${OPEN_ROWS} AND r.message_id > ?`;
      if (q.queue === 'poison') where.push(`r.status = 'poison'`);
      else if (q.queue !== undefined) {
        where.push(`r.queue = ? AND r.status <> 'poison'`);
        params.push(q.queue);
      }
    } else if (q.queue === 'poison') {
      params.push(q.after);
      sql = `SELECT r.message_id AS id FROM recipients r INDEXED BY recipients_due JOIN messages m ON m.id = r.message_id
        WHERE r.status = 'poison' AND r.message_id > ?`;
    } else if (q.queue !== undefined) {
      params.push(q.queue, q.after);
      sql = `SELECT r.message_id AS id FROM recipients r INDEXED BY recipients_queue JOIN messages m ON m.id = r.message_id
        WHERE r.queue = ? AND r.${OPEN_ROWS} AND r.status <> 'poison' AND r.message_id > ?`;
    } else if (q.waiting === 'stopped' && this.#fewStopped()) {
      // Few suspended or held recipients: reading them (and sorting a few thousand ids) beats
      // scanning every message for the rare one.
      params.push(q.after);
      sql = `SELECT r.message_id AS id FROM recipients r INDEXED BY recipients_due JOIN messages m ON m.id = r.message_id
        WHERE r.status IN ('held', 'suspended') AND r.message_id > ?`;
      if (q.sender !== undefined) {
        where.push('lower(m.sender) = ?');
        params.push(q.sender.toLowerCase());
      }
    } else if (q.sender !== undefined) {
      params.push(q.sender.toLowerCase(), q.after);
      sql = `SELECT m.id AS id FROM messages m INDEXED BY messages_sender WHERE lower(m.sender) = ? AND m.id > ?
        AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.${OPEN_ROWS})`;
    } else {
      params.push(q.after);
      sql = `SELECT m.id AS id FROM messages m WHERE m.id > ?
        AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.${OPEN_ROWS})`;
    }
    // The sender is the driving index only when neither recipient nor queue is given.
    if (q.sender !== undefined && (q.recipient !== undefined || q.queue !== undefined)) {
      where.push('lower(m.sender) = ?');
      params.push(q.sender.toLowerCase());
    }
    if (q.subject !== undefined) {
      where.push(`m.subject LIKE ? ESCAPE '\\'`);
      params.push(`%${q.subject.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    if (q.receivedAfter !== undefined) {
      where.push('m.received_at >= ?');
      params.push(q.receivedAfter);
    }
    if (q.receivedBefore !== undefined) {
      where.push('m.received_at < ?');
      params.push(q.receivedBefore);
    }
    // The status as far as the rows tell it (the admin decides exactly, with the claims).
    const pendingDue = `EXISTS (SELECT 1 FROM recipients w WHERE w.message_id = m.id AND w.status = 'pending' AND w.next_attempt_at <= ?)`;
    const pending = `EXISTS (SELECT 1 FROM recipients w WHERE w.message_id = m.id AND w.status = 'pending')`;
    const poison = `EXISTS (SELECT 1 FROM recipients w WHERE w.message_id = m.id AND w.status = 'poison')`;
    if (q.waiting === 'ready') {
      where.push(pendingDue, `NOT ${poison}`);
      params.push(q.now ?? 0);
    } else if (q.waiting === 'retry') {
      where.push(pending, `NOT ${pendingDue}`, `NOT ${poison}`);
      params.push(q.now ?? 0);
    } else if (q.waiting === 'stopped') {
      where.push(
        `EXISTS (SELECT 1 FROM recipients w WHERE w.message_id = m.id AND w.status IN ('held', 'suspended'))`,
        `NOT ${pending}`,
        `NOT ${poison}`,
      );
    }
    const idColumn = sql.startsWith('SELECT r.') ? 'r.message_id' : 'm.id';
    const text = `${sql}${where.map((w) => ` AND ${w}`).join('')} GROUP BY ${idColumn} ORDER BY ${idColumn} LIMIT ?`;
    params.push(q.limit);
    // In the reader thread: a filter no index serves (a subject, a time range alone) scans the
    // messages until the page is full, which must not hold up the SMTP sessions meanwhile.
    const rows = (await this.#read({ sql: text, params })) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  /** At most STOPPED_DRIVER_LIMIT recipients are held or suspended (a bounded count). */
  #fewStopped(): boolean {
    const row = this.#stmts!.countStopped.get(STOPPED_DRIVER_LIMIT + 1) as { n: number };
    return row.n <= STOPPED_DRIVER_LIMIT;
  }

  /** Applies queue viewer writes in the next transaction; resolves to the rows each changed. */
  async applyAdmin(rows: ReadonlyArray<AdminRow>): Promise<number[]> {
    const changes = await this.#writeNotificationState({ admin: rows, outcomes: [] });
    for (const row of rows) {
      if (row.op === 'suspendQueue') this.#suspendedQueues.add(row.queue);
      if (row.op === 'resumeQueue') this.#suspendedQueues.delete(row.queue);
    }
    return changes;
  }

  /**
   * Removes a message. With `ndr`, each undelivered recipient gets `response` as a failed
   * outcome (so the failure notification is written in the same transaction, as for any
   * failure); without, message and body are deleted. A message with a delivery in progress is
   * not touched (`conflict`): the attempt's outcome would race the removal.
   */
  async removeMessage(id: string, options: { ndr: boolean; response: string }): Promise<void> {
    const refs = this.#openRefs(id);
    const message = this.#load(id);
    if (!message || refs.length === 0) throw new QueueAdminError('not-found', `no queued message ${id}`);
    const keys = this.#holdForAdmin(refs);
    const now = this.#opts.clock.now();
    const recipients = message.recipients.filter((r) => refs.some((ref) => ref.index === r.index));
    try {
      if (options.ndr) {
        await this.#writeNotificationState({
          outcomes: refs.map((ref) => ({ ref, outcome: { kind: 'failed', response: options.response } })),
        });
      } else {
        await this.#writeNotificationState({
          admin: [{ op: 'removeMessage', messageId: id, now }],
          outcomes: [],
        });
      }
    } finally {
      for (const key of keys) this.#claimed.delete(key);
    }
    trackQueueEvent(
      this.#opts.events,
      options.ndr ? 'FAIL' : 'DROP',
      message,
      recipients.map((r) => ({
        ...r,
        lastResponse: options.ndr ? options.response : (r.lastResponse ?? ''),
      })),
      now,
      {
        detail: options.ndr
          ? 'removed by an administrator with NDR'
          : 'removed by an administrator without NDR',
      },
    );
  }

  /**
   * Gives the undelivered recipients of a message the hop `route` chooses now, due now (as
   * rerouteUnreachable does for one queue). `conflict` while a delivery of it is in progress.
   */
  async resubmitMessage(
    id: string,
    route: (recipient: QueuedRecipient, message: QueuedMessage) => NextHop,
  ): Promise<number> {
    const refs = this.#openRefs(id);
    const message = this.#load(id);
    if (!message || refs.length === 0) throw new QueueAdminError('not-found', `no queued message ${id}`);
    const keys = this.#holdForAdmin(refs);
    const now = this.#opts.clock.now();
    try {
      const rows: AdminRow[] = [];
      for (const ref of refs) {
        const recipient = message.recipients.find((r) => r.index === ref.index)!;
        const hop = route(recipient, message);
        const [hopType, hopTarget] = encodeHop(hop);
        rows.push({
          op: 'rehop',
          messageId: id,
          index: ref.index,
          hopType,
          hopTarget,
          queue: queueName(hop),
          now,
        });
      }
      const changes = await this.#writeNotificationState({ admin: rows, outcomes: [] });
      return changes.reduce((a, b) => a + b, 0);
    } finally {
      for (const key of keys) this.#claimed.delete(key);
    }
  }

  /** Recipients of the message that are not final. */
  #openRefs(id: string): RecipientRef[] {
    if (!this.#db) throw new QueueUnavailableError('queue is closed');
    return (this.#stmts!.openRecipients.all(id) as Array<{ idx: number }>).map((r) => ({
      messageId: id,
      index: r.idx,
    }));
  }

  /** Claims the recipients for an admin write, or `conflict` when one of them is being delivered. */
  #holdForAdmin(refs: ReadonlyArray<RecipientRef>): string[] {
    const keys = refs.map((r) => `${r.messageId}/${r.index}`);
    if (keys.some((key) => this.#claimed.has(key)))
      throw new QueueAdminError(
        'conflict',
        `message ${refs[0]!.messageId} is being delivered now; try again when the attempt is over`,
      );
    for (const key of keys) this.#claimed.set(key, { queue: '', delivery: false });
    return keys;
  }

  #load(id: string): QueuedMessage | undefined {
    return this.#loadRows(id)?.message;
  }

  /** The message and the rows it was made of (one read of each table). */
  #loadRows(
    id: string,
  ): { message: QueuedMessage; row: MessageRow; recipientRows: RecipientRow[] } | undefined {
    const s = this.#stmts!;
    const row = s.getMessage.get(id) as MessageRow | undefined;
    if (!row) return undefined;
    const recipientRows = s.getRecipients.all(id) as unknown as RecipientRow[];
    return { message: this.#toMessage(row, recipientRows), row, recipientRows };
  }

  #toMessage(row: MessageRow, recipientRows: RecipientRow[]): QueuedMessage {
    const recipients = recipientRows.map((r) => this.#toRecipient(r));
    return {
      id: row.id,
      sender: row.sender,
      receivedAt: row.received_at,
      expiresAt: row.expires_at,
      size: row.size,
      bodyType: row.body_type as QueuedMessage['bodyType'],
      smtpUtf8: row.smtputf8 === 1,
      dsn: {
        ...(row.dsn_ret ? { ret: row.dsn_ret as 'FULL' | 'HDRS' } : {}),
        ...(row.dsn_envid !== null ? { envid: row.dsn_envid } : {}),
      },
      origin: JSON.parse(row.origin) as QueuedMessage['origin'],
      ...(row.message_id !== null ? { messageId: row.message_id } : {}),
      ...(row.subject !== null ? { subject: row.subject } : {}),
      ...(row.auth_results
        ? { authResults: JSON.parse(row.auth_results) as QueuedMessage['authResults'] }
        : {}),
      recipients,
    };
  }

  #toRecipient(r: RecipientRow): QueuedRecipient {
    const claimed = this.#claimed.has(`${r.message_id}/${r.idx}`);
    return {
      index: r.idx,
      address: r.address,
      ...(r.orcpt !== null ? { orcpt: r.orcpt } : {}),
      ...(r.notify !== null
        ? {
            notify:
              r.notify === 'NEVER'
                ? 'NEVER'
                : (r.notify.split(',') as Array<'SUCCESS' | 'FAILURE' | 'DELAY'>),
          }
        : {}),
      nextHop: decodeHop(r.hop_type, r.hop_target),
      // `held` waits like `pending`: its queue, not the recipient, is suspended.
      status: claimed ? 'active' : r.status === 'held' ? 'pending' : (r.status as RecipientStatus),
      attempts: r.attempts,
      nextAttemptAt: r.next_attempt_at,
      ...(r.last_response !== null ? { lastResponse: r.last_response } : {}),
      updatedAt: r.updated_at,
      ...(r.notify_pending !== null ? { pendingNotification: r.notify_pending as NotificationKind } : {}),
      ...(r.delay_notified ? { delayNotified: true as const } : {}),
    };
  }
}

const HOP_TYPES: ReadonlyArray<NextHop['type']> = ['mailbox', 'smtp', 'unreachable'];

/** Up to this many suspended or held recipients, a Suspended page reads them instead of every message. */
const STOPPED_DRIVER_LIMIT = 10_000;

/** The condition of the partial indexes of schema v4: a recipient that is not final. */
const OPEN_ROWS = `status IN ('pending', 'held', 'suspended', 'poison')`;

/** One queue's recipients that are not final (queueTotals). */
export interface QueueTotals {
  readonly queue: string;
  readonly recipients: number;
  readonly messages: number;
  /** Waiting for delivery (including those claimed for delivery now). */
  readonly pending: number;
  /** The earliest next attempt of a pending recipient. */
  readonly nextDueAt?: number;
  readonly connector?: string;
}

/** A stored message with the state of each recipient row (inspectMessage). */
export interface MessageInspection {
  readonly message: QueuedMessage;
  readonly crashCount: number;
  readonly recipients: ReadonlyArray<{
    readonly index: number;
    /** The row's own status: pending, held, suspended, poison, delivered, failed. */
    readonly status: string;
    /** Its queue (`poison` for a poison recipient). */
    readonly queue: string;
    /** Claimed for delivery now. */
    readonly claimed: boolean;
  }>;
}

/** A page of the viewer's message list (pageMessageIds). */
export interface MessagePageQuery {
  readonly after: string;
  readonly limit: number;
  readonly queue?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly subject?: string;
  readonly receivedAfter?: number;
  readonly receivedBefore?: number;
  /**
   * The status by the rows: a pending recipient due at `now` (Ready), pending ones none due
   * (Retry), only held or suspended ones (Suspended); never a poison one.
   */
  readonly waiting?: 'ready' | 'retry' | 'stopped';
  readonly now?: number;
}

/** Kept here too: the queue viewer and tests import it from the store. */
export { queueName };

/**
 * An SMTP hop's target is `domain` or `domain<TAB>connector`: one column, so recipients for the
 * same queue through the same connector still form one job. A tab cannot occur in either part.
 */
function encodeHop(hop: NextHop): [string, string] {
  if (hop.type === 'mailbox') return ['mailbox', hop.mailbox];
  if (hop.type === 'smtp' && hop.connector !== undefined) return ['smtp', `${hop.domain}\t${hop.connector}`];
  return [hop.type, hop.domain];
}

function decodeHop(type: string, target: string): NextHop {
  if (type === 'mailbox') return { type: 'mailbox', mailbox: target };
  if (type === 'smtp') {
    const tab = target.indexOf('\t');
    return tab < 0
      ? { type: 'smtp', domain: target }
      : { type: 'smtp', domain: target.slice(0, tab), connector: target.slice(tab + 1) };
  }
  return { type: 'unreachable', domain: target };
}

function prepare(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    getMessage: p('SELECT * FROM messages WHERE id = ?'),
    getRecipients: p('SELECT * FROM recipients WHERE message_id = ? ORDER BY idx'),
    getInlineBody: p('SELECT data FROM message_bodies WHERE id = ?'),
    getBodyPrefix: p('SELECT body_prefix FROM messages WHERE id = ?'),
    fileBodyIds: p('SELECT id FROM messages WHERE body_file = 1'),
    // The sender is told, as for any failure (the report then returns no original).
    failMissingBody: p(
      `UPDATE recipients SET status = 'failed', last_response = ?1, updated_at = ?2,
        notify_pending = CASE
          WHEN (notify IS NULL OR instr(notify, 'FAILURE') > 0)
            AND (SELECT sender FROM messages WHERE id = ?3) <> '' THEN 'failure'
          ELSE NULL END
        WHERE message_id = ?3 AND status IN ('pending', 'active', 'held', 'suspended', 'poison')`,
    ),
    dueAny: p(
      `SELECT message_id, idx, hop_type, hop_target, queue FROM recipients WHERE status = 'pending' AND next_attempt_at <= ?
        ORDER BY next_attempt_at, message_id, idx LIMIT ?`,
    ),
    dueByHop: p(
      `SELECT message_id, idx, hop_type, hop_target, queue FROM recipients WHERE status = 'pending' AND hop_type = ? AND next_attempt_at <= ?
        ORDER BY next_attempt_at, message_id, idx LIMIT ?`,
    ),
    dueOrderByHop: p(
      `SELECT message_id, idx, next_attempt_at FROM recipients WHERE status = 'pending' AND hop_type = ?
        ORDER BY next_attempt_at, message_id, idx`,
    ),
    dueOrderByHopAfter: p(
      `SELECT message_id, idx, next_attempt_at FROM recipients WHERE status = 'pending' AND hop_type = ?
        AND next_attempt_at > ? ORDER BY next_attempt_at, message_id, idx`,
    ),
    listIds: p(
      `SELECT m.id FROM messages m WHERE m.id > ? AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
        AND r.status IN ('pending', 'active', 'held', 'suspended', 'poison')) ORDER BY m.id LIMIT ?`,
    ),
    countByStatus: p(STATUS_COUNTS_SQL),
    // The partial index recipients_notify holds only rows that owe a report, in this order.
    pendingNotifications: p(
      `SELECT message_id, idx, notify_pending FROM recipients INDEXED BY recipients_notify
        WHERE notify_pending IS NOT NULL ORDER BY message_id, idx`,
    ),
    delayPage: p(
      `SELECT id, received_at, sender FROM messages INDEXED BY messages_received
        WHERE (received_at, id) > (?, ?) AND received_at <= ? ORDER BY received_at, id LIMIT ?`,
    ),
    delayCandidates: p(
      `SELECT idx, notify FROM recipients WHERE message_id = ? AND status = 'pending'
        AND notify_pending IS NULL AND delay_notified = 0`,
    ),
    expiredPending: p(
      `SELECT r.message_id, r.idx FROM messages m INDEXED BY messages_expires
        JOIN recipients r ON r.message_id = m.id
        WHERE m.expires_at <= ? AND r.status = 'pending' ORDER BY m.expires_at LIMIT ?`,
    ),
    unreachablePending: p(
      `SELECT message_id, idx FROM recipients INDEXED BY recipients_hop_due
        WHERE status = 'pending' AND hop_type = 'unreachable'`,
    ),
    releaseActive: p(`UPDATE recipients SET status = 'pending' WHERE status = 'active'`),
    countCrash: p('UPDATE messages SET crash_count = crash_count + 1 WHERE id = ? RETURNING crash_count'),
    // Suspended ones too: a poison message is not delivered whatever else was decided about it.
    poisonMessage: p(
      `UPDATE recipients SET status = 'poison', updated_at = ?1
        WHERE message_id = ?2 AND status IN ('pending', 'held', 'suspended')`,
    ),
    suspendedQueues: p('SELECT name FROM suspended_queues'),
    countDue: p(
      `SELECT COUNT(*) AS n FROM (SELECT 1 FROM recipients INDEXED BY recipients_hop_due
        WHERE status = 'pending' AND hop_type = ? AND next_attempt_at <= ? LIMIT ?)`,
    ),
    countStopped: p(
      `SELECT COUNT(*) AS n FROM (SELECT 1 FROM recipients INDEXED BY recipients_due
        WHERE status IN ('held', 'suspended') LIMIT ?)`,
    ),
    openRecipients: p(`SELECT idx FROM recipients WHERE message_id = ? AND ${OPEN_ROWS} ORDER BY idx`),
    queueHasRecipients: p(
      `SELECT 1 AS found FROM recipients INDEXED BY recipients_queue WHERE queue = ? AND ${OPEN_ROWS}
        AND status <> 'poison' LIMIT 1`,
    ),
    queueSample: p(
      `SELECT hop_type, hop_target FROM recipients INDEXED BY recipients_queue WHERE queue = ? AND ${OPEN_ROWS}
        ORDER BY message_id DESC LIMIT 1`,
    ),
    poisonTotals: p(
      `SELECT COUNT(*) AS recipients, COUNT(DISTINCT message_id) AS messages FROM recipients
        INDEXED BY recipients_due WHERE status = 'poison'`,
    ),
    queueLastError: p(
      `SELECT last_response FROM (SELECT last_response, updated_at FROM recipients INDEXED BY recipients_queue
        WHERE queue = ? AND ${OPEN_ROWS} AND status IN ('pending', 'held') ORDER BY message_id DESC LIMIT 50)
        WHERE last_response IS NOT NULL ORDER BY updated_at DESC LIMIT 1`,
    ),
  };
}
