/**
 * Replies as the outbound client sees them, and the bounded parser that reads them off the wire.
 * A hostile peer can send anything: every limit here turns into a ReplyFormatError, never into
 * unbounded memory or a hang.
 */

export interface SmtpReply {
  readonly code: number;
  /** RFC 3463 enhanced status code of the last line, when the peer sent one. */
  readonly enhanced?: string;
  /** Text of each line, without the code and without the enhanced status code. */
  readonly lines: string[];
}

/** One line for logs and NDRs: `550 5.1.1 text of all lines`. Control characters become spaces. */
export function formatReply(r: SmtpReply): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters
  const text = r.lines.join(' ').replace(/[\x00-\x1f\x7f]/g, ' ');
  return [String(r.code), r.enhanced, text].filter((part) => part !== undefined && part !== '').join(' ');
}

/** A reply we make up ourselves (synthetic refusals, 421 handed to the remaining recipients). */
export function syntheticReply(code: number, enhanced: string, text: string): SmtpReply {
  return { code, enhanced, lines: [text] };
}

export const REPLY_LIMITS = {
  /** Bytes in one line, CRLF excluded (RFC 5321 §4.5.3.1.5 says 512; real servers send longer). */
  line: 4096,
  /** Lines in one reply. */
  lines: 500,
  /** Bytes in one reply, all lines together. */
  total: 64 * 1024,
};

export class ReplyFormatError extends Error {}

const LF = 0x0a;
const CR = 0x0d;
const CODE = /^([2-5][0-5][0-9])(?:([ -])(.*))?$/s;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

/**
 * Splits input into replies. Lines end in CRLF; a bare LF is tolerated (some servers send it),
 * the text is decoded as UTF-8 (RFC 6531 servers may send it).
 */
export class ReplyParser {
  #partial: Buffer[] = [];
  #partialLength = 0;
  #lines: string[] = [];
  #code = 0;
  #total = 0;

  /** Bytes of an incomplete line or reply are waiting. */
  get pending(): boolean {
    return this.#partialLength > 0 || this.#lines.length > 0;
  }

  push(chunk: Buffer): SmtpReply[] {
    const out: SmtpReply[] = [];
    let start = 0;
    for (;;) {
      const lf = chunk.indexOf(LF, start);
      if (lf < 0) {
        if (start < chunk.length) {
          this.#partial.push(chunk.subarray(start));
          this.#partialLength += chunk.length - start;
          if (this.#partialLength > REPLY_LIMITS.line + 1) {
            throw new ReplyFormatError(`reply line longer than ${REPLY_LIMITS.line} bytes`);
          }
        }
        return out;
      }
      let line = chunk.subarray(start, lf);
      if (this.#partialLength > 0) {
        line = Buffer.concat([...this.#partial, line]);
        this.#partial = [];
        this.#partialLength = 0;
      }
      start = lf + 1;
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      const reply = this.#line(line);
      if (reply) out.push(reply);
    }
  }

  #line(bytes: Buffer): SmtpReply | undefined {
    if (bytes.length > REPLY_LIMITS.line) {
      throw new ReplyFormatError(`reply line longer than ${REPLY_LIMITS.line} bytes`);
    }
    this.#total += bytes.length + 2;
    if (this.#total > REPLY_LIMITS.total) {
      throw new ReplyFormatError(`reply longer than ${REPLY_LIMITS.total} bytes`);
    }
    const text = bytes.toString('utf8');
    const m = CODE.exec(text);
    if (!m) throw new ReplyFormatError(`malformed reply line: ${JSON.stringify(text.slice(0, 80))}`);
    const code = Number(m[1]);
    if (this.#lines.length > 0 && code !== this.#code) {
      throw new ReplyFormatError(
        `reply code changed within a multi-line reply (${this.#code}, then ${code})`,
      );
    }
    this.#code = code;
    this.#lines.push(m[3] ?? '');
    if (m[2] === '-') {
      if (this.#lines.length >= REPLY_LIMITS.lines) {
        throw new ReplyFormatError(`reply of more than ${REPLY_LIMITS.lines} lines`);
      }
      return undefined;
    }
    const lines = this.#lines;
    this.#lines = [];
    this.#total = 0;
    return withEnhancedCode(code, lines);
  }
}

/** Takes the RFC 3463 code off the lines that carry it (same class as the reply code). */
function withEnhancedCode(code: number, lines: string[]): SmtpReply {
  const last = ENHANCED.exec(lines[lines.length - 1] ?? '');
  if (!last || Number(last[1]) !== Math.floor(code / 100)) return { code, lines };
  const enhanced = `${last[1]}.${Number(last[2])}.${Number(last[3])}`;
  return {
    code,
    enhanced,
    lines: lines.map((line) => {
      const m = ENHANCED.exec(line);
      return m && `${m[1]}.${Number(m[2])}.${Number(m[3])}` === enhanced ? line.slice(m[0].length) : line;
    }),
  };
}
