import type { ResolvedRecipient } from '../directory/types.ts';
import type { NextHop } from '../queue/types.ts';

/** Picks the next hop for one resolved recipient. */
export interface Router {
  route(recipient: ResolvedRecipient): NextHop;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

/**
 * Local recipients go to the mailbox delivery queue. Remote ones need a send connector; until
 * send connectors exist they wait in the Unreachable queue, as Exchange does when no connector's
 * address space matches — they are kept, not dropped.
 */
export const localOnlyRouter: Router = {
  route(recipient) {
    return recipient.local
      ? { type: 'mailbox', mailbox: recipient.address }
      : { type: 'unreachable', domain: domainOf(recipient.address) };
  },
};
