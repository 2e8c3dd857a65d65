/**
 * A session's unread input, kept as the chunks the socket delivered. Message content is decoded
 * chunk by chunk from the front, so its bytes are never copied on the way to the body file.
 *
 * Joining every arrival onto the unread rest (`Buffer.concat`) copied the whole backlog each time
 * a chunk arrived while the session waited for a body write: up to 2.5 copies of each byte of a
 * 100 MB message, which was most of the memory a large DATA transfer took
 * (bench/large-message.ts). Only a command line that spans chunks is joined, and commands are
 * short.
 */
export class InputQueue {
  #chunks: Buffer[] = [];
  #head = 0;
  #length = 0;

  /** Unread bytes in all chunks. */
  get length(): number {
    return this.#length;
  }

  /**
   * What the unread input costs in memory, for the session's pause threshold: its bytes plus
   * CHUNK_OVERHEAD per chunk. A client that sends one byte per TCP segment while the session
   * waits would otherwise queue hundreds of thousands of Buffer objects (~100–400 bytes each)
   * under a threshold that counts only bytes.
   */
  get footprint(): number {
    return this.#length + (this.#chunks.length - this.#head) * CHUNK_OVERHEAD;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The oldest unread chunk (a view, not a copy); empty when nothing is unread. */
  front(): Buffer {
    return this.#chunks[this.#head] ?? EMPTY;
  }

  /** Whether another chunk follows the front one. */
  hasMoreThanFront(): boolean {
    return this.#chunks.length - this.#head > 1;
  }

  /** Joins the front chunk with the one after it, for a command line that spans both. */
  joinFront(): void {
    if (!this.hasMoreThanFront()) return;
    const joined = Buffer.concat([this.#chunks[this.#head]!, this.#chunks[this.#head + 1]!]);
    // The old front may be a view that pins a whole socket buffer: let it go now.
    this.#chunks[this.#head] = EMPTY;
    this.#head++;
    this.#chunks[this.#head] = joined;
    this.#compact();
  }

  /** Marks the first `count` bytes of the front chunk read (at most its length). */
  consumeFront(count: number): void {
    const front = this.#chunks[this.#head];
    if (!front || count <= 0) return;
    const n = Math.min(count, front.length);
    this.#length -= n;
    if (n === front.length) {
      this.#chunks[this.#head] = EMPTY;
      this.#head++;
      this.#compact();
    } else {
      this.#chunks[this.#head] = front.subarray(n);
    }
  }

  /** Throws away everything unread. */
  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#length = 0;
  }

  /** Drops read slots from the array now and then, so a long session's array stays short. */
  #compact(): void {
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);
/** Bytes a queued chunk is counted as beyond its content (a Buffer object and its slot). */
const CHUNK_OVERHEAD = 512;
