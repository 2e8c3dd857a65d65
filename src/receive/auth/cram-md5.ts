import { randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * CRAM-MD5 (RFC 2195) secrets in Dovecot's `{CRAM-MD5}` format: the two MD5 states HMAC-MD5
 * reaches after absorbing `key XOR ipad` and `key XOR opad` (RFC 2104), 4 little-endian words
 * each, 64 hex digits in all. The server can finish the HMAC of any challenge from them without
 * the clear password, but they are password-equivalent for CRAM-MD5 itself (anyone who reads them
 * can answer challenges), and unsalted: see docs/security.md.
 */

const PREFIX = '{CRAM-MD5}';
const SECRET = /^\{CRAM-MD5\}([0-9a-f]{64})$/i;

/** The per-round shift amounts and sine constants of RFC 1321. */
const S = [
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
  14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15,
  21, 6, 10, 15, 21,
];
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
const INITIAL: readonly number[] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/** One MD5 compression of a 64-byte block into `state` (in place). */
function compress(state: number[], block: Buffer, offset: number): void {
  const m = new Array<number>(16);
  for (let i = 0; i < 16; i++) m[i] = block.readUInt32LE(offset + i * 4);
  let [a, b, c, d] = state as [number, number, number, number];
  for (let i = 0; i < 64; i++) {
    let f: number;
    let g: number;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) % 16;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) % 16;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) % 16;
    }
    const rotated = (a + f + K[i]! + m[g]!) >>> 0;
    const shift = S[i]!;
    a = d;
    d = c;
    c = b;
    b = (b + ((rotated << shift) | (rotated >>> (32 - shift)))) >>> 0;
  }
  state[0] = (state[0]! + a) >>> 0;
  state[1] = (state[1]! + b) >>> 0;
  state[2] = (state[2]! + c) >>> 0;
  state[3] = (state[3]! + d) >>> 0;
}

/** MD5 of `data`, continuing from `state` after `prefixLength` bytes (a multiple of 64) were absorbed. */
function md5From(state: readonly number[], prefixLength: number, data: Buffer): Buffer {
  const s = [...state];
  const total = prefixLength + data.length;
  const padded = Buffer.alloc(Math.ceil((data.length + 9) / 64) * 64);
  data.copy(padded);
  padded[data.length] = 0x80;
  const bits = BigInt(total) * 8n;
  padded.writeBigUInt64LE(bits, padded.length - 8);
  for (let off = 0; off < padded.length; off += 64) compress(s, padded, off);
  const out = Buffer.alloc(16);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[i]!, i * 4);
  return out;
}

function padState(key: Buffer, pad: number): number[] {
  const block = Buffer.alloc(64, pad);
  for (let i = 0; i < key.length; i++) block[i] = key[i]! ^ pad;
  const state = [...INITIAL];
  compress(state, block, 0);
  return state;
}

/** The `{CRAM-MD5}` secret for a password (what `ferrymail passwd --cram-md5` prints). */
export function cramMd5Secret(password: string): string {
  let key: Buffer = Buffer.from(password, 'utf8');
  if (key.length > 64) key = md5From(INITIAL, 0, key);
  const words = [...padState(key, 0x36), ...padState(key, 0x5c)];
  const out = Buffer.alloc(32);
  words.forEach((w, i) => out.writeUInt32LE(w, i * 4));
  return `${PREFIX}${out.toString('hex')}`;
}

export function isCramMd5Secret(text: string): boolean {
  return SECRET.test(text);
}

/** HMAC-MD5(password, message) from a `{CRAM-MD5}` secret; undefined for a malformed secret. */
export function hmacFromSecret(secret: string, message: Buffer): Buffer | undefined {
  const m = SECRET.exec(secret);
  if (!m) return undefined;
  const raw = Buffer.from(m[1]!, 'hex');
  const words = Array.from({ length: 8 }, (_, i) => raw.readUInt32LE(i * 4));
  const inner = md5From(words.slice(0, 4), 64, message);
  return md5From(words.slice(4), 64, inner);
}

/** A fresh RFC 2195 challenge: `<random.timestamp@fqdn>`. */
export function cramChallenge(fqdn: string, now: number): string {
  return `<${randomBytes(12).toString('hex')}.${now}@${fqdn}>`;
}

/**
 * Checks a client's `user SP hex-digest` response. With no secret for the user, a dummy one is
 * used so the answer takes the same time.
 */
export function checkCramResponse(secret: string | undefined, challenge: string, digestHex: string): boolean {
  const expected = hmacFromSecret(secret ?? DUMMY, Buffer.from(challenge, 'utf8'));
  if (!expected || !/^[0-9a-f]{32}$/i.test(digestHex)) return false;
  return timingSafeEqual(expected, Buffer.from(digestHex, 'hex')) && secret !== undefined;
}

const DUMMY = cramMd5Secret(randomBytes(16).toString('hex'));
