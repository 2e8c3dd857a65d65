import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes for mailbox logins. scrypt from node:crypto rather than argon2: no native
 * build on install, and it is memory-hard enough for a login that is also tarpitted.
 * Format: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt base64>$<key base64>`.
 */

/** N = 2^14, r = 8: 16 MiB and about 35 ms per check on the 2-core build machine (2^15 took 83 ms). */
const DEFAULT = { ln: 14, r: 8, p: 1 };
const KEY_LENGTH = 32;

function scrypt(password: string, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, KEY_LENGTH, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, DEFAULT.ln, DEFAULT.r, DEFAULT.p);
  return `$scrypt$ln=${DEFAULT.ln},r=${DEFAULT.r},p=${DEFAULT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH_FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

/**
 * True for a hash `verifyPassword` can check. The cost bounds keep a mistyped hash in the
 * config from making every login take seconds or gigabytes.
 */
export function isPasswordHash(text: string): boolean {
  const m = HASH_FORMAT.exec(text);
  if (m === null) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return ln >= 10 && ln <= 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16 && 2 ** ln * r <= 2 ** 22;
}

/** True when `password` matches `hash`; false (never a throw) for a malformed hash. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH_FORMAT.exec(hash);
  if (!m || !isPasswordHash(hash)) return false;
  // Each call scrypts with its own hash's parameters, so older hashes keep working after DEFAULT changes.
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length !== KEY_LENGTH) return false;
  try {
    const key = await scrypt(
      password,
      Buffer.from(m[4]!, 'base64'),
      Number(m[1]),
      Number(m[2]),
      Number(m[3]),
    );
    return timingSafeEqual(key, expected);
  } catch {
    return false;
  }
}
