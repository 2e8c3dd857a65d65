import type { Config } from '../config/schema.ts';
import type { Resolution, ResolvedRecipient } from './types.ts';

/** Groups nest at most this deep; deeper members are left out (loops stop at the first repeat anyway). */
export const MAX_GROUP_DEPTH = 16;

const UNKNOWN: Resolution = Object.freeze({ kind: 'unknown' });

/**
 * What every configured address (mailbox, proxy address, alias, group) resolves to, keyed by
 * the lower-cased address. An alias or group that leads to nobody (a loop, or nesting past
 * MAX_GROUP_DEPTH) resolves to `unknown`; the config check refuses such files, and this is
 * what the directory would do with one.
 */
export function resolveConfiguredAddresses(
  config: Pick<Config, 'mailboxes' | 'aliases' | 'groups'>,
): Map<string, Resolution> {
  const mailboxes = new Set<string>();
  const targets = new Map<string, string>();
  const groups = new Map<string, ReadonlyArray<string>>();
  for (const m of config.mailboxes) {
    const address = m.address.toLowerCase();
    mailboxes.add(address);
    for (const proxy of m.aliases) targets.set(proxy.toLowerCase(), address);
  }
  for (const a of config.aliases) targets.set(a.address.toLowerCase(), a.target.toLowerCase());
  for (const g of config.groups)
    groups.set(
      g.address.toLowerCase(),
      g.members.map((m) => m.toLowerCase()),
    );

  const expand = (address: string, out: ResolvedRecipient[], visited: Set<string>, depth: number): void => {
    if (mailboxes.has(address)) {
      out.push({ address, local: true });
      return;
    }
    const target = targets.get(address);
    const members = groups.get(address);
    if (target === undefined && members === undefined) {
      // Not ours to expand: an outside address, or one in a relay domain; it leaves through a connector.
      out.push({ address, local: false });
      return;
    }
    // One visit per address: a loop ends at its first repeat, and a shared subgroup costs once.
    if (visited.has(address) || depth >= MAX_GROUP_DEPTH) return;
    visited.add(address);
    for (const next of target !== undefined ? [target] : members!) expand(next, out, visited, depth + 1);
  };

  const resolutions = new Map<string, Resolution>();
  for (const address of [...mailboxes, ...targets.keys(), ...groups.keys()]) {
    const out: ResolvedRecipient[] = [];
    expand(address, out, new Set(), 0);
    const recipients = dedupe(out);
    if (recipients.length === 0) {
      resolutions.set(address, UNKNOWN);
      continue;
    }
    const rewritten = recipients.length !== 1 || recipients[0]!.address !== address;
    resolutions.set(
      address,
      Object.freeze({ kind: 'internal', recipients: Object.freeze(recipients), rewritten }),
    );
  }
  return resolutions;
}

function dedupe(recipients: ResolvedRecipient[]): ResolvedRecipient[] {
  const seen = new Set<string>();
  return recipients.filter((r) => (seen.has(r.address) ? false : (seen.add(r.address), true)));
}
