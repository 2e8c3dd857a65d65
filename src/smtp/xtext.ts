/** RFC 3461 §4: xtext = printable ASCII except `+` and `=`, with `+XX` hex escapes. */

export function decodeXtext(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c === 0x3d) {
      return undefined;
    } else {
      out += text[i];
    }
  }
  return out;
}

export function encodeXtext(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out +=
      c < 0x21 || c > 0x7e || c === 0x2b || c === 0x3d
        ? `+${c.toString(16).toUpperCase().padStart(2, '0')}`
        : ch;
  }
  return out;
}
