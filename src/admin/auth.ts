import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AdminConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { hashPassword, verifyPassword } from '../directory/password.ts';
import { LoginLimiter } from './login-limiter.ts';

/** Who made a request: named in ADMIN tracking events and logs, never with the secret. */
export type AdminIdentity =
  | { readonly kind: 'local-token' }
  | { readonly kind: 'token'; readonly name: string }
  | { readonly kind: 'account'; readonly name: string };

/** `local-token`, `token:<name>`, `account:<name>`. */
export function identityLabel(identity: AdminIdentity): string {
  return identity.kind === 'local-token' ? 'local-token' : `${identity.kind}:${identity.name}`;
}

export type LoginResult =
  | { readonly ok: true; readonly token: string; readonly expiresAt: number }
  | { readonly ok: false; readonly reason: 'invalid' }
  | { readonly ok: false; readonly reason: 'limited'; readonly retryAfterSeconds: number };

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Bearer tokens of the admin API. Every presented token is hashed first and compared by its
 * SHA-256, in constant time against the local and configured tokens; sessions are looked up by
 * that hash, so no comparison leaks a prefix of a secret through timing.
 */
export class AdminAuth {
  readonly #local: Buffer;
  readonly #tokens: ReadonlyArray<{ name: string; digest: Buffer }>;
  readonly #accounts: ReadonlyMap<string, string>;
  readonly #sessions = new Map<string, { account: string; expiresAt: number }>();
  /** Limiter keys with a password verification in progress. */
  readonly #verifying = new Set<string>();
  readonly #limiter: LoginLimiter;
  readonly #lifetime: number;
  readonly #clock: Clock;
  /** Unknown account names are checked against this, so they cost what a real check costs. */
  readonly #dummyHash: Promise<string>;

  constructor(options: { config: AdminConfig; localToken: string; clock: Clock }) {
    this.#local = sha256(options.localToken);
    this.#tokens = options.config.tokens.map((t) => ({ name: t.name, digest: Buffer.from(t.sha256, 'hex') }));
    this.#accounts = new Map(options.config.accounts.map((a) => [a.name, a.passwordHash]));
    this.#limiter = new LoginLimiter(options.config.loginRateLimit);
    this.#lifetime = options.config.sessionLifetime;
    this.#clock = options.clock;
    // Made now, so the first unknown name does not also pay for making it.
    this.#dummyHash = hashPassword(randomBytes(16).toString('base64'));
  }

  /** The identity behind an `Authorization` header, or undefined when it grants nothing. */
  authenticate(header: string | undefined): AdminIdentity | undefined {
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return undefined;
    const digest = sha256(m[1]!);
    // Every comparison runs, whichever matches, so the time taken says nothing about which.
    let found: AdminIdentity | undefined = timingSafeEqual(digest, this.#local)
      ? { kind: 'local-token' }
      : undefined;
    for (const t of this.#tokens) {
      if (timingSafeEqual(digest, t.digest) && !found) found = { kind: 'token', name: t.name };
    }
    if (found) return found;
    const key = digest.toString('hex');
    const session = this.#sessions.get(key);
    if (!session) return undefined;
    if (session.expiresAt <= this.#clock.now()) {
      this.#sessions.delete(key);
      return undefined;
    }
    return { kind: 'account', name: session.account };
  }

  async login(username: string, password: string, clientIp: string): Promise<LoginResult> {
    const now = this.#clock.now();
    const keys = [`ip:${clientIp}`, `account:${username}`];
    const wait = this.#limiter.retryAfter(keys, now);
    if (wait > 0)
      return { ok: false, reason: 'limited', retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)) };
    // One verification at a time per client IP and per account: parallel attempts would all pass
    // the check above before the first failure is counted (and each costs an scrypt).
    if (keys.some((k) => this.#verifying.has(k)))
      return { ok: false, reason: 'limited', retryAfterSeconds: 1 };
    for (const k of keys) this.#verifying.add(k);
    const hash = this.#accounts.get(username);
    let good: boolean;
    try {
      good = await verifyPassword(password, hash ?? (await this.#dummyHash));
    } finally {
      for (const k of keys) this.#verifying.delete(k);
    }
    if (!good || hash === undefined) {
      this.#limiter.fail(keys, this.#clock.now());
      return { ok: false, reason: 'invalid' };
    }
    this.#pruneSessions(now);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + this.#lifetime;
    this.#sessions.set(sha256(token).toString('hex'), { account: username, expiresAt });
    return { ok: true, token, expiresAt };
  }

  #pruneSessions(now: number): void {
    for (const [key, session] of this.#sessions) if (session.expiresAt <= now) this.#sessions.delete(key);
  }
}
