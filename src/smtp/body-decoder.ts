/**
 * Streaming decoder for message content: DATA (dot transparency, end only on CRLF.CRLF) and BDAT
 * chunks (no dots), both with the bare-CR/LF policy that keeps SMTP smuggling out.
 *
 * The end of DATA is recognised only after a real CRLF: a bare LF or CR never starts a line for
 * that purpose, even when `normalize` turns it into CRLF in the stored copy. So `\n.\n`,
 * `\r.\r`, `\r\n.\n` and the rest of the published variants are content, never an end.
 *
 * It also measures lines as it copies them (`maxLineLength`): the length of each run between
 * line breaks is added once per run, never per byte, so the limit costs nothing measurable.
 */

export type BareLineEndingPolicy = 'reject' | 'normalize' | 'allow';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');

export interface DecodeResult {
  /** Decoded content of this input (dots removed, line endings per policy). */
  readonly output: Buffer;
  /** Input bytes used; the rest (after the end of data) belongs to the next command. */
  readonly consumed: number;
  /** The terminating `CRLF.CRLF` was seen (DATA only). */
  readonly ended: boolean;
}

export class BodyDecoder {
  readonly #dots: boolean;
  readonly #policy: BareLineEndingPolicy;
  /** After a real CRLF (or at the start of DATA). */
  #lineStart = true;
  /** A `.` opened this line; held back until we know whether it ends the data. */
  #dotHeld = false;
  /** A CR was the last byte of the previous input. */
  #crHeld = false;
  /** A bare CR or LF was seen. */
  bareLineEnding = false;
  readonly #maxLineLength: number;
  /** Content octets of the current line so far (line ending and stuffed dot not counted). */
  #lineLength = 0;
  /** A line longer than `maxLineLength` was seen. */
  lineTooLong = false;

  constructor(options: {
    dotTransparency: boolean;
    bareLineEndings: BareLineEndingPolicy;
    /** Longest line, in content octets without its line ending; longer sets `lineTooLong`. */
    maxLineLength?: number;
  }) {
    this.#dots = options.dotTransparency;
    this.#policy = options.bareLineEndings;
    this.#maxLineLength = options.maxLineLength ?? Number.POSITIVE_INFINITY;
  }

  readonly #breaks = new LineBreakFinder();

  decode(input: Buffer): DecodeResult {
    this.#breaks.reset(input);
    const parts: Buffer[] = [];
    let runStart = 0;
    let i = 0;
    const flush = (end: number) => {
      if (end > runStart) parts.push(input.subarray(runStart, end));
    };
    const bare = (byte: number) => {
      this.bareLineEnding = true;
      if (this.#policy === 'normalize') parts.push(CRLF);
      else parts.push(Buffer.from([byte]));
    };

    if (this.#crHeld) {
      this.#crHeld = false;
      if (input.length > 0 && input[0] === LF) {
        i = 1;
        if (this.#dotHeld) {
          // `CRLF . CRLF`: the end.
          this.#dotHeld = false;
          return { output: Buffer.alloc(0), consumed: 1, ended: true };
        }
        parts.push(CRLF);
        this.#lineStart = true;
      } else {
        if (this.#dotHeld) this.#dotHeld = false;
        bare(CR);
        this.#lineStart = false;
      }
      this.#lineLength = 0;
      runStart = i;
    }

    while (i < input.length) {
      if (this.#dots && this.#lineStart) {
        this.#lineStart = false;
        if (input[i] === DOT) {
          // Either the terminator or a stuffed dot; in both cases the dot itself is not content.
          flush(i);
          this.#dotHeld = true;
          i++;
          runStart = i;
          continue;
        }
      }
      this.#lineStart = false;
      const b = input[i]!;
      if (b !== CR && b !== LF) {
        if (this.#dotHeld) this.#dotHeld = false;
        // Ordinary bytes up to the next CR or LF are copied as one run, and counted as one.
        const end = this.#breaks.next(i + 1);
        this.#lineLength += end - i;
        if (this.#lineLength > this.#maxLineLength) this.lineTooLong = true;
        i = end;
        continue;
      }
      // Any line break ends the line for the length limit (a bare one too: normalize makes it CRLF).
      this.#lineLength = 0;
      if (b === LF) {
        flush(i);
        this.#dotHeld = false;
        if (this.#policy === 'allow') parts.push(input.subarray(i, i + 1));
        else bare(LF);
        i++;
        runStart = i;
        continue;
      }
      // CR: look at the next byte, which may be in the next input.
      if (i + 1 === input.length) {
        flush(i);
        this.#crHeld = true;
        i++;
        runStart = i;
        break;
      }
      if (input[i + 1] === LF) {
        if (this.#dotHeld) {
          this.#dotHeld = false;
          flush(i);
          return { output: joined(parts), consumed: i + 2, ended: true };
        }
        // A CRLF is content as it stands: it stays in the run. Cutting the run at every line
        // made two Buffer views per line, over a million for a 100 MB message, and that garbage
        // was most of the memory a large DATA transfer took (bench/large-message.ts).
        this.#lineStart = true;
        i += 2;
        continue;
      }
      flush(i);
      this.#dotHeld = false;
      if (this.#policy === 'allow') parts.push(input.subarray(i, i + 1));
      else bare(CR);
      i++;
      runStart = i;
    }
    flush(i);
    return { output: joined(parts), consumed: input.length, ended: false };
  }

  /** End of a BDAT LAST: a CR held back at the very end is content. */
  finish(): Buffer {
    if (!this.#crHeld) return Buffer.alloc(0);
    this.#crHeld = false;
    this.bareLineEnding = true;
    return this.#policy === 'normalize' ? CRLF : Buffer.from([CR]);
  }
}

/**
 * Finds the next CR or LF. Each search result is remembered until passed, so a chunk full of
 * one of them and free of the other is still scanned once, not once per byte.
 */
class LineBreakFinder {
  #input: Buffer = Buffer.alloc(0);
  #cr = -1;
  #lf = -1;

  reset(input: Buffer): void {
    this.#input = input;
    this.#cr = -1;
    this.#lf = -1;
  }

  next(from: number): number {
    const input = this.#input;
    if (this.#cr !== input.length && this.#cr < from) {
      const cr = input.indexOf(CR, from);
      this.#cr = cr < 0 ? input.length : cr;
    }
    if (this.#lf !== input.length && this.#lf < from) {
      const lf = input.indexOf(LF, from);
      this.#lf = lf < 0 ? input.length : lf;
    }
    return Math.min(this.#cr, this.#lf);
  }
}

/** The decoded bytes; a single run is returned as the view it is, without a copy. */
function joined(parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
