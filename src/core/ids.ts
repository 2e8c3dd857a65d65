import { randomBytes } from 'node:crypto';
import type { Clock } from './clock.ts';

/** Generates ids; injectable so tests get stable ones. */
export interface IdGenerator {
  /** A queue id: sortable by time, unique across restarts, safe as a file name. */
  queueId(): string;
  /** A session id for protocol logs and tracking. */
  sessionId(): string;
}

/** Random bits drawn in bulk: one randomBytes call per 680 ids instead of one per id. */
let pool = Buffer.alloc(0);
let poolOffset = 0;
function randomCounter(): bigint {
  if (poolOffset + 5 > pool.length) {
    pool = randomBytes(4096);
    poolOffset = 0;
  }
  const value = pool.readUIntBE(poolOffset, 5);
  poolOffset += 6;
  return BigInt(value);
}

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function base32(value: bigint, length: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < length; i++) {
    out = ALPHABET[Number(v & 31n)] + out;
    v >>= 5n;
  }
  return out;
}

/**
 * Ids are 10 base32 characters of milliseconds followed by random bits, like a ULID:
 * they sort by arrival time, which keeps the queue's primary key append-only.
 */
export function createIdGenerator(clock: Clock): IdGenerator {
  let lastMs = -1;
  let counter = 0n;
  const next = (randomChars: number): string => {
    const ms = clock.now();
    if (ms === lastMs) counter++;
    else {
      lastMs = ms;
      counter = randomCounter();
    }
    return base32(BigInt(ms), 10) + base32(counter, randomChars);
  };
  return { queueId: () => next(8), sessionId: () => next(6) };
}
