import type { Clock } from '../../core/clock.ts';

/** One threshold: `failures` within `window` ms lock the key for `duration` ms. 0 failures: off. */
export interface LockoutRule {
  readonly failures: number;
  readonly window: number;
  readonly duration: number;
}

export interface LockoutSettings {
  readonly perIp: LockoutRule;
  readonly perAccount: LockoutRule;
  /** Keys (IPs and accounts together) remembered at most; the least recently failed go first. */
  readonly maxEntries: number;
}

export const DEFAULT_LOCKOUT: LockoutSettings = {
  perIp: { failures: 20, window: 15 * 60_000, duration: 30 * 60_000 },
  perAccount: { failures: 10, window: 15 * 60_000, duration: 15 * 60_000 },
  maxEntries: 100_000,
};

interface Entry {
  /** Times of the failures still inside the window, oldest first (at most `failures` kept). */
  times: number[];
  lockedUntil: number;
}

/**
 * Failed logins per source IP and per account, shared by every session of every connector of a
 * node, in memory. A key that reaches its rule's failures inside the window is locked for the
 * rule's duration: AUTH from that IP, or for that account, is refused without looking at the
 * credentials. A success clears the account's failures, never the IP's: an address that guesses
 * one password right among many accounts stays counted. Bounded: beyond `maxEntries` keys the
 * least recently failed one is forgotten.
 */
export class AuthLockout {
  readonly #settings: LockoutSettings;
  readonly #clock: Clock;
  /** `ip:<addr>` / `account:<name>` → entry; Map order = least recently failed first. */
  readonly #entries = new Map<string, Entry>();

  constructor(settings: LockoutSettings, clock: Clock) {
    this.#settings = settings;
    this.#clock = clock;
  }

  get size(): number {
    return this.#entries.size;
  }

  ipLocked(ip: string): boolean {
    return this.#locked(`ip:${ip}`);
  }

  accountLocked(account: string): boolean {
    return this.#locked(`account:${account.toLowerCase()}`);
  }

  /** A failed login from `ip`, for `account` when the client named one. */
  recordFailure(ip: string, account: string | undefined): void {
    this.#fail(`ip:${ip}`, this.#settings.perIp);
    if (account !== undefined && account !== '') {
      this.#fail(`account:${account.toLowerCase()}`, this.#settings.perAccount);
    }
  }

  /** A successful login: the account starts afresh; the IP's count stays. */
  recordSuccess(account: string): void {
    const key = `account:${account.toLowerCase()}`;
    const entry = this.#entries.get(key);
    if (entry && entry.lockedUntil <= this.#clock.now()) this.#entries.delete(key);
  }

  #locked(key: string): boolean {
    const entry = this.#entries.get(key);
    return entry !== undefined && entry.lockedUntil > this.#clock.now();
  }

  #fail(key: string, rule: LockoutRule): void {
    if (rule.failures <= 0) return;
    const now = this.#clock.now();
    const entry = this.#entries.get(key) ?? { times: [], lockedUntil: 0 };
    // Re-inserted so the Map's order stays "least recently failed first".
    this.#entries.delete(key);
    entry.times = entry.times.filter((t) => t > now - rule.window);
    entry.times.push(now);
    if (entry.times.length > rule.failures) entry.times.shift();
    if (entry.times.length >= rule.failures && entry.lockedUntil <= now) {
      entry.lockedUntil = now + rule.duration;
    }
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#settings.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }
}
