import { reply } from '../smtp/reply.ts';
import { ALLOW_LISTED } from './connection/ip-lists.ts';
import { type Agent, rejectWith } from './types.ts';

const DENIED = reply(554, '5.1.0', 'Sender denied');

/**
 * Exchange's sender filter: blocked reverse paths and domains (`*.example.com` covers the domain
 * and every subdomain) are refused at MAIL with 554 5.1.0. The null sender `<>` carries NDRs and
 * is only refused when `blockNullSender` says so. Authenticated, allow-listed and bypassAntiSpam
 * sessions are not filtered.
 */
export function senderFilterAgent(options: {
  blockedSenders: ReadonlyArray<string>;
  blockedDomains: ReadonlyArray<string>;
  blockNullSender: boolean;
}): Agent {
  const senders = new Set(options.blockedSenders.map((s) => s.toLowerCase()));
  const exact = new Set<string>();
  const withSubdomains: string[] = [];
  let everything = false;
  for (const d of options.blockedDomains.map((x) => x.toLowerCase())) {
    if (d === '*') everything = true;
    else if (d.startsWith('*.')) withSubdomains.push(d.slice(2));
    else exact.add(d);
  }
  const domainBlocked = (domain: string) =>
    everything || exact.has(domain) || withSubdomains.some((d) => domain === d || domain.endsWith(`.${d}`));
  return {
    name: 'senderFilter',
    mail({ session, sender }) {
      if (session.authUser !== undefined || session.marks.has(ALLOW_LISTED)) return undefined;
      if (session.permissions.has('bypassAntiSpam')) return undefined;
      if (sender === '') return options.blockNullSender ? rejectWith(DENIED) : undefined;
      const address = sender.toLowerCase();
      const domain = address.slice(address.lastIndexOf('@') + 1);
      if (senders.has(address) || domainBlocked(domain)) return rejectWith(DENIED);
      return undefined;
    },
  };
}
