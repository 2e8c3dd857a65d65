/**
 * Watches the header section of a message as it streams past: its size, the number of
 * `Received:` headers (hop count), and the Message-ID and Subject values for the queue and
 * tracking. Only a bounded part of any one line is kept.
 */

const KEEP_PER_LINE = 1000;
const CAPTURE_LIMIT = 998;

export class HeaderScanner {
  headerBytes = 0;
  receivedCount = 0;
  messageId: string | undefined;
  subject: string | undefined;
  #done = false;
  #line: number[] = [];
  #lineLength = 0;
  #capturing: 'messageId' | 'subject' | undefined;

  get done(): boolean {
    return this.#done;
  }

  /** Feeds decoded content; stops looking at the first empty line. */
  push(chunk: Buffer): void {
    if (this.#done) return;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      this.headerBytes++;
      if (b === 0x0a) {
        this.#endLine();
        if (this.#done) return;
        continue;
      }
      if (b !== 0x0d && this.#line.length < KEEP_PER_LINE) this.#line.push(b);
      this.#lineLength++;
    }
  }

  #endLine(): void {
    const line = Buffer.from(this.#line).toString('utf8');
    const empty = this.#lineLength === 0 || (this.#lineLength === 1 && line === '');
    this.#line = [];
    this.#lineLength = 0;
    if (empty) {
      this.#done = true;
      return;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (this.#capturing) this.#append(this.#capturing, line);
      return;
    }
    this.#capturing = undefined;
    const colon = line.indexOf(':');
    if (colon <= 0) return;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1);
    if (name === 'received') this.receivedCount++;
    else if (name === 'message-id' && this.messageId === undefined) {
      this.#capturing = 'messageId';
      this.messageId = '';
      this.#append('messageId', value);
    } else if (name === 'subject' && this.subject === undefined) {
      this.#capturing = 'subject';
      this.subject = '';
      this.#append('subject', value);
    }
  }

  #append(field: 'messageId' | 'subject', text: string): void {
    const joined = `${this[field] ?? ''} ${text.trim()}`.trim();
    this[field] = joined.slice(0, CAPTURE_LIMIT);
  }
}
