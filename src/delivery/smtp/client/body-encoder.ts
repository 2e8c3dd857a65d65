/**
 * Wire encoding of a stored body, one chunk at a time: every line ending becomes CRLF (a bare CR
 * or LF never reaches the wire, whatever the stored copy holds: defence in depth against SMTP
 * smuggling), and for DATA a line starting with `.` gets a second one (RFC 5321 §4.5.2).
 * `end()` makes sure the content ends with CRLF and, for DATA, adds the `.CRLF` terminator.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const DOT_BUF = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');

export class BodyEncoder {
  readonly #dots: boolean;
  /** At the start of a line (or of the content). */
  #lineStart = true;
  /** The previous chunk ended in a CR; whether it was bare depends on this chunk's first byte. */
  #crHeld = false;
  /** Bare CR or LF seen and converted. */
  bareLineEndings = 0;

  constructor(options: { dotStuffing: boolean }) {
    this.#dots = options.dotStuffing;
  }

  encode(input: Buffer): Buffer {
    const parts: Buffer[] = [];
    const n = input.length;
    let i = 0;
    let runStart = 0;
    const breaks = new BreakFinder(input);
    if (this.#crHeld && n > 0) {
      this.#crHeld = false;
      parts.push(CRLF);
      if (input[0] === LF) i = 1;
      else this.bareLineEndings++;
      runStart = i;
      this.#lineStart = true;
    }
    while (i < n) {
      if (this.#lineStart) {
        this.#lineStart = false;
        if (this.#dots && input[i] === DOT) {
          if (i > runStart) parts.push(input.subarray(runStart, i));
          parts.push(DOT_BUF);
          runStart = i; // the original dot starts the next run
        }
      }
      const next = breaks.next(i);
      if (next >= n) break;
      if (input[next] === CR && next + 1 < n && input[next + 1] === LF) {
        // A proper CRLF stays inside the run.
        i = next + 2;
        this.#lineStart = true;
        continue;
      }
      if (next > runStart) parts.push(input.subarray(runStart, next));
      if (input[next] === CR && next + 1 === n) {
        // Decided by the next chunk.
        this.#crHeld = true;
        runStart = n;
        i = n;
        break;
      }
      parts.push(CRLF);
      this.bareLineEndings++;
      i = next + 1;
      runStart = i;
      this.#lineStart = true;
    }
    if (runStart < n) parts.push(runStart === 0 ? input : input.subarray(runStart));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The bytes that close the content: a CRLF if it did not end in one, and `.CRLF` for DATA. */
  end(): Buffer {
    const parts: Buffer[] = [];
    if (this.#crHeld) {
      this.#crHeld = false;
      this.bareLineEndings++;
      parts.push(CRLF);
      this.#lineStart = true;
    }
    if (!this.#lineStart) parts.push(CRLF);
    if (this.#dots) parts.push(TERMINATOR);
    this.#lineStart = true;
    return Buffer.concat(parts);
  }
}

/** The next CR or LF; each search result is kept until passed, so a chunk is scanned once. */
class BreakFinder {
  readonly #input: Buffer;
  #cr = -1;
  #lf = -1;

  constructor(input: Buffer) {
    this.#input = input;
  }

  next(from: number): number {
    const input = this.#input;
    if (this.#cr < from && this.#cr !== input.length) {
      const cr = input.indexOf(CR, from);
      this.#cr = cr < 0 ? input.length : cr;
    }
    if (this.#lf < from && this.#lf !== input.length) {
      const lf = input.indexOf(LF, from);
      this.#lf = lf < 0 ? input.length : lf;
    }
    return Math.min(this.#cr, this.#lf);
  }
}
