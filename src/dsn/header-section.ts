import type { Readable } from 'node:stream';

export interface HeaderSection {
  /** The header lines, each ending in CRLF, without the empty line that ends the section. */
  readonly bytes: Buffer;
  /** The section was longer than the limit and was cut at the last whole line. */
  readonly truncated: boolean;
}

/**
 * Reads a stored message only as far as the empty line after its headers (or `limit` bytes),
 * then releases the source, so returning the headers of a huge message costs at most `limit`.
 */
export async function readHeaderSection(source: Readable, limit: number): Promise<HeaderSection> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      // Look again at the last three bytes already held: the empty line may straddle chunks.
      const from = Math.max(0, size - 3);
      chunks.push(buf);
      size += buf.length;
      const held = Buffer.concat(chunks, size);
      chunks.length = 0;
      chunks.push(held);
      const end = endOfHeaders(held, from);
      if (end !== undefined && end <= limit)
        return { bytes: withCrlf(held.subarray(0, end)), truncated: false };
      if (size > limit) return { bytes: withCrlf(cutAtLine(held.subarray(0, limit))), truncated: true };
    }
  } finally {
    source.destroy();
  }
  // A message that is all headers: the whole of it is the section.
  return { bytes: withCrlf(Buffer.concat(chunks, size)), truncated: false };
}

/** Offset just past the line ending of the last header line, or 0 when the message opens with an empty line. */
function endOfHeaders(buf: Buffer, from: number): number | undefined {
  if (from === 0 && (buf[0] === 0x0a || (buf[0] === 0x0d && buf[1] === 0x0a))) return 0;
  for (let i = buf.indexOf(0x0a, from); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
    const next = buf[i + 1];
    if (next === 0x0a) return i + 1;
    if (next === 0x0d && buf[i + 2] === 0x0a) return i + 1;
    if (next === undefined) break;
  }
  return undefined;
}

function cutAtLine(buf: Buffer): Buffer {
  const lf = buf.lastIndexOf(0x0a);
  return lf === -1 ? Buffer.alloc(0) : buf.subarray(0, lf + 1);
}

/** The section's lines as CRLF lines: stored messages are CRLF already, this guards the odd bare LF. */
function withCrlf(buf: Buffer): Buffer {
  if (buf.length === 0) return buf;
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
    const lineEnd = i > 0 && buf[i - 1] === 0x0d ? i - 1 : i;
    parts.push(buf.subarray(start, lineEnd), CRLF);
    start = i + 1;
  }
  if (start < buf.length) parts.push(buf.subarray(start), CRLF);
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n');
