import { join } from 'node:path';

export interface RelayNodeOptions {
  /** Folder that holds the node's dataDir. */
  root: string;
  port: number;
  sinkPort: number;
  /** Node name (also names the dataDir, so two nodes can share a root). */
  name?: string;
  /** Extra `limits:` lines for the receive connector (indented by the caller's YAML, 6 spaces). */
  receiveLimits?: Record<string, number | string>;
  /** The send connector's maxMessageSize (schema default 35 MB). */
  sendMaxMessageSize?: string;
  /** Top-level YAML appended as it is (e.g. an `admin:` section). */
  extra?: string;
}

/**
 * The smart-host relay node of config/examples/relay-smarthost.yaml with the bench's ports and
 * state in a temp folder, and email authentication off: Postfix here checks no SPF, DKIM or DMARC
 * either, and with it on every message waits for DNS (lookups for client.test), which these
 * benches are not about.
 */
export function relayNodeConfig(o: RelayNodeOptions): { yaml: string; dataDir: string } {
  const name = o.name ?? 'bench-relay';
  const dataDir = join(o.root, `${name}-data`);
  const limits = { maxConnectionsPerSource: 1000, ...o.receiveLimits };
  const yaml = `node:
  name: ${name}
  fqdn: relay.bench.ferrymail.test
  dataDir: ${dataDir}
  logLevel: warn
acceptedDomains:
  - name: relay.bench.test
    type: externalRelay
    default: true
receiveConnectors:
  - name: Relay
    bindings: ["127.0.0.1:${o.port}"]
    remoteRanges: ["127.0.0.0/8"]
    permissionGroups:
      anonymous: [submit, relay]
    tls:
      mode: starttls
    limits:
${Object.entries(limits)
  .map(([k, v]) => `      ${k}: ${v}`)
  .join('\n')}
sendConnectors:
  - name: SmartHost
    addressSpaces: ["*"]
    routing:
      type: smartHost
      hosts: ["127.0.0.1:${o.sinkPort}"]
    tls:
      mode: opportunistic
${o.sendMaxMessageSize ? `    maxMessageSize: ${o.sendMaxMessageSize}\n` : ''}emailAuthentication:
  enabled: false
${o.extra ?? ''}`;
  return { yaml, dataDir };
}
