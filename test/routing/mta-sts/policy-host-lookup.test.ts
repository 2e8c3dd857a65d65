import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { resolverLookup } from '../../../src/routing/mta-sts/fetcher.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

/**
 * Without connectTo, the default fetcher finds mta-sts.<domain> through our resolver (the
 * configured DNS servers), not the system's: checked with a real socket connect.
 */
describe('the policy host is looked up through the node resolver', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;
  let tcp: Server;
  let port: number;

  before(async () => {
    dns = await startDnsServer({
      'mta-sts.example.test': { A: ['127.0.0.1'] },
      'mta-sts.multicast.test': { A: ['224.0.0.1'] },
      'mta-sts.broken.test': { rcode: 'SERVFAIL' },
    });
    resolver = createResolver({ servers: [dns.server], timeout: 300, tries: 1 });
    tcp = createServer((socket) => socket.end('hello'));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    port = (tcp.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await dns.close();
  });

  const connectTo = (host: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host, port, lookup: resolverLookup(resolver) });
      socket.setEncoding('utf8');
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk;
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });

  it('connects to the address our DNS server gives', async () => {
    assert.equal(await connectTo('mta-sts.example.test'), 'hello');
    assert.ok(dns.queries.some((q) => q.name === 'mta-sts.example.test' && q.type === 'A'));
  });

  it('fails with ENOTFOUND for a host without a usable address, EAI_AGAIN when DNS fails', async () => {
    await assert.rejects(connectTo('mta-sts.absent.test'), { code: 'ENOTFOUND' });
    await assert.rejects(connectTo('mta-sts.multicast.test'), { code: 'ENOTFOUND' });
    await assert.rejects(connectTo('mta-sts.broken.test'), { code: 'EAI_AGAIN' });
  });
});
