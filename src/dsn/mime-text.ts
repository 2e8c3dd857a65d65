/**
 * The small pieces of MIME text encoding a report needs: RFC 2047 encoded words, quoted-printable,
 * header folding and RFC 5322 dates. Everything returned here is ASCII unless a caller passes
 * UTF-8 on purpose (an SMTPUTF8 report), and every line ends in CRLF and stays within 998 octets.
 */

const SOFT_LINE = 78;
/** RFC 5322 §2.1.1: 998 octets plus CRLF. */
export const HARD_LINE = 998;

export function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Removes what may not appear inside one header line: CR, LF and the other C0 controls. */
export function oneLine(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (c === 0x0d || c === 0x0a || c === 0x09) out += out.endsWith(' ') ? '' : ' ';
    else if (c >= 0x20 && c !== 0x7f) out += ch;
  }
  return out.trim();
}

/**
 * RFC 2047 B-encoded words, never splitting a UTF-8 sequence. A line holding an encoded word may
 * not pass 76 characters (§2): 39 bytes give a 64-character word, which fits after `Subject: `.
 */
export function encodeWords(text: string): string[] {
  const words: string[] = [];
  let bytes: Buffer[] = [];
  let size = 0;
  const flush = (): void => {
    if (size === 0) return;
    words.push(`=?UTF-8?B?${Buffer.concat(bytes).toString('base64')}?=`);
    bytes = [];
    size = 0;
  };
  for (const ch of text) {
    const b = Buffer.from(ch, 'utf8');
    if (size + b.length > 39) flush();
    bytes.push(b);
    size += b.length;
  }
  flush();
  return words;
}

/** Header text as a MUA shows it: ASCII stays readable (encoded words in it stay valid), the rest is encoded. */
export function headerText(text: string): string {
  const clean = oneLine(text);
  return isAscii(clean) ? clean : encodeWords(clean).join(' ');
}

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/** Decodes RFC 2047 encoded words for display; a word in an unknown charset is left as it is. */
export function decodeWords(text: string): string {
  return text
    .replace(/(\?=)\s+(?==\?)/g, '$1')
    .replace(ENCODED_WORD, (word, charset: string, encoding: string, payload: string) => {
      try {
        const bytes =
          encoding.toUpperCase() === 'B'
            ? Buffer.from(payload, 'base64')
            : Buffer.from(
                payload
                  .replace(/_/g, ' ')
                  .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) =>
                    String.fromCharCode(Number.parseInt(hex, 16)),
                  ),
                'latin1',
              );
        return new TextDecoder(charset.replace(/\*.*$/, '')).decode(bytes);
      } catch {
        return word;
      }
    });
}

/**
 * `Name: value` folded at spaces to about 78 characters, and hard-split where a single word would
 * pass 998 octets (unfolding then inserts a space there, which beats an illegal line).
 */
export function foldField(name: string, value: string): string {
  const lines: string[] = [];
  let line = `${name}:`;
  let hasWord = false;
  for (const word of value.split(' ')) {
    if (word === '') continue;
    let rest = word;
    if (hasWord && line.length + 1 + rest.length > SOFT_LINE) {
      lines.push(line);
      line = '';
    }
    while (Buffer.byteLength(line) + 1 + Buffer.byteLength(rest) > HARD_LINE) {
      const cut = cutAtBytes(rest, HARD_LINE - Buffer.byteLength(line) - 1);
      lines.push(`${line} ${cut}`);
      line = '';
      rest = rest.slice(cut.length);
    }
    line = `${line} ${rest}`;
    hasWord = true;
  }
  lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

/** The longest prefix of `text` that fits in `bytes` UTF-8 octets, on a character boundary. */
function cutAtBytes(text: string, bytes: number): string {
  let out = '';
  let size = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (size + n > bytes) break;
    out += ch;
    size += n;
  }
  return out;
}

/** Quoted-printable (RFC 2045 §6.7) of UTF-8 text; `\n` in the text become CRLF hard breaks. */
export function quotedPrintable(text: string): string {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const bytes = Buffer.from(line, 'utf8');
    let current = '';
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      const last = i === bytes.length - 1;
      const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
      const piece = literal ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
      // 76 characters per line, the soft break's `=` included.
      if (current.length + piece.length > 75) {
        out.push(`${current}=`);
        current = '';
      }
      current += piece;
    }
    out.push(current);
  }
  return `${out.join('\r\n')}\r\n`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time in UTC with a numeric zone (`GMT` is obsolete syntax). */
export function rfc5322Date(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`
  );
}
