import type { Clock } from '../../core/clock.ts';
import type { Directory } from '../../directory/types.ts';
import { type Reply, reply } from '../../smtp/reply.ts';
import { checkCramResponse, cramChallenge } from './cram-md5.ts';
import { AuthLockout, DEFAULT_LOCKOUT, type LockoutSettings } from './lockout.ts';
import { type OAuthSettings, OAuthVerifier, parseOauthBearer, parseXoauth2 } from './oauth.ts';

/** What receive sessions share for authentication: the lockout store and the token verifier. */
export interface AuthServices {
  readonly lockout: AuthLockout;
  readonly oauth?: OAuthVerifier | undefined;
}

export function defaultAuthServices(clock: Clock): AuthServices {
  return { lockout: new AuthLockout(DEFAULT_LOCKOUT, clock) };
}

/**
 * Where a SASL exchange stands after a step; the session sends the matching reply.
 * - `challenge`: 334 with `text`, and `next` gets the client's answer;
 * - `success`: 235, logged in as `user`;
 * - `failure`: 535 5.7.8 (after the tarpit), counted against the IP and `account`; with
 *   `challenge`, the failure is recorded at once, the challenge (an error document) is sent, and
 *   535 answers whatever the client sends next (RFC 7628 §3.2.3);
 * - `locked`: 454 4.7.0, the account is locked out, its credentials were not looked at;
 * - `reply`: a protocol answer such as 501 for an undecodable response.
 */
export type SaslOutcome =
  | {
      readonly kind: 'challenge';
      readonly text: string;
      readonly next: (line: string) => Promise<SaslOutcome>;
    }
  | { readonly kind: 'success'; readonly user: string }
  | { readonly kind: 'failure'; readonly account: string | undefined; readonly challenge?: string }
  | { readonly kind: 'locked' }
  | { readonly kind: 'reply'; readonly reply: Reply };

export interface SaslContext {
  readonly directory: Directory;
  readonly services: AuthServices;
  readonly fqdn: string;
  readonly clock: Clock;
}

/** The mechanisms implemented here (PLAIN and LOGIN are in the session). */
export const SASL_MECHANISMS = new Set(['CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER']);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const undecodable: SaslOutcome = { kind: 'reply', reply: reply(501, '5.5.2', 'Cannot decode response') };

function decode(text: string): string | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64').toString('utf8') : undefined;
}

export function startSasl(
  mechanism: string,
  initial: string | undefined,
  ctx: SaslContext,
): Promise<SaslOutcome> {
  switch (mechanism) {
    case 'CRAM-MD5':
      return Promise.resolve(cramMd5(initial, ctx));
    case 'XOAUTH2':
    case 'OAUTHBEARER': {
      const answer = (line: string) => bearer(mechanism, line, ctx);
      if (initial !== undefined) return answer(initial);
      return Promise.resolve({ kind: 'challenge', text: '', next: answer });
    }
    default:
      return Promise.resolve({
        kind: 'reply',
        reply: reply(504, '5.5.4', 'Unrecognized authentication mechanism'),
      });
  }
}

/** RFC 2195: a challenge, then `user SP hex(HMAC-MD5(password, challenge))`. */
function cramMd5(initial: string | undefined, ctx: SaslContext): SaslOutcome {
  if (initial !== undefined) {
    return { kind: 'reply', reply: reply(501, '5.5.2', 'CRAM-MD5 takes no initial response') };
  }
  const challenge = cramChallenge(ctx.fqdn, ctx.clock.now());
  return {
    kind: 'challenge',
    text: Buffer.from(challenge).toString('base64'),
    next: async (line) => {
      const decoded = decode(line);
      if (decoded === undefined) return undecodable;
      const space = decoded.lastIndexOf(' ');
      if (space <= 0) return { kind: 'reply', reply: reply(501, '5.5.2', 'Malformed CRAM-MD5 response') };
      const user = decoded.slice(0, space).toLowerCase();
      if (ctx.services.lockout.accountLocked(user)) return { kind: 'locked' };
      const secret = ctx.directory.cramMd5Secret?.(user);
      return checkCramResponse(secret, challenge, decoded.slice(space + 1))
        ? { kind: 'success', user }
        : { kind: 'failure', account: user };
    },
  };
}

async function bearer(
  mechanism: 'XOAUTH2' | 'OAUTHBEARER',
  line: string,
  ctx: SaslContext,
): Promise<SaslOutcome> {
  const decoded = decode(line);
  if (decoded === undefined) return undecodable;
  const message = mechanism === 'XOAUTH2' ? parseXoauth2(decoded) : parseOauthBearer(decoded);
  if (!message.ok) return { kind: 'reply', reply: reply(501, '5.5.2', `Malformed ${mechanism} response`) };
  const named = message.user?.toLowerCase();
  if (named !== undefined && ctx.services.lockout.accountLocked(named)) return { kind: 'locked' };
  const oauth = ctx.services.oauth;
  const failed = (account: string | undefined): SaslOutcome => ({
    kind: 'failure',
    account,
    challenge:
      oauth?.failureChallenge(mechanism) ?? Buffer.from('{"status":"invalid_token"}').toString('base64'),
  });
  if (!oauth) return failed(named);
  const check = await oauth.verify(message.token);
  if (!check.ok) return failed(named);
  const mailboxOf = (address: string) =>
    ctx.directory.mailboxOf ? ctx.directory.mailboxOf(address) : address.toLowerCase();
  const mailbox = mailboxOf(check.address);
  if (mailbox === undefined) return failed(named ?? check.address);
  // The name the client gave (XOAUTH2 user=, OAUTHBEARER a=) must be the token's own mailbox.
  if (named !== undefined && mailboxOf(named) !== mailbox) return failed(named);
  if (ctx.services.lockout.accountLocked(mailbox)) return { kind: 'locked' };
  return { kind: 'success', user: mailbox };
}

/** The services a node's config asks for: its lockout settings, and a token verifier when `oauth` is set. */
export async function createAuthServices(
  config: { readonly authLockout: LockoutSettings; readonly oauth?: OAuthSettings | undefined },
  clock: Clock,
): Promise<AuthServices> {
  return {
    lockout: new AuthLockout(config.authLockout, clock),
    ...(config.oauth ? { oauth: await OAuthVerifier.create(config.oauth, clock) } : {}),
  };
}
