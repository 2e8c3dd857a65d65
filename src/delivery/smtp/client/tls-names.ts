import type { PeerCertificate } from 'node:tls';

/**
 * RFC 6125 name checks for verify mode `domain`: DNS-ID subjectAltNames (the subject CN only when
 * the certificate has no DNS-ID at all), compared without case and without a trailing dot. A
 * wildcard is accepted only as the whole leftmost label (`*.example.com`), matches exactly one
 * label, and never stands for a registrable name alone (`*.com` matches nothing). Partial-label
 * wildcards (`f*.example.com`, permitted but discouraged by §6.4.3) are not honoured.
 */

/** The DNS names a certificate presents (SAN DNS entries, or the CN when there are none). */
export function certificateNames(cert: PeerCertificate | undefined): string[] {
  if (!cert) return [];
  const names: string[] = [];
  for (const entry of splitAltNames(cert.subjectaltname ?? '')) {
    if (entry.startsWith('DNS:')) names.push(entry.slice(4));
  }
  if (names.length > 0) return names;
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') return [cn];
  if (Array.isArray(cn)) return cn.map(String);
  return [];
}

/** `DNS:a, DNS:b, IP Address:1.2.3.4`; quoted entries (with commas inside) are kept whole. */
function splitAltNames(text: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

function canonical(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

export function nameMatches(presented: string, reference: string): boolean {
  const p = canonical(presented);
  const r = canonical(reference);
  if (p === '' || r === '') return false;
  if (!p.includes('*')) return p === r;
  const pLabels = p.split('.');
  if (pLabels[0] !== '*' || pLabels.slice(1).some((l) => l.includes('*') || l === '')) return false;
  if (pLabels.length < 3) return false;
  const rLabels = r.split('.');
  if (rLabels.length !== pLabels.length || rLabels[0] === '') return false;
  return rLabels.slice(1).join('.') === pLabels.slice(1).join('.');
}

/** The first reference name that one of the presented names matches. */
export function matchCertificate(presented: string[], references: string[]): string | undefined {
  return references.find((r) => presented.some((p) => nameMatches(p, r)));
}
