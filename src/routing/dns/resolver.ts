import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * The DNS questions outbound routing asks, with every failure turned into a value: a lookup never
 * throws, so the caller must decide what each outcome means for delivery.
 */

export type DnsResult<T> =
  | { kind: 'ok'; records: T[] }
  /** The name exists but has no records of this type. */
  | { kind: 'nodata' }
  /** The name does not exist (or cannot exist: it is not a valid DNS name). */
  | { kind: 'nxdomain' }
  /** No authoritative answer this time: asking again later may succeed. */
  | { kind: 'temporary'; reason: string };

export interface MxRecord {
  preference: number;
  /** The exchange host, without a trailing dot; '' for the null MX ('.', RFC 7505). */
  exchange: string;
}

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export interface DnsResolver {
  mx(domain: string): Promise<DnsResult<MxRecord>>;
  a(host: string): Promise<DnsResult<string>>;
  aaaa(host: string): Promise<DnsResult<string>>;
  /** Each record as its character-strings; SPF and MTA-STS join them, others may not. */
  txt(name: string): Promise<DnsResult<string[]>>;
  /**
   * TLSA records as the resolver returned them. Node's resolver does not expose the AD bit, so
   * these are NOT known to be DNSSEC-validated and must not be used for DANE (docs/decisions/dns.md).
   */
  tlsa(name: string): Promise<DnsResult<TlsaRecord>>;
  /** Abandons every lookup in flight; they settle as temporary. */
  cancel(): void;
}

export interface ResolverOptions {
  /** 'ip', 'ip:port' or '[ipv6]:port'; the system's resolvers when absent or empty. */
  servers?: string[];
  /** Milliseconds before the first try is given up (c-ares doubles it on each further try). */
  timeout: number;
  /** Tries per server before the lookup is temporary. */
  tries: number;
}

/** Why a configured DNS server is unusable, or undefined when it is fine. */
export function checkDnsServer(server: string): string | undefined {
  if (isIP(server) !== 0) return undefined;
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(server);
  const plain = /^([^:]+):(\d{1,5})$/.exec(server);
  const match = bracketed ?? plain;
  if (match === null) return `DNS server '${server}' is not an IP address, 'ip:port' or '[ipv6]:port'`;
  const [, host = '', portText = ''] = match;
  const family = isIP(host);
  if (family === 0 || (bracketed !== null && family !== 6))
    return `DNS server '${server}' is not an IP address`;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `DNS server '${server}' has a port outside 1-65535`;
  return undefined;
}

/** The first problem with a list of DNS servers, for configuration checks at start. */
export function checkDnsServers(servers: readonly string[]): string | undefined {
  for (const server of servers) {
    const problem = checkDnsServer(server);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

const TEMPORARY_CODES: Record<string, string> = {
  ETIMEOUT: 'DNS query timed out',
  ESERVFAIL: 'DNS server failure (SERVFAIL)',
  ECONNREFUSED: 'DNS server refused the connection',
  EREFUSED: 'DNS server refused the query',
  EBADRESP: 'malformed DNS response',
  EFORMERR: 'DNS server reports a malformed query',
  ENOTIMP: 'DNS server does not implement the query',
  ECANCELLED: 'DNS query cancelled',
  EDESTRUCTION: 'DNS resolver shut down',
  ETIMEDOUT: 'DNS query timed out',
  ECONNRESET: 'DNS connection reset',
};

function classifyError(error: unknown, question: string): DnsResult<never> {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENODATA':
      return { kind: 'nodata' };
    case 'ENOTFOUND':
    case 'EBADNAME':
      return { kind: 'nxdomain' };
    default: {
      const known = code === undefined ? undefined : TEMPORARY_CODES[code];
      const detail =
        known ?? `DNS lookup failed (${code ?? (error instanceof Error ? error.message : 'unknown error')})`;
      return { kind: 'temporary', reason: `${detail}: ${question}` };
    }
  }
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Runs one lookup, maps its failure, and keeps only the records that are well-formed. */
async function lookup<Raw, T>(
  question: string,
  query: () => Promise<Raw[]>,
  convert: (raw: Raw) => T | undefined,
): Promise<DnsResult<T>> {
  let raw: Raw[];
  try {
    raw = await query();
  } catch (error) {
    return classifyError(error, question);
  }
  if (!Array.isArray(raw)) return { kind: 'temporary', reason: `malformed DNS response: ${question}` };
  const records: T[] = [];
  for (const item of raw) {
    const converted = convert(item);
    if (converted !== undefined) records.push(converted);
  }
  // An answer made only of aliases (a CNAME to a name without this type) has no records of the type.
  if (records.length === 0) return { kind: 'nodata' };
  return { kind: 'ok', records };
}

export function createResolver(options: ResolverOptions): DnsResolver {
  const resolver = new Resolver({ timeout: options.timeout, tries: options.tries });
  const servers = options.servers ?? [];
  // A bad server list fails every lookup with its reason instead of throwing here: configuration
  // is meant to be checked with checkDnsServers at start, and routing must never crash on it.
  let unusable = checkDnsServers(servers);
  if (unusable === undefined && servers.length > 0) {
    try {
      resolver.setServers(servers);
    } catch (error) {
      unusable = `DNS servers rejected: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  const guarded = <T>(run: () => Promise<DnsResult<T>>): Promise<DnsResult<T>> =>
    unusable === undefined ? run() : Promise.resolve({ kind: 'temporary', reason: unusable });

  return {
    mx: (domain) =>
      guarded(() =>
        lookup(
          `${domain} MX`,
          () => resolver.resolveMx(domain),
          (raw) =>
            Number.isInteger(raw.priority) && typeof raw.exchange === 'string'
              ? { preference: raw.priority, exchange: stripDot(raw.exchange) }
              : undefined,
        ),
      ),
    a: (host) =>
      guarded(() =>
        lookup(
          `${host} A`,
          () => resolver.resolve4(host),
          (raw) => (isIP(raw) === 4 ? raw : undefined),
        ),
      ),
    aaaa: (host) =>
      guarded(() =>
        lookup(
          `${host} AAAA`,
          () => resolver.resolve6(host),
          (raw) => (isIP(raw) === 6 ? raw : undefined),
        ),
      ),
    txt: (name) =>
      guarded(() =>
        lookup(
          `${name} TXT`,
          () => resolver.resolveTxt(name),
          (raw) => (Array.isArray(raw) ? raw.filter((chunk) => typeof chunk === 'string') : undefined),
        ),
      ),
    tlsa: (name) =>
      guarded(() =>
        lookup(
          `${name} TLSA`,
          () => resolver.resolveTlsa(name),
          (raw) =>
            raw.data instanceof ArrayBuffer
              ? {
                  usage: raw.certUsage,
                  selector: raw.selector,
                  matchingType: raw.match,
                  data: Buffer.from(raw.data),
                }
              : undefined,
        ),
      ),
    cancel: () => resolver.cancel(),
  };
}
