import { isIP } from 'node:net';
import type { DnsblMatch, DnsblProviderConfig } from '../../config/schema.ts';
import type { Logger } from '../../core/logger.ts';
import { normalizeIp } from '../../receive/ip-ranges.ts';
import type { DnsResolver, DnsResult } from '../../routing/dns/resolver.ts';
import { reply } from '../../smtp/reply.ts';
import { type Agent, type AgentSession, rejectWith } from '../types.ts';
import { ALLOW_LISTED } from './ip-lists.ts';

/** A block list's verdict on a client. */
export interface Listing {
  readonly zone: string;
  /** The A records that matched. */
  readonly answers: ReadonlyArray<string>;
  /** The list's TXT record, cleaned for a reply line; '' when it has none. */
  readonly reason: string;
  readonly rejectText: string;
}

/** The name to look up for `ip` under a list: reversed octets for IPv4, reversed nibbles for IPv6. */
export function dnsblQueryName(ip: string, zone: string): string | undefined {
  const address = normalizeIp(ip);
  const family = isIP(address);
  if (family === 4) return `${address.split('.').reverse().join('.')}.${zone}`;
  if (family !== 6) return undefined;
  const [head = '', tail = ''] = address.includes('::') ? address.split('::') : [address, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms not normalized above) is two groups.
  const expand = (groups: string[]) =>
    groups.flatMap((g) => {
      if (!g.includes('.')) return [g];
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const hh = expand(h);
  const tt = expand(t);
  const groups = [...hh, ...Array(8 - hh.length - tt.length).fill('0'), ...tt];
  const nibbles = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...nibbles].reverse().join('.')}.${zone}`;
}

function matches(rules: ReadonlyArray<DnsblMatch>, answer: string): boolean {
  const octets = answer.split('.').map(Number);
  // A block list answers inside 127.0.0.0/8; anything else is a wildcard or a hijacked zone.
  if (octets.length !== 4 || octets[0] !== 127) return false;
  return rules.some((rule) => {
    if (rule === 'any') return true;
    if ('exact' in rule) return rule.exact === answer;
    return ((octets[3] ?? 0) & rule.bitmask) !== 0;
  });
}

function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a reply line must carry no control characters
  return text.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200);
}

const TIMED_OUT = Symbol('timeout');

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface DnsblOptions {
  readonly providers: ReadonlyArray<DnsblProviderConfig>;
  readonly rejectAt: 'rcpt' | 'connect';
  readonly timeout: number;
  readonly resolver: Pick<DnsResolver, 'a' | 'txt'>;
  readonly logger: Logger;
}

/**
 * Asks every configured block list about the client at connect (all at once; the listing of the
 * list with the lowest priority number wins). A list that fails or does not answer within the
 * timeout is skipped: a DNS problem never blocks mail. A listed client is refused at each RCPT
 * except to postmaster (550 5.7.1, as Exchange does), or at connect when rejectAt says so.
 * Allow-listed, authenticated and bypassAntiSpam sessions are not checked.
 */
export function dnsblAgent(options: DnsblOptions): Agent {
  const providers = [...options.providers].sort((a, b) => a.priority - b.priority);
  const verdicts = new WeakMap<AgentSession, Promise<Listing | undefined>>();

  const ask = async (provider: DnsblProviderConfig, ip: string, sessionId: string) => {
    const name = dnsblQueryName(ip, provider.zone);
    if (name === undefined) return undefined;
    const fail = (reason: string) => {
      options.logger.warn(
        { zone: provider.zone, ip, session: sessionId, reason },
        'DNSBL lookup failed; ignored',
      );
      return undefined;
    };
    const answer: DnsResult<string> | typeof TIMED_OUT = await withTimeout(
      options.resolver.a(name),
      options.timeout,
    );
    if (answer === TIMED_OUT) return fail(`no answer within ${options.timeout} ms`);
    if (answer.kind === 'temporary') return fail(answer.reason);
    if (answer.kind !== 'ok') return undefined;
    const hits = answer.records.filter((a) => matches(provider.match, a));
    if (hits.length === 0) return undefined;
    const txt = await withTimeout(options.resolver.txt(name), options.timeout);
    const reason = txt !== TIMED_OUT && txt.kind === 'ok' ? clean(txt.records[0]?.join('') ?? '') : '';
    const rejectText = clean(
      provider.rejectText
        .replaceAll('{ip}', ip)
        .replaceAll('{zone}', provider.zone)
        .replaceAll('{reason}', reason),
    );
    return { zone: provider.zone, answers: hits, reason, rejectText };
  };

  const check = async (session: AgentSession): Promise<Listing | undefined> => {
    const results = await Promise.all(
      providers.map((p) =>
        ask(p, session.remoteIp, session.id).catch((error: unknown) => {
          options.logger.warn(
            { err: error, zone: p.zone, session: session.id },
            'DNSBL lookup failed; ignored',
          );
          return undefined;
        }),
      ),
    );
    const listing = results.find((r) => r !== undefined);
    if (listing) {
      options.logger.info(
        { session: session.id, ip: session.remoteIp, zone: listing.zone, answers: listing.answers },
        'client is on a DNS block list',
      );
    }
    return listing;
  };

  const exempt = (s: AgentSession) =>
    s.marks.has(ALLOW_LISTED) || s.authUser !== undefined || s.permissions.has('bypassAntiSpam');

  return {
    name: 'dnsbl',
    async connect({ session }) {
      if (providers.length === 0 || exempt(session)) return undefined;
      const verdict = check(session);
      verdicts.set(session, verdict);
      if (options.rejectAt !== 'connect') return undefined;
      const listing = await verdict;
      return listing ? rejectWith(reply(554, '5.7.1', listing.rejectText), { disconnect: true }) : undefined;
    },
    async rcpt({ session, recipient, resolution }) {
      if (options.rejectAt !== 'rcpt' || exempt(session)) return undefined;
      const local = recipient.slice(0, recipient.lastIndexOf('@')).toLowerCase();
      // postmaster@ stays reachable, so a listed sender can ask to be taken off (RFC 5321 §4.5.1).
      if (local === 'postmaster' && resolution.kind === 'internal') return undefined;
      const listing = await verdicts.get(session);
      return listing ? rejectWith(reply(550, '5.7.1', listing.rejectText)) : undefined;
    },
  };
}
