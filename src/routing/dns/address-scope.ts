import { BlockList, isIP } from 'node:net';

/**
 * Where an address found in DNS would send mail. A hostile or broken zone can point its MX at our
 * own loopback or at the inside network; delivery must not follow it there unless told to.
 */
export type AddressScope =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cgnat'
  /** Never a destination at all: unspecified, multicast, broadcast, reserved, IPv4-mapped in AAAA. */
  | 'unusable';

const RANGES: Array<[Exclude<AddressScope, 'public'>, string, number, 'ipv4' | 'ipv6']> = [
  ['unusable', '0.0.0.0', 8, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['cgnat', '100.64.0.0', 10, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['unusable', '224.0.0.0', 4, 'ipv4'],
  // 240.0.0.0/4 is reserved and includes the limited broadcast address.
  ['unusable', '240.0.0.0', 4, 'ipv4'],
  ['loopback', '::1', 128, 'ipv6'],
  // ::/96 covers the unspecified address and the deprecated IPv4-compatible addresses.
  ['unusable', '::', 96, 'ipv6'],
  // A host reachable over IPv4 publishes an A record; an IPv4-mapped AAAA only smuggles an IPv4
  // destination (often 127.0.0.1) past the IPv4 checks.
  ['unusable', '::ffff:0:0', 96, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
  // fec0::/10 is the deprecated site-local range, private in practice.
  ['private', 'fec0::', 10, 'ipv6'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['unusable', 'ff00::', 8, 'ipv6'],
];

/**
 * One list per scope and family, checked in a fixed order: node's BlockList matches IPv4 rules
 * against IPv4-mapped IPv6 addresses and the reverse, so families must not share a list, and
 * ::1 (loopback) lies inside ::/96 (unusable), so loopback is checked first.
 */
const SCOPE_ORDER: Array<Exclude<AddressScope, 'public'>> = [
  'loopback',
  'unusable',
  'private',
  'link-local',
  'cgnat',
];
const LISTS = SCOPE_ORDER.map((scope) => {
  const lists = { scope, ipv4: new BlockList(), ipv6: new BlockList() };
  for (const [rangeScope, network, prefix, family] of RANGES) {
    if (rangeScope === scope) lists[family].addSubnet(network, prefix, family);
  }
  return lists;
});

/** The scope of an IP address; anything that is not an IP address is 'unusable'. */
export function addressScope(address: string): AddressScope {
  const family = isIP(address);
  if (family === 0) return 'unusable';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const lists of LISTS) {
    if (lists[type].check(address, type)) return lists.scope;
  }
  return 'public';
}

/** Whether mail may be sent to this address under the given policy. */
export function isDeliverableAddress(scope: AddressScope, allowPrivate: boolean): boolean {
  if (scope === 'public') return true;
  if (scope === 'unusable') return false;
  return allowPrivate;
}
