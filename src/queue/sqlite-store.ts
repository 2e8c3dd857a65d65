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
import { MIGRATE_V1_TO_V2, MIGRATE_V2_TO_V3, SCHEMA, SCHEMA_VERSION } from './sqlite-schema.ts';
import {
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
  /** Notification changes written in the same batch as outcomes (no client waits on them either). */
  completions?: ReadonlyArray<NotificationRow>;
  delayRequests?: ReadonlyArray<NotificationRow>;
  expirations?: ReadonlyArray<ExpiryRow>;
  reroutes?: ReadonlyArray<RerouteRow>;
  resolve: () => void;
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
  readonly #claimed = new Set<string>();
  /** Notifications handed out by claimNotifications and not yet completed: `messageId/index/kind`. */
  readonly #notificationsClaimed = new Set<string>();
  /** Messages up to this (received_at, id) were swept for delay notices since open(). */
  #delayCursor: { receivedAt: number; id: string } = { receivedAt: -1, id: '' };
  #stats = { commits: 0, commitBatches: 0 };

  constructor(options: SqliteQueueStoreOptions) {
    this.#opts = {
      groupCommitWindow: 0,
      inlineBodyLimit: DEFAULT_INLINE_LIMIT,
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Commits accepted before close() began are finished, not dropped: their clients wait for a 250.
    while (this.#flushing || this.#flushScheduled) {
      await (this.#flushing ?? new Promise((resolve) => setTimeout(resolve, 1)));
    }
    if (this.#worker) {
      const exited = new Promise((resolve) => this.#worker!.once('exit', resolve));
      this.#worker.postMessage({ id: 0, close: true });
      await exited;
      this.#worker = undefined;
    }
    this.#db?.close();
    this.#db = undefined;
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
      this.#outcomes.push({ outcomes, resolve, reject });
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
      });
    } catch (error) {
      const failure = asQueueError(error, 'committing to the queue database');
      for (const c of ready) {
        if (c.body.spilled) await unlink(join(this.#bodies, c.body.id)).catch(() => undefined);
        c.reject(failure);
      }
      for (const o of outcomes) {
        // Released so the scheduler can try these recipients again.
        for (const { ref } of o.outcomes) this.#claimed.delete(`${ref.messageId}/${ref.index}`);
        o.reject(failure);
      }
      return;
    }
    this.#stats.commits += ready.length;
    if (ready.length > 0) this.#stats.commitBatches++;
    ready.forEach((c, i) => c.resolve(queued[i]!));
    for (const o of outcomes) {
      for (const { ref } of o.outcomes) this.#claimed.delete(`${ref.messageId}/${ref.index}`);
      o.resolve();
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
        return [c.body.id, r.index, r.address, r.orcpt ?? null, notify, hopType, hopTarget, now, now];
      }),
    });
    const { recipients: _ignored, ...rest } = m;
    return { ...rest, id: c.body.id, receivedAt: now, expiresAt, size: c.body.size, recipients };
  }

  readBody(messageId: string): Readable {
    const row = this.#stmts?.getInlineBody.get(messageId) as { data: Uint8Array } | undefined;
    if (row) return Readable.from([Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength)]);
    const prefix = (
      this.#stmts?.getBodyPrefix.get(messageId) as { body_prefix: Uint8Array | null } | undefined
    )?.body_prefix;
    const file = createReadStream(join(this.#bodies, messageId));
    if (!prefix || prefix.byteLength === 0) return file;
    return Readable.from(
      (async function* () {
        yield Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength);
        yield* file;
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
    ) as Iterable<Pick<RecipientRow, 'message_id' | 'idx' | 'hop_type' | 'hop_target'>>;
    const jobs = new Map<string, { messageId: string; indexes: number[] }>();
    for (const row of rows) {
      const key = `${row.message_id}/${row.idx}`;
      if (this.#claimed.has(key)) continue;
      // All local mailboxes form one next hop (the mailbox delivery queue); remote hops are per domain.
      const jobKey = `${row.message_id}|${row.hop_type}|${row.hop_type === 'mailbox' ? '' : row.hop_target}`;
      let job = jobs.get(jobKey);
      if (!job) {
        if (jobs.size >= options.limit) break;
        job = { messageId: row.message_id, indexes: [] };
        jobs.set(jobKey, job);
      }
      job.indexes.push(row.idx);
      this.#claimed.add(key);
    }
    const result: DeliveryJob[] = [];
    for (const job of jobs.values()) {
      const message = this.#load(job.messageId);
      if (!message) continue;
      result.push({ message, recipients: message.recipients.filter((r) => job.indexes.includes(r.index)) });
    }
    return result;
  }

  async nextDueAt(hopType?: NextHop['type']): Promise<number | undefined> {
    if (!this.#db) return undefined;
    let earliest: number | undefined;
    for (const type of hopType === undefined ? HOP_TYPES : [hopType]) {
      const due = this.#nextUnclaimed(type);
      if (due !== undefined && (earliest === undefined || due < earliest)) earliest = due;
    }
    return earliest;
  }

  /**
   * Claimed recipients are still `pending` in their rows; they are skipped here, or a scheduler
   * would see a long delivery in progress as work due now and wake without pause. The index
   * gives the rows in due order, so this reads at most the claimed ones plus one.
   */
  #nextUnclaimed(hopType: NextHop['type']): number | undefined {
    const rows = this.#stmts!.dueOrderByHop.iterate(hopType) as Iterable<
      Pick<RecipientRow, 'message_id' | 'idx' | 'next_attempt_at'>
    >;
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

  async countRecipients(): Promise<Record<RecipientStatus, number>> {
    const counts: Record<RecipientStatus, number> = {
      pending: 0,
      active: 0,
      suspended: 0,
      delivered: 0,
      failed: 0,
    };
    if (!this.#db) return counts;
    for (const row of this.#stmts!.countByStatus.all() as Array<{ status: RecipientStatus; n: number }>) {
      counts[row.status] = row.n;
    }
    counts.active = this.#claimed.size;
    counts.pending -= this.#claimed.size;
    return counts;
  }

  /** Like recordOutcomes: batched into the next transaction, resolved once durable. */
  #writeNotificationState(
    work: Pick<PendingOutcomes, 'completions' | 'delayRequests' | 'expirations' | 'reroutes'>,
  ): Promise<void> {
    if (!this.#db) return Promise.reject(new QueueUnavailableError('queue is closed'));
    return new Promise((resolve, reject) => {
      this.#outcomes.push({ outcomes: [], ...work, resolve, reject });
      this.#scheduleFlush();
    });
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
      if (rows.length > 0) await this.#writeNotificationState({ delayRequests: rows });
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
        reroutes.push({ messageId: id, index: recipient.index, hopType, hopTarget, now });
      }
    }
    if (reroutes.length > 0) await this.#writeNotificationState({ reroutes });
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
      for (const key of keys) this.#claimed.add(key);
      try {
        await this.#writeNotificationState({ expirations });
      } finally {
        for (const key of keys) this.#claimed.delete(key);
      }
      expired += expirations.length;
      if (expirations.length < limit) return expired;
    }
  }

  #load(id: string): QueuedMessage | undefined {
    const s = this.#stmts!;
    const row = s.getMessage.get(id) as MessageRow | undefined;
    if (!row) return undefined;
    const recipients = (s.getRecipients.all(id) as unknown as RecipientRow[]).map((r) =>
      this.#toRecipient(r),
    );
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
      status: claimed ? 'active' : (r.status as RecipientStatus),
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
        WHERE message_id = ?3 AND status IN ('pending', 'active', 'suspended')`,
    ),
    dueAny: p(
      `SELECT message_id, idx, hop_type, hop_target FROM recipients WHERE status = 'pending' AND next_attempt_at <= ?
        ORDER BY next_attempt_at, message_id, idx LIMIT ?`,
    ),
    dueByHop: p(
      `SELECT message_id, idx, hop_type, hop_target FROM recipients WHERE status = 'pending' AND hop_type = ? AND next_attempt_at <= ?
        ORDER BY next_attempt_at, message_id, idx LIMIT ?`,
    ),
    dueOrderByHop: p(
      `SELECT message_id, idx, next_attempt_at FROM recipients WHERE status = 'pending' AND hop_type = ?
        ORDER BY next_attempt_at, message_id, idx`,
    ),
    listIds: p(
      `SELECT m.id FROM messages m WHERE m.id > ? AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
        AND r.status IN ('pending', 'active', 'suspended')) ORDER BY m.id LIMIT ?`,
    ),
    countByStatus: p('SELECT status, COUNT(*) AS n FROM recipients GROUP BY status'),
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
  };
}
