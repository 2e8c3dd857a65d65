import { isIP } from 'node:net';

/**
 * RFC 5321 §4.1.2 mailbox syntax, with RFC 6531 (SMTPUTF8) UTF-8 in local parts and domains when
 * the transaction allows it. Returns the address in its canonical form (domain lower-cased).
 */

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const ATEXT_UTF8 = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u;
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const LABEL_UTF8 =
  /^[A-Za-z0-9\u0080-\u{10FFFF}]([A-Za-z0-9\u0080-\u{10FFFF}-]*[A-Za-z0-9\u0080-\u{10FFFF}])?$/u;

export type AddressProblem = 'syntax' | 'utf8' | 'length';

export type ParsedAddress =
  | { ok: true; address: string; local: string; domain: string }
  | { ok: false; problem: AddressProblem };

function isDotString(local: string, utf8: boolean): boolean {
  return local.split('.').every((atom) => atom.length > 0 && (utf8 ? ATEXT_UTF8 : ATEXT).test(atom));
}

function isQuotedString(local: string, utf8: boolean): boolean {
  if (local.length < 2 || !local.startsWith('"') || !local.endsWith('"')) return false;
  const inner = local.slice(1, -1);
  for (let i = 0; i < inner.length; i++) {
    const c = inner.charCodeAt(i);
    if (c === 0x5c) {
      const next = inner.charCodeAt(++i);
      if (Number.isNaN(next) || next < 0x20 || next > 0x7e) return false;
    } else if (c === 0x22 || c < 0x20 || c === 0x7f || (c > 0x7e && !utf8)) {
      return false;
    }
  }
  return true;
}

function isDomain(domain: string, utf8: boolean): boolean {
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const literal = domain.slice(1, -1);
    if (literal.toLowerCase().startsWith('ipv6:')) return isIP(literal.slice(5)) === 6;
    return isIP(literal) === 4;
  }
  const labels = domain.split('.');
  return labels.every((l) => (utf8 ? LABEL_UTF8 : LABEL).test(l));
}

/** `mailbox` is what stands between `<` and `>`, without a source route. */
export function parseMailbox(mailbox: string, utf8: boolean): ParsedAddress {
  const at = mailbox.lastIndexOf('@');
  if (at <= 0 || at === mailbox.length - 1) return { ok: false, problem: 'syntax' };
  const local = mailbox.slice(0, at);
  const domain = mailbox.slice(at + 1);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: detecting non-ASCII
  const nonAscii = /[^\x00-\x7f]/.test(mailbox);
  if (nonAscii && !utf8) {
    const wouldBeValid = (isDotString(local, true) || isQuotedString(local, true)) && isDomain(domain, true);
    return { ok: false, problem: wouldBeValid ? 'utf8' : 'syntax' };
  }
  if (!(isDotString(local, utf8) || isQuotedString(local, utf8)) || !isDomain(domain, utf8)) {
    return { ok: false, problem: 'syntax' };
  }
  if (Buffer.byteLength(local) > 64 || Buffer.byteLength(domain) > 255)
    return { ok: false, problem: 'length' };
  const canonicalDomain = domain.toLowerCase();
  return { ok: true, address: `${local}@${canonicalDomain}`, local, domain: canonicalDomain };
}
