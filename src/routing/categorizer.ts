import type { NewRecipient } from '../queue/types.ts';
import type { AcceptedRecipient } from '../receive/types.ts';
import type { Router } from './router.ts';

/**
 * Turns the recipients a session accepted into queue recipients: one per final address, with
 * its next hop. Aliases were rewritten and groups expanded by the directory at RCPT time; here a
 * mailbox reached twice (directly and through a group, say) keeps only its first occurrence, and
 * a rewritten address keeps the address the client gave as its ORCPT.
 */
export function categorize(
  accepted: ReadonlyArray<AcceptedRecipient>,
  router: Router,
  messageSize: number,
): NewRecipient[] {
  const seen = new Set<string>();
  const out: NewRecipient[] = [];
  for (const rcpt of accepted) {
    for (const target of rcpt.resolvesTo) {
      if (seen.has(target.address)) continue;
      seen.add(target.address);
      const orcpt = rcpt.orcpt ?? (target.address === rcpt.address ? undefined : `rfc822;${rcpt.address}`);
      out.push({
        address: target.address,
        nextHop: router.route(target, messageSize),
        ...(orcpt === undefined ? {} : { orcpt }),
        ...(rcpt.notify === undefined ? {} : { notify: rcpt.notify }),
      });
    }
  }
  return out;
}
