import type { SendConnectorConfig } from '../config/schema.ts';

/**
 * Send connector selection, as Exchange does it (../shared/reference/exchange-transport.md):
 * connectors too small for the message drop out, then the address spaces that match the
 * recipient domain, the most specific one first, then the lowest cost, then the name.
 */

export type ConnectorChoice =
  | { readonly kind: 'connector'; readonly connector: SendConnectorConfig }
  /** Some connector serves the domain, but none takes a message this size: NDR 5.3.4. */
  | { readonly kind: 'tooBig'; readonly largest: number }
  /** No enabled connector's address space covers the domain: the Unreachable queue. */
  | { readonly kind: 'none' };

/**
 * How specific an address space is for a domain, or -1 when it does not match. An exact domain
 * beats any wildcard; a longer wildcard suffix beats a shorter one; `*` matches everything, least.
 */
export function addressSpaceSpecificity(space: string, domain: string): number {
  if (space === '*') return 0;
  if (space.startsWith('*.')) {
    const suffix = space.slice(1); // ".example.com"
    // RFC-wise `*.example.com` covers example.com's subdomains; Exchange also lets it cover
    // example.com itself, which is what administrators expect from "everything under".
    if (domain.endsWith(suffix) || domain === suffix.slice(1)) return suffix.length;
    return -1;
  }
  // An exact match outranks every wildcard whatever their lengths.
  return space === domain ? 1_000_000 : -1;
}

interface Candidate {
  readonly connector: SendConnectorConfig;
  readonly specificity: number;
  readonly cost: number;
}

function bestMatch(connector: SendConnectorConfig, domain: string): Candidate | undefined {
  let best: Candidate | undefined;
  for (const space of connector.addressSpaces) {
    const specificity = addressSpaceSpecificity(space.domain, domain);
    if (specificity < 0) continue;
    if (
      !best ||
      specificity > best.specificity ||
      (specificity === best.specificity && space.cost < best.cost)
    ) {
      best = { connector, specificity, cost: space.cost };
    }
  }
  return best;
}

export class SendConnectorSelector {
  readonly #connectors: ReadonlyArray<SendConnectorConfig>;
  readonly #byName: ReadonlyMap<string, SendConnectorConfig>;

  constructor(connectors: ReadonlyArray<SendConnectorConfig>) {
    this.#connectors = connectors.filter((c) => c.enabled);
    this.#byName = new Map(this.#connectors.map((c) => [c.name, c]));
  }

  /** The enabled connector of that name, if it still exists (a queued hop may outlive a config change). */
  byName(name: string): SendConnectorConfig | undefined {
    return this.#byName.get(name);
  }

  select(domain: string, messageSize: number): ConnectorChoice {
    const normalized = domain.toLowerCase();
    const matches: Candidate[] = [];
    for (const connector of this.#connectors) {
      const match = bestMatch(connector, normalized);
      if (match) matches.push(match);
    }
    if (matches.length === 0) return { kind: 'none' };
    const fitting = matches.filter((m) => m.connector.maxMessageSize >= messageSize);
    if (fitting.length === 0) {
      return { kind: 'tooBig', largest: Math.max(...matches.map((m) => m.connector.maxMessageSize)) };
    }
    fitting.sort(
      (a, b) =>
        b.specificity - a.specificity ||
        a.cost - b.cost ||
        (a.connector.name < b.connector.name ? -1 : a.connector.name > b.connector.name ? 1 : 0),
    );
    return { kind: 'connector', connector: fitting[0]!.connector };
  }
}

/**
 * The queue a recipient waits in behind a connector (Exchange: one remote delivery queue per
 * next hop): the recipient's domain for DNS routing, the smart host list for smart hosts, so
 * every domain relayed through one smart host travels in the same transactions.
 */
export function nextHopDomain(connector: SendConnectorConfig, recipientDomain: string): string {
  return connector.routing.type === 'smartHost' ? connector.routing.hosts.join(',') : recipientDomain;
}
