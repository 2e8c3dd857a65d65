import type { IpListEntry } from '../../config/schema.ts';
import type { Clock } from '../../core/clock.ts';
import { type IpRange, parseIpRange } from '../../receive/ip-ranges.ts';
import { reply } from '../../smtp/reply.ts';
import { type Agent, CONTINUE, rejectWith } from '../types.ts';

/** The mark an allow-listed session carries: DNSBL, rate limits and the sender filter skip it. */
export const ALLOW_LISTED = 'allowListed';

interface Entry {
  readonly range: IpRange;
  readonly expires: number | undefined;
}

function compile(entries: ReadonlyArray<IpListEntry>): Entry[] {
  const out: Entry[] = [];
  for (const e of entries) {
    // Bad ranges are refused by the config cross-check; one that slipped through matches nothing.
    const range = parseIpRange(e.range);
    if (range) out.push({ range, expires: e.expires });
  }
  return out;
}

function listed(entries: ReadonlyArray<Entry>, ip: string, now: number): boolean {
  return entries.some((e) => (e.expires === undefined || now < e.expires) && e.range.contains(ip));
}

/**
 * Connection filtering by IP (Exchange's IP Allow List and IP Block List): an entry applies until
 * its `expires` instant. An allow-listed client is marked (and never blocked: allow beats block);
 * a blocked one gets 554 5.7.1 as its greeting and the connection is closed.
 */
export function ipListsAgent(options: {
  allow: ReadonlyArray<IpListEntry>;
  block: ReadonlyArray<IpListEntry>;
  clock: Clock;
}): Agent {
  const allow = compile(options.allow);
  const block = compile(options.block);
  return {
    name: 'ipLists',
    connect({ session }) {
      const now = options.clock.now();
      if (listed(allow, session.remoteIp, now)) {
        session.marks.add(ALLOW_LISTED);
        return CONTINUE;
      }
      if (listed(block, session.remoteIp, now)) {
        return rejectWith(
          reply(554, '5.7.1', `${session.localFqdn} Connection refused: [${session.remoteIp}] is blocked`),
          { disconnect: true },
        );
      }
      return CONTINUE;
    },
  };
}
