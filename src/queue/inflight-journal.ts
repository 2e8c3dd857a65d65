import { closeSync, ftruncateSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';

/** Past this size the journal is rewritten with only what is in flight now. */
const COMPACT_AT_BYTES = 1024 * 1024;

/**
 * Which messages are being delivered right now, in a file that outlives a crash of the process:
 * `+<id>` when delivery of a message begins, `-<id>` when its outcomes are recorded. After a
 * crash, the ids with a `+` and no `-` are the messages that were in processing when the node
 * died; the store counts a crash against each (poison detection, Exchange's PoisonThreshold).
 *
 * Lines are written with a synchronous write() and no fsync, on purpose: once write() returns,
 * the bytes are in the kernel's page cache, which survives the death of the process (SIGKILL,
 * abort, an uncaught exception, the OOM killer); only a kernel crash or power loss loses them,
 * and then the worst case is one crash not counted. An fsync per delivery would cost a disk
 * flush for a record whose only job is to survive the process.
 *
 * The file stays small: it is truncated whenever nothing is in flight, and rewritten with just
 * the messages in flight once it passes 1 MiB (a busy node may never be idle).
 */
export class InflightJournal {
  readonly #path: string;
  #fd: number | undefined;
  #bytes = 0;
  readonly #inflight = new Set<string>();
  readonly #onError: (error: Error) => void;

  /**
   * `onError` hears of the first write that fails (disk full, I/O error): the journal then stops
   * and removes its file, so poison detection is off until the next start, and nothing else is
   * affected — a journal must never be the reason a delivery or its outcome fails.
   */
  constructor(path: string, onError: (error: Error) => void = () => {}) {
    this.#path = path;
    this.#onError = onError;
  }

  /** The messages a previous process left in flight (read before `open`, which empties the file). */
  static leftovers(path: string): Set<string> {
    let text: string;
    try {
      text = readFileSync(path, 'latin1');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
      throw error;
    }
    const open = new Set<string>();
    // A crash can cut the last line short: only whole lines count.
    for (const line of text.split('\n').slice(0, -1)) {
      const id = line.slice(1);
      if (id === '') continue;
      if (line[0] === '+') open.add(id);
      else if (line[0] === '-') open.delete(id);
    }
    return open;
  }

  /** Starts an empty journal (whatever was in it was read by `leftovers`). */
  open(): void {
    this.#fd = openSync(this.#path, 'w', 0o600);
    this.#bytes = 0;
  }

  /** Delivery of these messages begins: one write for a whole claim, whatever its size. */
  begin(messageIds: ReadonlyArray<string>): void {
    let lines = '';
    for (const id of messageIds) {
      if (this.#inflight.has(id)) continue;
      this.#inflight.add(id);
      lines += `+${id}\n`;
    }
    if (lines !== '') this.#append(lines);
  }

  /** Its outcomes are recorded (or its claim given back): no longer in processing. */
  end(messageId: string): void {
    if (!this.#inflight.delete(messageId)) return;
    if (this.#inflight.size === 0) {
      this.#truncate();
      return;
    }
    this.#append(`-${messageId}\n`);
    if (this.#bytes > COMPACT_AT_BYTES) this.#compact();
  }

  get size(): number {
    return this.#inflight.size;
  }

  /** A clean stop: nothing was in processing when the node went down. */
  close(): void {
    if (this.#fd === undefined) return;
    this.#inflight.clear();
    this.#truncate();
    closeSync(this.#fd);
    this.#fd = undefined;
  }

  #append(line: string): void {
    if (this.#fd === undefined) return;
    // O_APPEND is not used: writes go at our own offset, which #truncate resets.
    this.#guard(() => {
      this.#bytes += writeSync(this.#fd!, line, this.#bytes, 'latin1');
    });
  }

  #truncate(): void {
    if (this.#fd === undefined || this.#bytes === 0) return;
    this.#guard(() => {
      ftruncateSync(this.#fd!, 0);
      this.#bytes = 0;
    });
  }

  /** Runs a file operation; on failure the journal stops (see the constructor). */
  #guard(operation: () => void): void {
    try {
      operation();
    } catch (error) {
      const fd = this.#fd;
      this.#fd = undefined;
      this.#inflight.clear();
      try {
        if (fd !== undefined) closeSync(fd);
        // A half-written journal would count crashes that never happened at the next start.
        unlinkSync(this.#path);
      } catch {
        // Nothing more to do: the next start reads whatever is left.
      }
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Rewrites the file with only the messages in flight; the rename is atomic, so a crash sees one or the other. */
  #compact(): void {
    this.#guard(() => {
      const temporary = `${this.#path}.new`;
      const fd = openSync(temporary, 'w', 0o600);
      let bytes = 0;
      for (const id of this.#inflight) bytes += writeSync(fd, `+${id}\n`, bytes, 'latin1');
      renameSync(temporary, this.#path);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = fd;
      this.#bytes = bytes;
    });
  }
}
