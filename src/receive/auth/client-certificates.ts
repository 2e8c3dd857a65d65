import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';

/**
 * Client certificates (mutual TLS) on a receive connector: the session asks the client for a
 * certificate, checks its chain against the connector's CA file (not the system store: only a CA
 * the administrator names can make a partner or a server), and the first `map` entry whose
 * subject CN and/or DNS subjectAltName match grants its permission group. OpenSSL is told not to
 * refuse the handshake over the certificate (rejectUnauthorized: false), so a client without one
 * can still use the connector anonymously unless `required` says otherwise; the verdict is ours.
 */

export type CertificateGroup = 'partners' | 'servers';

export interface ClientCertificateSettings {
  readonly caFile: string;
  readonly required: boolean;
  readonly map: ReadonlyArray<{
    readonly match: { readonly subject?: string | undefined; readonly san?: string | undefined };
    readonly group: CertificateGroup;
  }>;
}

export interface ClientCertificateVerdict {
  /** The chain leads to one of the configured CAs and every certificate in it is in its validity period. */
  readonly verified: boolean;
  /** The permission group the first matching map entry grants (only for a verified certificate). */
  readonly group?: CertificateGroup;
  /** The leaf's subject CN, for logs. */
  readonly subject?: string;
  readonly reason?: string;
}

const NONE: ClientCertificateVerdict = Object.freeze({ verified: false, reason: 'no client certificate' });
const MAX_CHAIN = 8;

export class ClientCertificateTrust {
  readonly settings: ClientCertificateSettings;
  readonly #anchors: ReadonlyArray<X509Certificate>;

  private constructor(settings: ClientCertificateSettings, anchors: ReadonlyArray<X509Certificate>) {
    this.settings = settings;
    this.#anchors = anchors;
  }

  static async load(settings: ClientCertificateSettings): Promise<ClientCertificateTrust> {
    let pem: string;
    try {
      pem = await readFile(settings.caFile, 'utf8');
    } catch (error) {
      throw new Error(
        `cannot read tls.clientCertificates.caFile ${settings.caFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    const anchors = blocks.map((b) => new X509Certificate(b));
    if (anchors.length === 0)
      throw new Error(`tls.clientCertificates.caFile ${settings.caFile} holds no certificate`);
    return new ClientCertificateTrust(settings, anchors);
  }

  /** What the TLS socket needs so that the client is asked for a certificate. */
  static readonly tlsOptions = { requestCert: true, rejectUnauthorized: false } as const;

  /** The verdict on the certificate the client presented in the finished handshake of `socket`. */
  evaluate(socket: TLSSocket, now: number): ClientCertificateVerdict {
    const peer = socket.getPeerCertificate(true);
    if (!peer?.raw) return NONE;
    const presented: X509Certificate[] = [];
    const seen = new Set<string>();
    for (
      let c: typeof peer | undefined = peer;
      c?.raw && presented.length < MAX_CHAIN;
      c = c.issuerCertificate
    ) {
      if (seen.has(c.fingerprint256)) break;
      seen.add(c.fingerprint256);
      presented.push(new X509Certificate(c.raw));
    }
    const leaf = presented[0]!;
    const subject = commonName(leaf);
    const chain = this.#chain(leaf, presented.slice(1), now);
    if (chain !== 'ok') return { verified: false, reason: chain, ...(subject ? { subject } : {}) };
    const entry = this.settings.map.find((m) => matches(leaf, m.match));
    return { verified: true, ...(entry ? { group: entry.group } : {}), ...(subject ? { subject } : {}) };
  }

  #chain(leaf: X509Certificate, intermediates: X509Certificate[], now: number): 'ok' | string {
    let current = leaf;
    for (let depth = 0; depth <= MAX_CHAIN; depth++) {
      if (!inValidity(current, now))
        return `certificate ${commonName(current) ?? '?'} is expired or not yet valid`;
      const anchor = this.#anchors.find((a) => issuedBy(current, a));
      if (anchor) return inValidity(anchor, now) ? 'ok' : 'the CA certificate is expired or not yet valid';
      const next = intermediates.find((i) => i.ca && issuedBy(current, i));
      if (!next) return 'certificate not issued by a configured CA';
      current = next;
    }
    return 'certificate chain too long';
  }
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function inValidity(cert: X509Certificate, now: number): boolean {
  return cert.validFromDate.getTime() <= now && now <= cert.validToDate.getTime();
}

function commonName(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  return san
    .split(/,\s*/)
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4).toLowerCase());
}

/** A configured name matches a certificate name exactly, or `*.example.com` matches one label below it. */
function nameMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  if (!p.startsWith('*.')) return false;
  const dot = n.indexOf('.');
  return dot > 0 && n.slice(dot) === p.slice(1) && !n.slice(0, dot).includes('*');
}

function matches(
  cert: X509Certificate,
  match: { subject?: string | undefined; san?: string | undefined },
): boolean {
  if (match.subject === undefined && match.san === undefined) return false;
  if (match.subject !== undefined) {
    const cn = commonName(cert);
    if (cn === undefined || !nameMatches(match.subject, cn)) return false;
  }
  if (match.san !== undefined) {
    const pattern = match.san;
    if (!dnsNames(cert).some((n) => nameMatches(pattern, n))) return false;
  }
  return true;
}
