import type { DnsResolver, DnsResult } from '../../routing/dns/resolver.ts';

/**
 * mailauth asks DNS through a `dns.promises.resolve`-like function that returns records and
 * throws errors whose `code` says what happened (ENOTFOUND, ENODATA, ETIMEOUT…). Our resolver
 * never throws: it returns ok | nodata | nxdomain | temporary. This adapter turns one into the
 * other, so SPF, DKIM, DMARC and ARC read what the rest of the node reads.
 *
 * - `nxdomain` → ENOTFOUND, `nodata` → ENODATA (SPF counts both as void lookups; DKIM reports
 *   a missing key; DMARC takes them as "no record").
 * - `temporary` → ETIMEOUT when it timed out, EREFUSED when refused, ESERVFAIL otherwise: all
 *   temperror for mailauth, never a definite answer.
 * - Types our resolver does not ask (PTR, CNAME, …) answer ENODATA: SPF's deprecated `ptr`
 *   mechanism then never matches (RFC 7208 §5.5 says not to use it), and the DMARC existence
 *   test sees a name without an alias.
 */
export type MailauthResolver = (name: string, type: string) => Promise<unknown[]>;

export type AuthDns = Pick<DnsResolver, 'a' | 'aaaa' | 'mx' | 'txt'>;

export class MailauthDnsError extends Error {
  readonly code: string;
  readonly hostname: string;
  constructor(code: string, hostname: string, message: string) {
    super(message);
    this.name = 'MailauthDnsError';
    this.code = code;
    this.hostname = hostname;
  }
}

function unwrap<T>(name: string, type: string, result: DnsResult<T>): T[] {
  switch (result.kind) {
    case 'ok':
      return result.records;
    case 'nodata':
      throw new MailauthDnsError('ENODATA', name, `${type} ${name}: no records`);
    case 'nxdomain':
      throw new MailauthDnsError('ENOTFOUND', name, `${type} ${name}: no such domain`);
    case 'temporary': {
      const reason = result.reason.toLowerCase();
      const code = reason.includes('timed out')
        ? 'ETIMEOUT'
        : reason.includes('refused')
          ? 'EREFUSED'
          : 'ESERVFAIL';
      throw new MailauthDnsError(code, name, result.reason);
    }
  }
}

export function mailauthResolver(dns: AuthDns): MailauthResolver {
  return async (rawName, rawType) => {
    const name = String(rawName).replace(/\.$/, '');
    const type = String(rawType).toUpperCase();
    switch (type) {
      case 'TXT':
        // Each record as its character-strings, as node's resolveTxt gives them.
        return unwrap(name, type, await dns.txt(name));
      case 'A':
        return unwrap(name, type, await dns.a(name));
      case 'AAAA':
        return unwrap(name, type, await dns.aaaa(name));
      case 'MX':
        return unwrap(name, type, await dns.mx(name)).map((mx) => ({
          exchange: mx.exchange,
          priority: mx.preference,
        }));
      default:
        throw new MailauthDnsError('ENODATA', name, `${type} ${name}: not looked up`);
    }
  };
}
