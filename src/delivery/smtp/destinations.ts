import { isIP } from 'node:net';
import type { SendConnectorConfig } from '../../config/schema.ts';
import { addressScope, isDeliverableAddress } from '../../routing/dns/address-scope.ts';
import { type MailHost, resolveMailHosts } from '../../routing/dns/mx.ts';
import type { DnsResolver } from '../../routing/dns/resolver.ts';

/**
 * Where one delivery attempt may connect, in order: the MX hosts of a domain (DNS routing) or a
 * connector's smart hosts. Every outcome that is not a list of hosts is an SMTP-style reply line
 * with an enhanced status code, so the agent can defer or fail without reading DNS itself.
 */

export interface Destination {
  /** Host name (MX exchange, smart host name) or the address itself for a literal. */
  readonly host: string;
  readonly port: number;
  readonly addresses: ReadonlyArray<string>;
  /** True for MX hosts: MTA-STS applies to them, not to smart hosts. */
  readonly fromMx: boolean;
}

export type DestinationResult =
  | { readonly kind: 'hosts'; readonly destinations: ReadonlyArray<Destination> }
  | { readonly kind: 'transient' | 'permanent'; readonly response: string };

export interface DestinationOptions {
  readonly resolver: DnsResolver;
  /** For MX answers only: smart hosts are the administrator's own choice and may be private. */
  readonly allowPrivateAddresses: boolean;
  readonly rng?: () => number;
}

/** `host`, `host:port`, `[addr]`, `[addr]:port`. */
export function parseSmartHost(text: string, defaultPort: number): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: Number(bracketed[2] ?? defaultPort) };
  const colon = text.lastIndexOf(':');
  // A bare IPv6 address has colons but no port.
  if (colon > 0 && isIP(text) === 0)
    return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
  return { host: text, port: defaultPort };
}

async function smartHostAddresses(host: string, resolver: DnsResolver): Promise<string[] | string> {
  if (isIP(host) !== 0) return [host];
  const [aaaa, a] = await Promise.all([resolver.aaaa(host), resolver.a(host)]);
  const found = [...(aaaa.kind === 'ok' ? aaaa.records : []), ...(a.kind === 'ok' ? a.records : [])].filter(
    (address) => isDeliverableAddress(addressScope(address), true),
  );
  if (found.length > 0) return found;
  const temporary = [aaaa, a].find((r) => r.kind === 'temporary');
  return temporary && temporary.kind === 'temporary' ? temporary.reason : 'no address';
}

async function smartHosts(
  connector: SendConnectorConfig & { routing: { type: 'smartHost' } },
  resolver: DnsResolver,
): Promise<DestinationResult> {
  const destinations: Destination[] = [];
  const problems: string[] = [];
  for (const entry of connector.routing.hosts) {
    const { host, port } = parseSmartHost(entry, connector.port);
    const addresses = await smartHostAddresses(host, resolver);
    if (typeof addresses === 'string') problems.push(`${host}: ${addresses}`);
    else destinations.push({ host, port, addresses, fromMx: false });
  }
  if (destinations.length > 0) return { kind: 'hosts', destinations };
  // A smart host that does not resolve is the administrator's to fix; the mail waits for it.
  return {
    kind: 'transient',
    response: `451 4.4.3 Smart hosts of connector ${connector.name} did not resolve (${problems.join('; ')})`,
  };
}

function fromMailHosts(hosts: ReadonlyArray<MailHost>, port: number): Destination[] {
  return hosts.map((h) => ({ host: h.name, port, addresses: h.addresses, fromMx: true }));
}

export async function findDestinations(
  connector: SendConnectorConfig,
  recipientDomain: string,
  options: DestinationOptions,
): Promise<DestinationResult> {
  if (connector.routing.type === 'smartHost') {
    return smartHosts(
      connector as SendConnectorConfig & { routing: { type: 'smartHost' } },
      options.resolver,
    );
  }
  const result = await resolveMailHosts(recipientDomain, options.resolver, {
    allowPrivate: options.allowPrivateAddresses,
    ...(options.rng ? { rng: options.rng } : {}),
  });
  if (result.kind === 'hosts')
    return { kind: 'hosts', destinations: fromMailHosts(result.hosts, connector.port) };
  const code = result.kind === 'permanent' ? 550 : 451;
  return {
    kind: result.kind === 'permanent' ? 'permanent' : 'transient',
    response: `${code} ${result.status} ${result.reason}`,
  };
}
