/**
 * Failed logins per key (a client IP, an account name) in a sliding window. A key with `attempts`
 * failures inside the window is limited until its oldest counted failure leaves the window, so a
 * guesser gets `attempts` tries per window whatever it does, right password included.
 */
export class LoginLimiter {
  readonly #attempts: number;
  readonly #window: number;
  readonly #failures = new Map<string, number[]>();

  constructor(options: { attempts: number; window: number }) {
    this.#attempts = options.attempts;
    this.#window = options.window;
  }

  /** ms until every key may try again; 0 when none is limited. */
  retryAfter(keys: ReadonlyArray<string>, now: number): number {
    let wait = 0;
    for (const key of keys) {
      const times = this.#recent(key, now);
      if (times.length >= this.#attempts) {
        wait = Math.max(wait, times[times.length - this.#attempts]! + this.#window - now);
      }
    }
    return wait;
  }

  fail(keys: ReadonlyArray<string>, now: number): void {
    for (const key of keys) {
      const times = this.#recent(key, now);
      times.push(now);
      // Only the newest `attempts` failures decide when the key is free again.
      if (times.length > this.#attempts) times.splice(0, times.length - this.#attempts);
      this.#failures.set(key, times);
    }
    // Keys of long-gone guessers would otherwise stay forever.
    if (this.#failures.size > 10_000) for (const key of [...this.#failures.keys()]) this.#recent(key, now);
  }

  #recent(key: string, now: number): number[] {
    const times = (this.#failures.get(key) ?? []).filter((t) => t > now - this.#window);
    if (times.length === 0) this.#failures.delete(key);
    else this.#failures.set(key, times);
    return times;
  }
}
