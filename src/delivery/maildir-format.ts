import { hostname } from 'node:os';
import { threadId } from 'node:worker_threads';

/** Maildir file names and line endings, shared by the streaming writer and the writer threads. */

const SAFE_HOST = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');
let counter = 0;

/** `<seconds>.M<usec>P<pid>Q<counter>.<host>`, unique per process and thread. */
export function uniqueName(now: number): string {
  const seconds = Math.floor(now / 1000);
  const usec = (now % 1000) * 1000 + (counter % 1000);
  counter++;
  return `${seconds}.M${usec}P${process.pid}T${threadId}Q${counter}.${SAFE_HOST}`;
}

/** CRLF → LF for a whole buffer (a lone CR stays). */
export function crlfToLf(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let cr = data.indexOf(0x0d); cr >= 0; cr = data.indexOf(0x0d, cr + 1)) {
    if (data[cr + 1] === 0x0a) {
      parts.push(data.subarray(start, cr));
      start = cr + 1;
    }
  }
  if (start === 0) return data;
  parts.push(data.subarray(start));
  return Buffer.concat(parts);
}
