import { domainToASCII } from 'node:url';

/** The author domain of a header section, or why there is none to sign for. */
export type AuthorDomain = { readonly domain: string } | { readonly problem: string };

/** RFC 5322 field name: printable US-ASCII except the colon. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
/** A DNS name as DKIM's d= takes it, in A-labels. */
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The domain of the RFC 5322 From: (the identity DMARC aligns with), in lower-case A-labels.
 * `section` is the header section, each line ending in CRLF (or LF). A section that is not a
 * run of fields and folded continuations, no From: or more than one, a From: without an
 * address, or one whose mailboxes are in different domains, is a problem, not a domain.
 */
export function authorDomain(section: Buffer): AuthorDomain {
  const lines = section.toString('utf8').split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  const fields: string[] = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (fields.length === 0) return { problem: 'the header section starts with a continuation line' };
      fields[fields.length - 1] += line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || !FIELD_NAME.test(line.slice(0, colon).trimEnd())) {
      return { problem: `malformed header line: ${JSON.stringify(line.slice(0, 80))}` };
    }
    fields.push(line);
  }
  const froms = fields.filter((f) => /^from[ \t]*:/i.test(f));
  if (froms.length === 0) return { problem: 'no From: header' };
  if (froms.length > 1) return { problem: `${froms.length} From: headers` };
  const value = froms[0]!.slice(froms[0]!.indexOf(':') + 1);
  const addresses = mailboxAddresses(value);
  const domains = new Set<string>();
  for (const address of addresses) {
    const at = address.lastIndexOf('@');
    if (at <= 0) return { problem: `From: address without a domain: ${JSON.stringify(address)}` };
    const ascii = domainToASCII(address.slice(at + 1).replace(/\.$/, '')).toLowerCase();
    if (!DNS_NAME.test(ascii))
      return { problem: `From: domain is not a DNS name: ${JSON.stringify(address)}` };
    domains.add(ascii);
  }
  if (domains.size === 0) return { problem: 'From: holds no address' };
  if (domains.size > 1) return { problem: `From: names several domains: ${[...domains].join(', ')}` };
  return { domain: [...domains][0]! };
}

/**
 * The addr-specs of an address-list (RFC 5322 §3.4, with groups as RFC 6854 allows in From:):
 * display names, comments and quoted strings outside an angle-addr are dropped, an angle-addr
 * gives the address of its mailbox, and otherwise the mailbox is its bare addr-spec.
 */
export function mailboxAddresses(value: string): string[] {
  const addresses: string[] = [];
  let plain = '';
  let angle: string | undefined;
  let inAngle = false;
  const finish = () => {
    const address = (angle ?? plain).replace(/\s+/g, '');
    // An obsolete route (`<@relay:user@example.com>`) is not part of the address.
    const routed = address.startsWith('@') ? address.slice(address.indexOf(':') + 1) : address;
    if (routed !== '') addresses.push(routed);
    plain = '';
    angle = undefined;
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"') {
      // A quoted string: part of the addr-spec inside <> or bare (a quoted local part), else a display name.
      let quoted = c;
      for (i++; i < value.length && value[i] !== '"'; i++) {
        if (value[i] === '\\') i++;
        quoted += value[i] ?? '';
      }
      quoted += '"';
      if (inAngle) angle += quoted;
      else plain += quoted;
    } else if (c === '(' && !inAngle) {
      for (let depth = 1; depth > 0 && ++i < value.length; ) {
        if (value[i] === '\\') i++;
        else if (value[i] === '(') depth++;
        else if (value[i] === ')') depth--;
      }
    } else if (c === '<' && !inAngle) {
      inAngle = true;
      angle = '';
    } else if (c === '>' && inAngle) {
      inAngle = false;
    } else if (inAngle) {
      angle += c;
    } else if (c === ',' || c === ';') {
      finish();
    } else if (c === ':') {
      // A group's display name ends here; its mailboxes follow.
      plain = '';
    } else {
      plain += c;
    }
  }
  finish();
  return addresses;
}
