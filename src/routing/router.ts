import type { ResolvedRecipient } from '../directory/types.ts';
import type { NextHop } from '../queue/types.ts';
import { nextHopDomain, type SendConnectorSelector } from './send-connectors.ts';

/** Picks the next hop for one resolved recipient of a message of the given size. */
export interface Router {
  route(recipient: ResolvedRecipient, messageSize: number): NextHop;
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

/**
 * Local recipients go to the mailbox delivery queue; remote ones to the queue of the send
 * connector chosen for their domain. With no connector for the domain they wait in the
 * Unreachable queue, as in Exchange: kept, not dropped. When connectors serve the domain but all
 * are too small, the hop names no connector; the SMTP delivery agent then fails the recipient
 * with 5.3.4 (it selects again at delivery, so a config change in between is honoured).
 */
export function connectorRouter(selector: SendConnectorSelector): Router {
  return {
    route(recipient, messageSize) {
      if (recipient.local) return { type: 'mailbox', mailbox: recipient.address };
      const domain = domainOf(recipient.address);
      const choice = selector.select(domain, messageSize);
      switch (choice.kind) {
        case 'connector':
          return {
            type: 'smtp',
            domain: nextHopDomain(choice.connector, domain),
            connector: choice.connector.name,
          };
        case 'tooBig':
          return { type: 'smtp', domain };
        case 'none':
          return { type: 'unreachable', domain };
      }
    },
  };
}
