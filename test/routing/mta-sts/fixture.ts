import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import { ManualClock } from '../../../src/core/clock.ts';
import { createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { type MtaStsOptions, MtaStsPolicies } from '../../../src/routing/mta-sts/index.ts';
import { startDnsServer, type TestDnsServer, type Zone } from '../../helpers/dns-server.ts';

/**
 * A real MTA-STS world on loopback: a DNS server with the _mta-sts TXT records, an HTTPS policy
 * host with a certificate from a test CA, and a cache folder. Tests change the zone, the handler
 * and the clock as they go.
 */

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestCertificates {
  ca: string;
  /** Signed by the CA for each name asked for. */
  forName(name: string): Promise<KeyPair>;
  /** Signed by the CA, naming the host only in the subject CN (no subjectAltName). */
  commonNameOnly(name: string): Promise<KeyPair>;
  /** Self-signed (not from the CA) for the name. */
  untrusted(name: string): Promise<KeyPair>;
}

export async function makeCertificates(): Promise<TestCertificates> {
  const notBeforeDate = new Date(Date.now() - 86_400_000);
  const notAfterDate = new Date(Date.now() + 30 * 86_400_000);
  const base = {
    keyType: 'ec' as const,
    curve: 'P-256' as const,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
  };
  const ca = await generate([{ name: 'commonName', value: 'Ferrymail Test CA' }], {
    ...base,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leafExtensions = (name: string) => [
    { name: 'basicConstraints' as const, cA: false },
    { name: 'keyUsage' as const, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage' as const, serverAuth: true },
    { name: 'subjectAltName' as const, altNames: [{ type: 2 as const, value: name }] },
  ];
  return {
    ca: ca.cert,
    async forName(name) {
      const pems = await generate([{ name: 'commonName', value: name }], {
        ...base,
        extensions: leafExtensions(name),
        ca: { key: ca.private, cert: ca.cert },
      });
      return { cert: pems.cert, key: pems.private };
    },
    async commonNameOnly(name) {
      const pems = await generate([{ name: 'commonName', value: name }], {
        ...base,
        extensions: [
          { name: 'basicConstraints', cA: false },
          { name: 'extKeyUsage', serverAuth: true },
        ],
        ca: { key: ca.private, cert: ca.cert },
      });
      return { cert: pems.cert, key: pems.private };
    },
    async untrusted(name) {
      const pems = await generate([{ name: 'commonName', value: name }], {
        ...base,
        extensions: leafExtensions(name),
      });
      return { cert: pems.cert, key: pems.private };
    },
  };
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface PolicyServer {
  port: number;
  /** Every request: its Host header, the SNI name and the path. */
  requests: Array<{ host: string | undefined; servername: string | undefined; path: string | undefined }>;
  handle: Handler;
  /** Serves this body as text/plain with status 200. */
  serve(body: string): void;
  close(): Promise<void>;
}

export async function startPolicyServer(pair: KeyPair): Promise<PolicyServer> {
  const state: PolicyServer = {
    port: 0,
    requests: [],
    handle: (_req, res) => {
      res.writeHead(404).end();
    },
    serve(body) {
      state.handle = (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
      };
    },
    close: async () => {},
  };
  const server: Server = createServer({ cert: pair.cert, key: pair.key }, (req, res) => {
    state.requests.push({
      host: req.headers.host,
      servername: (req.socket as TLSSocket).servername || undefined,
      path: req.url,
    });
    state.handle(req, res);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

export const POLICY = [
  'version: STSv1',
  'mode: enforce',
  'mx: mx1.example.test',
  'mx: *.backup.example.test',
  'max_age: 86400',
  '',
].join('\r\n');

export function stsZone(id: string | undefined, extra: Zone = {}): Zone {
  return {
    'example.test': { MX: [{ preference: 10, exchange: 'mx1.example.test' }] },
    ...(id === undefined ? {} : { '_mta-sts.example.test': { TXT: [`v=STSv1; id=${id};`] } }),
    ...extra,
  };
}

/** DNS, a policy host serving `pair`, a cache folder and a clock; `policies()` makes a fresh instance (a restart). */
export interface World {
  dns: TestDnsServer;
  resolver: DnsResolver;
  https: PolicyServer;
  clock: ManualClock;
  dir: string;
  cacheFile: string;
  policies(overrides?: Partial<MtaStsOptions>): MtaStsPolicies;
  close(): Promise<void>;
}

export async function startWorld(
  ca: string,
  pair: KeyPair,
  zone: Zone = stsZone('20260101'),
): Promise<World> {
  const dns = await startDnsServer(zone);
  const resolver = createResolver({ servers: [dns.server], timeout: 300, tries: 1 });
  const https = await startPolicyServer(pair);
  const clock = new ManualClock();
  const dir = await mkdtemp(join(tmpdir(), 'ferrymail-mta-sts-'));
  const cacheFile = join(dir, 'data', 'mta-sts', 'policies.json');
  return {
    dns,
    resolver,
    https,
    clock,
    dir,
    cacheFile,
    policies: (overrides = {}) =>
      new MtaStsPolicies({
        resolver,
        cacheFile,
        clock,
        https: { ca, connectTo: () => ({ address: '127.0.0.1', port: https.port }) },
        timeout: 2_000,
        ...overrides,
      }),
    async close() {
      resolver.cancel();
      await Promise.all([dns.close(), https.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
