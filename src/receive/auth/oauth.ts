import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { Clock } from '../../core/clock.ts';

/**
 * OAuth 2.0 bearer tokens for SMTP AUTH: Google's XOAUTH2 and RFC 7628 OAUTHBEARER. A token is a
 * JWT signed by a key of the configured JWKS (a file, or an https URL fetched and cached), with
 * the configured issuer and audience, not expired (nor not-yet-valid); the configured claim names
 * the mailbox. Only asymmetric signatures are accepted: a JWKS holds public keys, and an HMAC or
 * `none` token must never pass.
 */

export interface OAuthSettings {
  readonly issuer: string;
  readonly audience: string | ReadonlyArray<string>;
  readonly jwksFile?: string | undefined;
  readonly jwksUrl?: string | undefined;
  /** The claim holding the mailbox address (default `email`). */
  readonly claim: string;
  /** Sent back in the failure challenge (RFC 7628 §3.2.2 `scope`). */
  readonly scope?: string | undefined;
  /** Leeway for exp / nbf / iat, ms. */
  readonly clockTolerance: number;
  /** How long a fetched JWKS is used before it is fetched again, ms. */
  readonly jwksCacheMaxAge: number;
}

const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

export type TokenCheck =
  | { readonly ok: true; readonly address: string }
  | { readonly ok: false; readonly reason: string };

export class OAuthVerifier {
  readonly #settings: OAuthSettings;
  readonly #keys: JWTVerifyGetKey;
  readonly #clock: Clock;

  private constructor(settings: OAuthSettings, keys: JWTVerifyGetKey, clock: Clock) {
    this.#settings = settings;
    this.#keys = keys;
    this.#clock = clock;
  }

  static async create(settings: OAuthSettings, clock: Clock): Promise<OAuthVerifier> {
    let keys: JWTVerifyGetKey;
    if (settings.jwksFile !== undefined) {
      let text: string;
      try {
        text = await readFile(settings.jwksFile, 'utf8');
      } catch (error) {
        throw new Error(
          `cannot read oauth.jwksFile ${settings.jwksFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        );
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`oauth.jwksFile ${settings.jwksFile} is not JSON`);
      }
      if (!parsed || typeof parsed !== 'object' || !Array.isArray((parsed as { keys?: unknown }).keys)) {
        throw new Error(`oauth.jwksFile ${settings.jwksFile} is not a JWKS (expected {"keys": [...]})`);
      }
      keys = createLocalJWKSet(parsed as Parameters<typeof createLocalJWKSet>[0]);
    } else if (settings.jwksUrl !== undefined) {
      keys = createRemoteJWKSet(new URL(settings.jwksUrl), {
        cacheMaxAge: settings.jwksCacheMaxAge,
        cooldownDuration: Math.min(30_000, settings.jwksCacheMaxAge),
        timeoutDuration: 5000,
      });
    } else {
      throw new Error('oauth needs jwksFile or jwksUrl');
    }
    return new OAuthVerifier(settings, keys, clock);
  }

  /** Checks a bearer token; on success, the lower-cased value of the configured claim. */
  async verify(token: string): Promise<TokenCheck> {
    const s = this.#settings;
    try {
      const { payload } = await jwtVerify(token, this.#keys, {
        issuer: s.issuer,
        audience: typeof s.audience === 'string' ? s.audience : [...s.audience],
        algorithms: ALGORITHMS,
        clockTolerance: Math.round(s.clockTolerance / 1000),
        currentDate: new Date(this.#clock.now()),
        requiredClaims: ['exp'],
      });
      const value = payload[s.claim];
      if (typeof value !== 'string' || value === '') return { ok: false, reason: `no ${s.claim} claim` };
      if (s.claim === 'email' && payload.email_verified === false)
        return { ok: false, reason: 'email not verified' };
      return { ok: true, address: value.toLowerCase() };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return { ok: false, reason: typeof code === 'string' ? code : 'invalid token' };
    }
  }

  /** The base64 JSON of the failure challenge (RFC 7628 §3.2.2; Google's XOAUTH2 has the same shape). */
  failureChallenge(mechanism: 'XOAUTH2' | 'OAUTHBEARER'): string {
    const scope = this.#settings.scope;
    const body =
      mechanism === 'OAUTHBEARER'
        ? { status: 'invalid_token', schemes: 'bearer', ...(scope ? { scope } : {}) }
        : { status: '401', schemes: 'bearer', ...(scope ? { scope } : {}) };
    return Buffer.from(JSON.stringify(body)).toString('base64');
  }
}

export type BearerMessage =
  | { readonly ok: true; readonly user: string | undefined; readonly token: string }
  | { readonly ok: false };

/** `user=<addr>^Aauth=Bearer <token>^A^A` (XOAUTH2, as Google documents it). */
export function parseXoauth2(decoded: string): BearerMessage {
  if (!decoded.endsWith('\x01\x01')) return { ok: false };
  const fields = decoded.slice(0, -2).split('\x01');
  let user: string | undefined;
  let token: string | undefined;
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq <= 0) return { ok: false };
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (key === 'user') user = value;
    else if (key === 'auth') token = bearer(value);
  }
  return user !== undefined && token !== undefined ? { ok: true, user, token } : { ok: false };
}

/**
 * RFC 7628 §3.1: `gs2-header ^A *(key=value ^A) ^A`, gs2-header `n,[a=authzid],` (`y,` is
 * accepted as "no channel binding"; `p=` asks for channel binding we do not offer and fails).
 */
export function parseOauthBearer(decoded: string): BearerMessage {
  if (!decoded.endsWith('\x01\x01')) return { ok: false };
  const first = decoded.indexOf('\x01');
  const m = /^([ny]),(?:a=([^,]*))?,$/.exec(decoded.slice(0, first));
  if (!m) return { ok: false };
  const authzid = m[2] === undefined ? undefined : decodeSaslName(m[2]);
  if (authzid === null) return { ok: false };
  const pairs = decoded.slice(first + 1, -2);
  let token: string | undefined;
  for (const field of pairs === '' ? [] : pairs.split('\x01')) {
    const eq = field.indexOf('=');
    if (eq <= 0 || !/^[A-Za-z]+$/.test(field.slice(0, eq))) return { ok: false };
    if (field.slice(0, eq) === 'auth') token = bearer(field.slice(eq + 1));
  }
  return token !== undefined ? { ok: true, user: authzid, token } : { ok: false };
}

function bearer(value: string): string | undefined {
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(value);
  return m?.[1];
}

/** RFC 5801 saslname: `=2C` is `,`, `=3D` is `=`; any other `=` is malformed (null). */
function decodeSaslName(text: string): string | null {
  if (/=(?!2C|3D)/i.test(text)) return null;
  return text.replace(/=2C/gi, ',').replace(/=3D/gi, '=');
}
