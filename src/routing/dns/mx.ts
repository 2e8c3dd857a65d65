import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { type AddressScope, addressScope, isDeliverableAddress } from './address-scope.ts';
import type { DnsResolver, DnsResult, MxRecord } from './resolver.ts';

/**
 * Where mail for a domain goes (RFC 5321 §5.1): its MX hosts in the order to try them, each with
 * the addresses to connect to. Every outcome that is not a list of hosts carries an enhanced
 * status code (RFC 3463) so delivery can defer or bounce without interpreting DNS itself.
 *
 * Temporary vs permanent: a result is temporary only when a DNS lookup it needed failed
 * temporarily (timeout, SERVFAIL, refused, malformed answer), because only then can asking again
 * give a different answer without anyone changing the zone. Everything else is what the domain
 * publishes and is permanent: NXDOMAIN, null MX, and MX hosts that have no address or only
 * addresses refused by policy (as Postfix does with smtp_defer_if_no_mx_address_found = no).
 */

export interface MailHost {
  /** The MX exchange, or the domain itself for an implicit MX. */
  name: string;
  preference: number;
  /** IPv6 and IPv4 interleaved, IPv6 first (RFC 8305 §4), each family in DNS order. */
  addresses: string[];
}

/** A host or address left out of the result, and why: for logs and the final NDR text. */
export interface SkippedTarget {
  host: string;
  address?: string;
  reason: string;
}

export type MxResult =
  | {
      kind: 'hosts';
      hosts: MailHost[];
      /** True when the domain has no MX records and its own address stands in (RFC 5321 §5.1). */
      implicit: boolean;
      skipped: SkippedTarget[];
    }
  | { kind: 'permanent' | 'temporary'; status: string; reason: string; skipped: SkippedTarget[] };

export interface MailHostOptions {
  /** Allow loopback, private (RFC 1918, ULA), link-local and CGNAT addresses: for labs and tests. */
  allowPrivate: boolean;
  /** Orders MX hosts of equal preference; Math.random when absent. Returns [0, 1). */
  rng?: () => number;
  /** MX hosts considered, highest preference first. */
  maxHosts?: number;
  /** Addresses kept per host, after interleaving the families. */
  maxAddressesPerHost?: number;
}

export const DEFAULT_MAX_MX_HOSTS = 10;
export const DEFAULT_MAX_ADDRESSES_PER_HOST = 8;

const MAX_DOMAIN_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

function hasSpaceOrControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** The ASCII form of a domain, or undefined when it cannot be a DNS name. */
function normalizeDomain(domain: string): string | undefined {
  const trimmed = domain.endsWith('.') ? domain.slice(0, -1) : domain;
  // Checked before domainToASCII, which silently drops tabs and line breaks.
  if (trimmed === '' || hasSpaceOrControl(trimmed)) return undefined;
  const ascii = domainToASCII(trimmed);
  if (ascii === '' || ascii.length > MAX_DOMAIN_LENGTH) return undefined;
  const labels = ascii.split('.');
  if (labels.some((label) => label.length === 0 || label.length > MAX_LABEL_LENGTH)) return undefined;
  if (!labels.every((label) => /^[a-z0-9_-]+$/.test(label))) return undefined;
  // No top-level domain is numeric; a name ending in digits is an address in disguise ('0x7f.1').
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return undefined;
  return ascii;
}

/** '[192.0.2.1]' or '[IPv6:2001:db8::1]' (RFC 5321 §4.1.3), or undefined. */
function addressLiteral(domain: string): string | undefined {
  const match = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  if (match === null) return undefined;
  const address = match[1] ?? '';
  const isV6Tagged = /^\[ipv6:/i.test(domain);
  const family = isIP(address);
  if (family === 0 || (family === 6) !== isV6Tagged) return undefined;
  return address;
}

function describeScope(scope: AddressScope): string {
  switch (scope) {
    case 'loopback':
      return 'loopback address refused';
    case 'private':
      return 'private address refused';
    case 'link-local':
      return 'link-local address refused';
    case 'cgnat':
      return 'shared (CGNAT) address refused';
    default:
      return 'address is not a unicast destination';
  }
}

/** Fisher–Yates within each run of equal preference, so load spreads as the domain intends. */
function orderByPreference(records: MxRecord[], rng: () => number): MxRecord[] {
  const sorted = [...records].sort((a, b) => a.preference - b.preference);
  let start = 0;
  while (start < sorted.length) {
    let end = start + 1;
    while (end < sorted.length && sorted[end]?.preference === sorted[start]?.preference) end++;
    for (let i = end - 1; i > start; i--) {
      const draw = Math.floor(rng() * (i - start + 1));
      const j = start + (Number.isFinite(draw) ? Math.min(Math.max(draw, 0), i - start) : 0);
      [sorted[i], sorted[j]] = [sorted[j]!, sorted[i]!];
    }
    start = end;
  }
  return sorted;
}

function interleave(ipv6: string[], ipv4: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < Math.max(ipv6.length, ipv4.length); i++) {
    if (i < ipv6.length) out.push(ipv6[i]!);
    if (i < ipv4.length) out.push(ipv4[i]!);
  }
  return out;
}

/** What went wrong while resolving one host, to decide the overall outcome when none is left. */
interface HostOutcome {
  host: MailHost | undefined;
  temporary: boolean;
  nxdomain: boolean;
}

async function resolveHost(
  name: string,
  preference: number,
  resolver: DnsResolver,
  options: Required<Pick<MailHostOptions, 'allowPrivate' | 'maxAddressesPerHost'>>,
  skipped: SkippedTarget[],
): Promise<HostOutcome> {
  const [v6, v4] = await Promise.all([resolver.aaaa(name), resolver.a(name)]);
  const temporaryReasons = [v6, v4].flatMap((r) => (r.kind === 'temporary' ? [r.reason] : []));
  const keep = (result: DnsResult<string>): string[] => {
    if (result.kind !== 'ok') return [];
    const kept: string[] = [];
    for (const address of new Set(result.records)) {
      const scope = addressScope(address);
      if (isDeliverableAddress(scope, options.allowPrivate)) kept.push(address);
      else skipped.push({ host: name, address, reason: describeScope(scope) });
    }
    return kept;
  };
  const addresses = interleave(keep(v6), keep(v4)).slice(0, options.maxAddressesPerHost);
  if (addresses.length > 0) {
    // A family that failed temporarily only narrows the choice; the host is still usable.
    for (const reason of temporaryReasons) skipped.push({ host: name, reason });
    return { host: { name, preference, addresses }, temporary: false, nxdomain: false };
  }
  const nxdomain = v6.kind === 'nxdomain' && v4.kind === 'nxdomain';
  if (temporaryReasons.length > 0) skipped.push({ host: name, reason: temporaryReasons.join('; ') });
  else if (nxdomain) skipped.push({ host: name, reason: 'host does not exist (NXDOMAIN)' });
  else if (v6.kind === 'ok' || v4.kind === 'ok') skipped.push({ host: name, reason: 'no usable address' });
  else skipped.push({ host: name, reason: 'host has no A or AAAA records' });
  return { host: undefined, temporary: temporaryReasons.length > 0, nxdomain };
}

function summarize(skipped: SkippedTarget[]): string {
  return skipped
    .slice(0, 5)
    .map((s) => `${s.host}${s.address ? ` ${s.address}` : ''}: ${s.reason}`)
    .join('; ');
}

export async function resolveMailHosts(
  domain: string,
  resolver: DnsResolver,
  options: MailHostOptions,
): Promise<MxResult> {
  try {
    return await resolveMailHostsUnguarded(domain, resolver, options);
  } catch (error) {
    // Only a DnsResolver other than createResolver's can throw; routing still gets an outcome.
    const detail = error instanceof Error ? error.message : String(error);
    return {
      kind: 'temporary',
      status: '4.4.3',
      reason: `DNS lookup for ${domain} failed: ${detail}`,
      skipped: [],
    };
  }
}

async function resolveMailHostsUnguarded(
  domain: string,
  resolver: DnsResolver,
  options: MailHostOptions,
): Promise<MxResult> {
  const rng = options.rng ?? Math.random;
  const maxHosts = Math.max(1, options.maxHosts ?? DEFAULT_MAX_MX_HOSTS);
  const hostOptions = {
    allowPrivate: options.allowPrivate,
    maxAddressesPerHost: Math.max(1, options.maxAddressesPerHost ?? DEFAULT_MAX_ADDRESSES_PER_HOST),
  };
  const skipped: SkippedTarget[] = [];

  const literal = addressLiteral(domain);
  if (literal !== undefined) {
    const scope = addressScope(literal);
    if (isDeliverableAddress(scope, options.allowPrivate)) {
      return {
        kind: 'hosts',
        hosts: [{ name: domain, preference: 0, addresses: [literal] }],
        implicit: true,
        skipped,
      };
    }
    skipped.push({ host: domain, address: literal, reason: describeScope(scope) });
    return { kind: 'permanent', status: '5.4.4', reason: `${domain}: ${describeScope(scope)}`, skipped };
  }

  const name = normalizeDomain(domain);
  if (name === undefined) {
    return { kind: 'permanent', status: '5.1.2', reason: `'${domain}' is not a valid domain name`, skipped };
  }

  const mx = await resolver.mx(name);
  switch (mx.kind) {
    case 'temporary':
      return {
        kind: 'temporary',
        status: '4.4.3',
        reason: `MX lookup for ${name} failed: ${mx.reason}`,
        skipped,
      };
    case 'nxdomain':
      return { kind: 'permanent', status: '5.1.2', reason: `domain ${name} does not exist`, skipped };
    case 'nodata':
      return implicitMx(name, resolver, hostOptions, skipped);
    case 'ok':
      return explicitMx(name, mx.records, resolver, { ...hostOptions, rng, maxHosts }, skipped);
  }
}

async function implicitMx(
  name: string,
  resolver: DnsResolver,
  options: Required<Pick<MailHostOptions, 'allowPrivate' | 'maxAddressesPerHost'>>,
  skipped: SkippedTarget[],
): Promise<MxResult> {
  const outcome = await resolveHost(name, 0, resolver, options, skipped);
  if (outcome.host !== undefined) return { kind: 'hosts', hosts: [outcome.host], implicit: true, skipped };
  if (outcome.temporary) {
    return {
      kind: 'temporary',
      status: '4.4.3',
      reason: `no MX for ${name} and ${summarize(skipped)}`,
      skipped,
    };
  }
  if (outcome.nxdomain) {
    return { kind: 'permanent', status: '5.1.2', reason: `domain ${name} does not exist`, skipped };
  }
  return {
    kind: 'permanent',
    status: '5.4.4',
    reason: `domain ${name} has no MX and no usable A/AAAA: ${summarize(skipped)}`,
    skipped,
  };
}

async function explicitMx(
  name: string,
  records: MxRecord[],
  resolver: DnsResolver,
  options: Required<Pick<MailHostOptions, 'allowPrivate' | 'maxAddressesPerHost' | 'rng' | 'maxHosts'>>,
  skipped: SkippedTarget[],
): Promise<MxResult> {
  const real = records.filter((r) => r.exchange !== '');
  if (real.length === 0) {
    return {
      kind: 'permanent',
      status: '5.1.10',
      reason: `domain ${name} accepts no mail (null MX)`,
      skipped,
    };
  }
  // RFC 7505 forbids a null MX beside others; the others are the only thing that can be tried.
  if (real.length < records.length)
    skipped.push({ host: '.', reason: 'null MX mixed with other MX records ignored' });

  const candidates: MxRecord[] = [];
  const seen = new Set<string>();
  for (const record of orderByPreference(real, options.rng)) {
    const host = record.exchange.toLowerCase();
    if (seen.has(host)) continue;
    seen.add(host);
    if (isIP(host) !== 0 || addressLiteral(host) !== undefined) {
      // RFC 5321 §5.1: the exchange is a domain name; a numeric one is a broken zone (Postfix and
      // Exim refuse it too), and honouring it would skip the address-policy lookups.
      skipped.push({ host, reason: 'MX exchange is an IP address, not a host name' });
      continue;
    }
    const ascii = normalizeDomain(host);
    if (ascii === undefined) {
      skipped.push({ host, reason: 'MX exchange is not a valid host name' });
      continue;
    }
    if (candidates.length >= options.maxHosts) {
      skipped.push({ host: ascii, reason: `beyond the limit of ${options.maxHosts} MX hosts` });
      continue;
    }
    candidates.push({ preference: record.preference, exchange: ascii });
  }

  // A CNAME at an MX host (forbidden by RFC 2181 §10.3 but common) is followed by the A/AAAA
  // lookups themselves, so it needs no special case here.
  const outcomes = await Promise.all(
    candidates.map((c) => resolveHost(c.exchange, c.preference, resolver, options, skipped)),
  );
  const hosts = outcomes.flatMap((o) => (o.host === undefined ? [] : [o.host]));
  if (hosts.length > 0) return { kind: 'hosts', hosts, implicit: false, skipped };
  if (outcomes.some((o) => o.temporary)) {
    return {
      kind: 'temporary',
      status: '4.4.3',
      reason: `no MX host of ${name} could be resolved: ${summarize(skipped)}`,
      skipped,
    };
  }
  return {
    kind: 'permanent',
    status: '5.4.4',
    reason: `no MX host of ${name} has a usable address: ${summarize(skipped)}`,
    skipped,
  };
}
