/**
 * SMTP protocol logs, per connector, as Exchange writes them: CSV files in `<dir>/SmtpReceive/`
 * and `<dir>/SmtpSend/`, one line per event of a session (`+` connect, `-` disconnect, `>` sent,
 * `<` received, `*` information), each file opened with Exchange's `#Software` … `#Fields`
 * header, a new file per hour and whenever one grows past maxFileSize, old files deleted by
 * age and by the folder's total size.
 *
 * Logging must never cost a session anything but building its line: lines are buffered and
 * appended through a write stream in the background; a full disk or a folder that cannot be
 * written is logged once and pauses the log (mail keeps flowing); the hourly maintenance tries
 * again.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import packageJson from '../../package.json' with { type: 'json' };
import type { Clock } from '../core/clock.ts';
import type { IdGenerator } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import { SessionLog, type SessionProtocolLog } from './session-log.ts';

export { endpoint, type SessionProtocolLog } from './session-log.ts';

export const PROTOCOL_LOG_FIELDS =
  'date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context';

/** Exchange's defaults (Set-TransportService *ProtocolLogMax*). */
export const PROTOCOL_LOG_DEFAULTS = {
  maxFileSize: 10 * 1024 * 1024,
  maxDirectorySize: 250 * 1024 * 1024,
  maxAge: 30 * 86_400_000,
};

const HOUR_MS = 3_600_000;
/** Lines waiting for the disk beyond this are dropped (counted and reported), not kept in memory. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** Lines gathered before a write is started without waiting for the next turn of the loop. */
const BATCH_BYTES = 64 * 1024;
const FILE_NAME = /^(RECV|SEND)(\d{10})-(\d+)\.LOG$/;

export interface ProtocolLogLimits {
  readonly maxFileSize: number;
  readonly maxDirectorySize: number;
  readonly maxAge: number;
}

export interface ProtocolLogWriterOptions extends ProtocolLogLimits {
  /** The folder of this log's files (SmtpReceive or SmtpSend). */
  readonly dir: string;
  readonly kind: 'receive' | 'send';
  readonly clock: Clock;
  readonly logger: Logger;
}

/** `2026120109`: the hour a file's name carries (UTC). */
function hourKey(ms: number): string {
  return new Date(ms).toISOString().slice(0, 13).replace(/[-T]/g, '');
}

/**
 * The files of one folder: appends lines, rotates, deletes old files. Lines are whole in one
 * file: a rotation happens between lines.
 */
export class ProtocolLogWriter {
  readonly #o: ProtocolLogWriterOptions;
  readonly #prefix: 'RECV' | 'SEND';
  #pending: string[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #stream: WriteStream | undefined;
  #file: string | undefined;
  #fileBytes = 0;
  #fileHour = '';
  /** The highest counter used per hour, so a restart never writes into an older file. */
  readonly #counters = new Map<string, number>();
  #waitingForDrain = false;
  #paused = false;
  #errorReported = false;
  #dropped = 0;
  #timer: NodeJS.Timeout | undefined;
  #maintaining: Promise<void> | undefined;
  #closed = false;
  /** Settles when the last chunk handed to the stream is written (or the stream is gone). */
  #lastWrite: Promise<void> = Promise.resolve();
  /** Streams ended by rotation whose last bytes may still be on their way. */
  readonly #closing = new Set<Promise<void>>();

  constructor(options: ProtocolLogWriterOptions) {
    this.#o = options;
    this.#prefix = options.kind === 'receive' ? 'RECV' : 'SEND';
  }

  /** Creates the folder and applies retention; never throws (a failure pauses the log). */
  async start(): Promise<void> {
    await this.#prepare();
    await this.maintain();
    this.#timer = setInterval(() => void this.#hourly(), HOUR_MS);
    this.#timer.unref();
  }

  async #prepare(): Promise<boolean> {
    try {
      await mkdir(this.#o.dir, { recursive: true });
      return true;
    } catch (error) {
      this.#failed(error);
      return false;
    }
  }

  /** Once an hour: a paused log tries again, and retention runs. */
  async #hourly(): Promise<void> {
    if (this.#paused && !this.#closed) {
      this.#paused = false;
      if (await this.#prepare()) this.#o.logger.info({ dir: this.#o.dir }, 'protocol log: writing again');
    }
    await this.maintain();
  }

  /** True while a write problem keeps this log from writing (until the next hourly check). */
  get paused(): boolean {
    return this.#paused;
  }

  append(line: string): void {
    if (this.#closed || this.#paused) return;
    if (this.#pendingBytes > MAX_PENDING_BYTES) {
      this.#dropped++;
      return;
    }
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#waitingForDrain) return;
    if (this.#pendingBytes >= BATCH_BYTES) this.#drain();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#drain();
      });
    }
  }

  /** Hands every pending line to the file and waits until the file has it. */
  async flush(): Promise<void> {
    this.#drain();
    while (this.#waitingForDrain && this.#stream) {
      const stream = this.#stream;
      // The writer's own drain listener runs first and writes what waited meanwhile.
      await new Promise<void>((resolve) => {
        stream.once('drain', resolve);
        stream.once('close', resolve);
      });
    }
    await this.#lastWrite;
    await Promise.all([...this.#closing]);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    this.#closed = true;
    await this.#maintaining;
    await this.#endStream();
  }

  /**
   * Deletes files older than maxAge, then the oldest files while the folder is over
   * maxDirectorySize; the file being written is kept.
   */
  maintain(): Promise<void> {
    this.#maintaining ??= this.#retention().finally(() => {
      this.#maintaining = undefined;
    });
    return this.#maintaining;
  }

  async #retention(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.#o.dir)).filter((n) => FILE_NAME.test(n) && n.startsWith(this.#prefix));
    } catch {
      return;
    }
    const files: Array<{ path: string; name: string; mtime: number; size: number }> = [];
    for (const name of names) {
      const path = join(this.#o.dir, name);
      const m = FILE_NAME.exec(name)!;
      const counter = Number(m[3]);
      if (counter > (this.#counters.get(m[2]!) ?? 0)) this.#counters.set(m[2]!, counter);
      try {
        const s = await stat(path);
        files.push({ path, name, mtime: s.mtimeMs, size: s.size });
      } catch {
        // Deleted meanwhile.
      }
    }
    const now = this.#o.clock.now();
    const keep: typeof files = [];
    const remove = async (path: string) => {
      try {
        await unlink(path);
      } catch (error) {
        this.#o.logger.debug({ err: error, path }, 'protocol log: cannot delete an old file');
      }
    };
    for (const f of files) {
      if (f.path !== this.#file && now - f.mtime > this.#o.maxAge) await remove(f.path);
      else keep.push(f);
    }
    keep.sort((a, b) => a.mtime - b.mtime || a.name.localeCompare(b.name));
    let total = keep.reduce((sum, f) => sum + (f.path === this.#file ? this.#fileBytes : f.size), 0);
    for (const f of keep) {
      if (total <= this.#o.maxDirectorySize) break;
      if (f.path === this.#file) continue;
      await remove(f.path);
      total -= f.size;
    }
  }

  #drain(): void {
    if (this.#waitingForDrain || this.#pending.length === 0) return;
    const lines = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#paused || this.#closed) return;
    const hour = hourKey(this.#o.clock.now());
    let chunk = '';
    let chunkBytes = 0;
    for (const line of lines) {
      const bytes = Buffer.byteLength(line);
      const full =
        this.#fileBytes + chunkBytes + bytes > this.#o.maxFileSize && this.#fileBytes + chunkBytes > 0;
      if (!this.#stream || hour !== this.#fileHour || full) {
        if (chunk !== '') this.#write(chunk, chunkBytes);
        chunk = '';
        chunkBytes = 0;
        if (!this.#open(hour)) return;
      }
      chunk += line;
      chunkBytes += bytes;
    }
    if (chunk !== '') this.#write(chunk, chunkBytes);
    if (this.#dropped > 0) {
      this.#o.logger.warn(
        { dir: this.#o.dir, dropped: this.#dropped },
        'protocol log fell behind the disk; lines were dropped',
      );
      this.#dropped = 0;
    }
  }

  #write(chunk: string, bytes: number): void {
    const stream = this.#stream;
    if (!stream) return;
    this.#fileBytes += bytes;
    let ok = true;
    // The callback comes after the write, or with the error that cut it short (destroy included).
    this.#lastWrite = new Promise<void>((resolve) => {
      ok = stream.write(chunk, () => resolve());
    });
    if (!ok) {
      this.#waitingForDrain = true;
      stream.once('drain', () => {
        // A file rotated away meanwhile no longer decides when the current one is written.
        if (this.#stream !== stream) return;
        this.#waitingForDrain = false;
        this.#drain();
      });
    }
  }

  /** Ends the current file (if any) and starts the next one with its header; false when paused. */
  #open(hour: string): boolean {
    void this.#endStream();
    const counter = (this.#counters.get(hour) ?? 0) + 1;
    this.#counters.set(hour, counter);
    const path = join(this.#o.dir, `${this.#prefix}${hour}-${counter}.LOG`);
    const stream = createWriteStream(path, { flags: 'a', highWaterMark: 256 * 1024 });
    stream.on('error', (error) => {
      if (this.#stream === stream) {
        this.#stream = undefined;
        this.#file = undefined;
        this.#waitingForDrain = false;
      }
      stream.destroy();
      this.#failed(error);
    });
    this.#stream = stream;
    this.#file = path;
    this.#fileHour = hour;
    this.#fileBytes = 0;
    const header = [
      `#Software: Ferrymail`,
      `#Version: ${packageJson.version}`,
      `#Log-type: ${this.#o.kind === 'receive' ? 'SMTP Receive Protocol Log' : 'SMTP Send Protocol Log'}`,
      `#Date: ${new Date(this.#o.clock.now()).toISOString()}`,
      `#Fields: ${PROTOCOL_LOG_FIELDS}`,
      '',
    ].join('\r\n');
    this.#write(header, Buffer.byteLength(header));
    // Rotation keeps the folder within its size as it grows, not only once an hour.
    if (counter > 1) void this.maintain();
    return !this.#paused;
  }

  #endStream(): Promise<void> {
    const stream = this.#stream;
    this.#stream = undefined;
    this.#file = undefined;
    this.#waitingForDrain = false;
    if (!stream || stream.destroyed) return Promise.resolve();
    const ended = new Promise<void>((resolve) => {
      stream.once('close', () => resolve());
      stream.end();
    });
    this.#closing.add(ended);
    void ended.then(() => this.#closing.delete(ended));
    return ended;
  }

  /** A write or a folder that cannot be used: said once, then the log pauses until maintenance. */
  #failed(error: unknown): void {
    this.#paused = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#errorReported) {
      this.#o.logger.debug({ err: error, dir: this.#o.dir }, 'protocol log still cannot be written');
      return;
    }
    this.#errorReported = true;
    this.#o.logger.error(
      { err: error, dir: this.#o.dir },
      'protocol log cannot be written; protocol logging is paused (mail flow is not affected)',
    );
  }
}

export interface ProtocolLogsOptions extends ProtocolLogLimits {
  /** The protocol log folder; the files go to its SmtpReceive/ and SmtpSend/ folders. */
  readonly dir: string;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
}

/** A node's two protocol logs, and the sessions that write to them. */
export class ProtocolLogs {
  readonly receive: ProtocolLogWriter;
  readonly send: ProtocolLogWriter;
  readonly #o: ProtocolLogsOptions;

  private constructor(options: ProtocolLogsOptions) {
    this.#o = options;
    const common = {
      maxFileSize: options.maxFileSize,
      maxDirectorySize: options.maxDirectorySize,
      maxAge: options.maxAge,
      clock: options.clock,
      logger: options.logger,
    };
    this.receive = new ProtocolLogWriter({
      ...common,
      dir: join(options.dir, 'SmtpReceive'),
      kind: 'receive',
    });
    this.send = new ProtocolLogWriter({ ...common, dir: join(options.dir, 'SmtpSend'), kind: 'send' });
  }

  /** Never throws: a folder that cannot be created pauses that log and is reported. */
  static async open(options: ProtocolLogsOptions): Promise<ProtocolLogs> {
    const logs = new ProtocolLogs(options);
    await Promise.all([logs.receive.start(), logs.send.start()]);
    return logs;
  }

  /** A session on a receive connector (with the session id the rest of the node knows it by). */
  receiveSession(connector: string, sessionId: string): SessionProtocolLog {
    return new SessionLog({
      sink: this.receive,
      role: 'receive',
      connector,
      sessionId,
      now: () => this.#o.clock.now(),
    });
  }

  /**
   * An outbound connection on a send connector. `credentials`: the smart-host login, so that the
   * password cannot reach the file in any encoding, whatever a line carries.
   */
  sendSession(connector: string, credentials?: { username: string; password: string }): SessionProtocolLog {
    return new SessionLog({
      sink: this.send,
      role: 'send',
      connector,
      sessionId: this.#o.ids.sessionId(),
      now: () => this.#o.clock.now(),
      ...(credentials ? { secrets: secretForms(credentials.username, credentials.password) } : {}),
    });
  }

  /** For the delivery agent: a session of a new connection, when the send connector logs. */
  readonly sendConnectorSession = (
    connector: { readonly name: string; readonly protocolLogging: 'none' | 'verbose' },
    credentials: { username: string; password: string } | undefined,
  ): SessionProtocolLog | undefined =>
    connector.protocolLogging === 'verbose' ? this.sendSession(connector.name, credentials) : undefined;

  async flush(): Promise<void> {
    await Promise.all([this.receive.flush(), this.send.flush()]);
  }

  async close(): Promise<void> {
    await Promise.all([this.receive.close(), this.send.close()]);
  }
}

/** The password, and every way AUTH PLAIN or LOGIN puts it on the wire. */
function secretForms(username: string, password: string): string[] {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  return [
    password,
    b64(password),
    b64(`\0${username}\0${password}`),
    b64(`${username}\0${username}\0${password}`),
  ];
}

interface ProtocolLogConfig {
  readonly node: { readonly dataDir: string };
  readonly protocolLog?: Partial<ProtocolLogLimits> & { readonly dir?: string | undefined };
  readonly receiveConnectors: ReadonlyArray<{ readonly protocolLogging: 'none' | 'verbose' }>;
  readonly sendConnectors: ReadonlyArray<{ readonly protocolLogging: 'none' | 'verbose' }>;
}

/**
 * The node's protocol logs, or undefined when no connector logs (then no folder is made and
 * sessions carry no log at all).
 */
export async function protocolLogsFor(
  config: ProtocolLogConfig,
  deps: { clock: Clock; ids: IdGenerator; logger: Logger },
): Promise<ProtocolLogs | undefined> {
  const verbose = (c: { protocolLogging: 'none' | 'verbose' }) => c.protocolLogging === 'verbose';
  if (!config.receiveConnectors.some(verbose) && !config.sendConnectors.some(verbose)) return undefined;
  const o = config.protocolLog ?? {};
  return ProtocolLogs.open({
    dir: o.dir ?? join(config.node.dataDir, 'logs', 'protocol'),
    maxFileSize: o.maxFileSize ?? PROTOCOL_LOG_DEFAULTS.maxFileSize,
    maxDirectorySize: o.maxDirectorySize ?? PROTOCOL_LOG_DEFAULTS.maxDirectorySize,
    maxAge: o.maxAge ?? PROTOCOL_LOG_DEFAULTS.maxAge,
    ...deps,
  });
}
