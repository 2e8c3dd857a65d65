import { X509Certificate } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { addressScope } from '../dns/address-scope.ts';
import type { DnsResolver } from '../dns/resolver.ts';

/** What a policy fetch returned; the caller checks status, type and size (RFC 8461 §3.3). */
export interface PolicyResponse {
  status: number;
  contentType: string;
  body: Buffer;
}

export type PolicyFetcher = (domain: string, signal: AbortSignal) => Promise<PolicyResponse>;

export interface HttpsFetcherOptions {
  /** Looks up the policy host's addresses, so the configured DNS servers are used, not the system's. */
  resolver: DnsResolver;
  /** Trust these roots instead of the system's (tests). */
  ca?: string | Buffer;
  /** Connect here instead of the policy host's addresses (tests); the certificate is still checked against the name. */
  connectTo?: (host: string) => { address: string; port: number };
  /** The body is refused beyond this many bytes. */
  maxBodySize: number;
}

export const POLICY_PATH = '/.well-known/mta-sts.txt';

/**
 * RFC 8461 §3.3: the certificate must be valid for the policy host as a DNS-ID (RFC 6125): a
 * subjectAltName, never the CN, and a wildcard only as the whole leftmost label.
 */
function checkPolicyHost(host: string, cert: PeerCertificate): Error | undefined {
  try {
    const matched = new X509Certificate(cert.raw).checkHost(host, {
      subject: 'never',
      wildcards: true,
      partialWildcards: false,
      multiLabelWildcards: false,
      singleLabelSubdomains: false,
    });
    if (matched !== undefined) return undefined;
  } catch {
    // An unreadable certificate is not valid for anything.
  }
  const error = new Error(`certificate is not valid for ${host}`) as NodeJS.ErrnoException;
  error.code = 'ERR_TLS_CERT_ALTNAME_INVALID';
  return error;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for node's sockets that asks our resolver (AAAA and A, IPv6 first) instead of the
 * system's, and leaves out addresses that are never destinations (multicast, unspecified...).
 */
export function resolverLookup(resolver: DnsResolver) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    Promise.all([resolver.aaaa(hostname), resolver.a(hostname)]).then(
      ([v6, v4]) => {
        const found: LookupAddress[] = [];
        for (const [result, family] of [
          [v6, 6],
          [v4, 4],
        ] as const) {
          if (result.kind !== 'ok') continue;
          for (const address of result.records)
            if (addressScope(address) !== 'unusable') found.push({ address, family });
        }
        if (found.length === 0) {
          const reasons = [v6, v4].flatMap((r) => (r.kind === 'temporary' ? [r.reason] : []));
          const error = new Error(
            `no address for ${hostname}${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`,
          ) as NodeJS.ErrnoException;
          error.code = reasons.length > 0 ? 'EAI_AGAIN' : 'ENOTFOUND';
          callback(error, []);
        } else if (options.all) callback(null, found);
        else callback(null, found[0]!.address, found[0]!.family);
      },
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), []),
    );
  };
}

/**
 * The default fetcher: HTTPS GET https://mta-sts.<domain>/.well-known/mta-sts.txt with a verified
 * certificate for mta-sts.<domain>, a fresh connection each time, no redirects followed (a 3xx is
 * returned as it is, for the caller to refuse), and the body cut off beyond maxBodySize. A
 * response other than 200 is returned without reading its body.
 */
export function createHttpsFetcher(options: HttpsFetcherOptions): PolicyFetcher {
  return (domain, signal) =>
    new Promise<PolicyResponse>((resolve, reject) => {
      const host = `mta-sts.${domain}`;
      const target = options.connectTo?.(host);
      const req = request({
        host: target?.address ?? host,
        port: target?.port ?? 443,
        path: POLICY_PATH,
        method: 'GET',
        headers: { host, accept: 'text/plain', 'user-agent': 'ferrymail-mta-sts' },
        servername: host,
        rejectUnauthorized: true,
        checkServerIdentity: (_name, cert) => checkPolicyHost(host, cert),
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(target === undefined ? { lookup: resolverLookup(options.resolver) } : {}),
        agent: false,
        signal,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const contentType = String(res.headers['content-type'] ?? '');
        if (status !== 200) {
          res.destroy();
          req.destroy();
          resolve({ status, contentType, body: Buffer.alloc(0) });
          return;
        }
        const tooLarge = () =>
          new Error(`policy body larger than ${options.maxBodySize} bytes at https://${host}${POLICY_PATH}`);
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > options.maxBodySize) {
          req.destroy();
          reject(tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBodySize) {
            req.destroy();
            reject(tooLarge());
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => resolve({ status, contentType, body: Buffer.concat(chunks) }));
        res.on('close', () => {
          if (!res.complete) reject(new Error(`incomplete response from https://${host}${POLICY_PATH}`));
        });
      });
      req.end();
    });
}
