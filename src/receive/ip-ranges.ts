import { BlockList, isIP } from 'node:net';

/**
 * Remote IP ranges of receive connectors: a single address, a CIDR block, or `first-last`.
 * Each range knows its size so the most specific one can win when connectors share a port.
 */
export interface IpRange {
  readonly text: string;
  readonly family: 4 | 6;
  /** log2 of the number of addresses it covers, rounded down (32 − prefix for IPv4). */
  readonly breadth: number;
  /** How many addresses it covers: the smaller, the more specific. */
  readonly size: bigint;
  contains(ip: string): boolean;
}

/** `::ffff:1.2.3.4` is the IPv4 client 1.2.3.4 on a dual-stack socket. */
export function normalizeIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

function ipToBigInt(ip: string, family: 4 | 6): bigint {
  if (family === 4) return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const [head = '', tail = ''] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g || '0', 16)), 0n);
}

export function parseIpRange(text: string): IpRange | undefined {
  const list = new BlockList();
  const trimmed = text.trim();
  const dash = trimmed.indexOf('-');
  try {
    if (dash > 0) {
      const first = normalizeIp(trimmed.slice(0, dash).trim());
      const last = normalizeIp(trimmed.slice(dash + 1).trim());
      const family = isIP(first);
      if (family === 0 || isIP(last) !== family) return undefined;
      const f = family as 4 | 6;
      const count = ipToBigInt(last, f) - ipToBigInt(first, f) + 1n;
      if (count <= 0n) return undefined;
      list.addRange(first, last, f === 4 ? 'ipv4' : 'ipv6');
      return {
        text,
        family: f,
        breadth: count.toString(2).length - 1,
        size: count,
        contains: (ip) => check(list, ip, f),
      };
    }
    const slash = trimmed.indexOf('/');
    const address = normalizeIp(slash < 0 ? trimmed : trimmed.slice(0, slash));
    const family = isIP(address);
    if (family === 0) return undefined;
    const f = family as 4 | 6;
    const bits = f === 4 ? 32 : 128;
    const prefix = slash < 0 ? bits : Number(trimmed.slice(slash + 1));
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
    list.addSubnet(address, prefix, f === 4 ? 'ipv4' : 'ipv6');
    return {
      text,
      family: f,
      breadth: bits - prefix,
      size: 1n << BigInt(bits - prefix),
      contains: (ip) => check(list, ip, f),
    };
  } catch {
    return undefined;
  }
}

function check(list: BlockList, ip: string, family: 4 | 6): boolean {
  const normalized = normalizeIp(ip);
  const f = isIP(normalized);
  if (f !== family) return false;
  return list.check(normalized, f === 4 ? 'ipv4' : 'ipv6');
}

/** The candidate with the most specific range containing `ip` (the fewest addresses); the first on a tie. */
export function bestMatch<T>(
  ip: string,
  candidates: ReadonlyArray<{ ranges: ReadonlyArray<IpRange>; value: T }>,
): T | undefined {
  let best: { size: bigint; value: T } | undefined;
  for (const c of candidates) {
    for (const r of c.ranges) {
      if (r.contains(ip) && (!best || r.size < best.size)) best = { size: r.size, value: c.value };
    }
  }
  return best?.value;
}
