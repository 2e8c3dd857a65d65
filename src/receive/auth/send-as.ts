import type { Directory } from '../../directory/types.ts';

/**
 * Send-as for authenticated submission: the envelope sender and every From: address must be the
 * logged-in user's own (primary or proxy address) or one the directory lets them send as
 * (`mailboxes[].sendAs`). The null sender counts as an address of its own, `<>`: allowed only
 * when sendAs lists it.
 */
export function maySendAs(directory: Directory, user: string, address: string): boolean {
  if (directory.maySendAs) return directory.maySendAs(user, address);
  return address !== '' && address.toLowerCase() === user.toLowerCase();
}

/**
 * The addresses of a From: field value (RFC 5322 §3.4 mailbox-list, groups included), lower-cased,
 * or undefined when some entry is not an address: a field we cannot read is not one we can allow.
 */
export function fieldAddresses(value: string): string[] | undefined {
  const text = withoutComments(value);
  if (text === undefined) return undefined;
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  let inAngle = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      current += ch;
      if (ch === '\\') current += text[++i] ?? '';
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === '<') {
      if (inAngle) return undefined;
      inAngle = true;
    } else if (ch === '>') {
      if (!inAngle) return undefined;
      inAngle = false;
    } else if (!inAngle && ch === ':') {
      // A group: its display name ends here, its members follow (up to ';').
      current = '';
      continue;
    } else if (!inAngle && (ch === ',' || ch === ';')) {
      entries.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  if (quoted || inAngle) return undefined;
  entries.push(current);
  const addresses: string[] = [];
  for (const entry of entries) {
    if (entry.trim() === '') continue;
    const open = angleStart(entry);
    let spec = entry;
    if (open >= 0) {
      const close = entry.indexOf('>', open);
      if (close < 0 || entry.slice(close + 1).trim() !== '') return undefined;
      spec = entry.slice(open + 1, close);
    }
    const address = normalizeAddrSpec(spec);
    if (address === undefined) return undefined;
    addresses.push(address);
  }
  return addresses;
}

/** Where the angle address of an entry starts (outside quoted display names), or -1. */
function angleStart(entry: string): number {
  let quoted = false;
  for (let i = 0; i < entry.length; i++) {
    const ch = entry[i]!;
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') return i;
  }
  return -1;
}

/** The text with (nested) comments replaced by a space; undefined when a comment never ends. */
function withoutComments(value: string): string | undefined {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (depth > 0) {
      if (ch === '\\') i++;
      else if (ch === '(') depth++;
      else if (ch === ')' && --depth === 0) out += ' ';
      continue;
    }
    if (quoted) {
      out += ch;
      if (ch === '\\') out += value[++i] ?? '';
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    if (ch === '(') {
      depth = 1;
      continue;
    }
    out += ch;
  }
  return depth === 0 && !quoted ? out : undefined;
}

/** `local@domain` (route stripped, simple quoting removed), lower-cased; undefined if not one. */
function normalizeAddrSpec(text: string): string | undefined {
  let t = text.trim();
  // An obsolete source route: <@a,@b:user@domain>.
  const route = /^@[^:]*:(.*)$/s.exec(t);
  if (route) t = route[1]!.trim();
  const at = t.lastIndexOf('@');
  if (at <= 0 || at === t.length - 1) return undefined;
  let local = t.slice(0, at).trim();
  const domain = t.slice(at + 1).trim();
  if (/\s/.test(domain) || domain.includes('"')) return undefined;
  const q = /^"((?:[^"\\]|\\.)*)"$/s.exec(local);
  if (q) local = q[1]!.replace(/\\(.)/g, '$1');
  else if (/[\s"]/.test(local)) return undefined;
  return `${local}@${domain}`.toLowerCase();
}
