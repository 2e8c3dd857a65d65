/**
 * Watches the header section of a message as it streams past: its size, the number of
 * `Received:` headers (hop count), and the Message-ID and Subject values for the queue and
 * tracking, and every From: field (for send-as checks). Only a bounded part of any one line is
 * kept; a From: field that does not fit is flagged rather than silently cut.
 */

const KEEP_PER_LINE = 1000;
const CAPTURE_LIMIT = 998;
/** The From: fields together are kept up to this many characters; beyond, `fromOverflow`. */
const FROM_LIMIT = 16 * 1024;

export class HeaderScanner {
  headerBytes = 0;
  receivedCount = 0;
  messageId: string | undefined;
  subject: string | undefined;
  /** The value of every From: field, unfolded, in order. */
  readonly fromFields: string[] = [];
  /** A From: field was longer than what is kept: `fromFields` is incomplete. */
  fromOverflow = false;
  #fromLength = 0;
  #lineTruncated = false;
  #done = false;
  #line: number[] = [];
  #lineLength = 0;
  #capturing: 'messageId' | 'subject' | 'from' | undefined;

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
      if (b !== 0x0d) {
        if (this.#line.length < KEEP_PER_LINE) this.#line.push(b);
        else this.#lineTruncated = true;
      }
      this.#lineLength++;
    }
  }

  #endLine(): void {
    const line = Buffer.from(this.#line).toString('utf8');
    const empty = this.#lineLength === 0 || (this.#lineLength === 1 && line === '');
    const truncated = this.#lineTruncated;
    this.#line = [];
    this.#lineLength = 0;
    this.#lineTruncated = false;
    if (empty) {
      this.#done = true;
      return;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (this.#capturing === 'from') this.#appendFrom(line, truncated);
      else if (this.#capturing) this.#append(this.#capturing, line);
      return;
    }
    this.#capturing = undefined;
    const colon = line.indexOf(':');
    if (colon <= 0) return;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1);
    if (name === 'received') this.receivedCount++;
    else if (name === 'from') {
      this.#capturing = 'from';
      this.fromFields.push('');
      this.#appendFrom(value, truncated);
    } else if (name === 'message-id' && this.messageId === undefined) {
      this.#capturing = 'messageId';
      this.messageId = '';
      this.#append('messageId', value);
    } else if (name === 'subject' && this.subject === undefined) {
      this.#capturing = 'subject';
      this.subject = '';
      this.#append('subject', value);
    }
  }

  #appendFrom(text: string, truncated: boolean): void {
    if (truncated) this.fromOverflow = true;
    this.#fromLength += text.length + 1;
    if (this.#fromLength > FROM_LIMIT) {
      this.fromOverflow = true;
      return;
    }
    const last = this.fromFields.length - 1;
    this.fromFields[last] = `${this.fromFields[last]} ${text}`;
  }

  #append(field: 'messageId' | 'subject', text: string): void {
    const joined = `${this[field] ?? ''} ${text.trim()}`.trim();
    this[field] = joined.slice(0, CAPTURE_LIMIT);
  }
}
