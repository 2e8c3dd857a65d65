import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resolveMailHosts } from '../../../src/routing/dns/mx.ts';
import { createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

/** A response header with the query's id and a claimed answer count the body does not hold. */
function lyingHeader(query: Buffer): Buffer {
  return Buffer.concat([query.subarray(0, 2), Buffer.from('8180000100050000000000', 'hex')]);
}

describe('broken, hostile and oversized DNS answers never crash MX resolution', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'garbage.test': { raw: lyingHeader },
      'random.test': {
        raw: (query) => Buffer.concat([query.subarray(0, 2), Buffer.from('ff'.repeat(40), 'hex')]),
      },
      'empty-reply.test': { raw: () => Buffer.alloc(0) },
      'wrong-id.test': { raw: (query) => Buffer.from([query[0]! ^ 0xff, query[1]!, ...query.subarray(2)]) },
      'garbage-host.test': { MX: [{ preference: 10, exchange: 'mx.garbage-host.test' }] },
      'mx.garbage-host.test': { raw: lyingHeader },
      'huge.test': {
        MX: Array.from({ length: 300 }, (_, i) => ({
          preference: 300 - i,
          exchange: `mail-exchanger-with-a-long-name-${i}.huge.test`,
        })),
      },
      ...Object.fromEntries(
        Array.from({ length: 300 }, (_, i) => [
          `mail-exchanger-with-a-long-name-${i}.huge.test`,
          { A: [`192.0.2.${i % 250}`] },
        ]),
      ),
      'crowded-host.test': { MX: [{ preference: 10, exchange: 'mx.crowded-host.test' }] },
      'mx.crowded-host.test': { A: Array.from({ length: 200 }, (_, i) => `198.51.100.${i}`) },
      'literal.test': {
        MX: [
          { preference: 10, exchange: '192.0.2.80' },
          { preference: 20, exchange: 'mx.literal.test' },
        ],
      },
      'mx.literal.test': { A: ['192.0.2.81'] },
      'only-literal.test': { MX: [{ preference: 10, exchange: '127.0.0.1' }] },
      'cname-mx.test': { MX: [{ preference: 10, exchange: 'alias.cname-mx.test' }] },
      'alias.cname-mx.test': { CNAME: 'real.cname-mx.test' },
      'real.cname-mx.test': { A: ['192.0.2.82'] },
      'loop.test': { MX: [{ preference: 10, exchange: 'a.loop.test' }] },
      'a.loop.test': { CNAME: 'b.loop.test' },
      'b.loop.test': { CNAME: 'a.loop.test' },
      'long-txt.test': { TXT: [Array.from({ length: 40 }, () => 'x'.repeat(255))] },
    });
    resolver = createResolver({ servers: [dns.server], timeout: 200, tries: 1 });
  });
  after(() => dns.close());

  for (const domain of ['garbage.test', 'random.test', 'empty-reply.test', 'wrong-id.test']) {
    it(`treats an unusable answer for ${domain} as a temporary failure`, async () => {
      const result = await resolveMailHosts(domain, resolver, { allowPrivate: false });
      assert.ok(result.kind === 'temporary', JSON.stringify(result));
      assert.equal(result.status, '4.4.3');
    });
  }

  it('defers when the only MX host gets a malformed address answer', async () => {
    const result = await resolveMailHosts('garbage-host.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'temporary');
    assert.equal(result.status, '4.4.3');
  });

  it('reads an MX set too large for UDP over TCP and keeps only the 10 best hosts', async () => {
    const result = await resolveMailHosts('huge.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(
      result.hosts.map((h) => h.preference),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.ok(dns.queries.some((q) => q.name === 'huge.test' && q.transport === 'tcp'));
    const addressQueries = dns.queries.filter((q) => q.name.endsWith('.huge.test') && q.type === 'A');
    assert.equal(addressQueries.length, 10, 'only the capped hosts are looked up');
  });

  it('keeps only the first addresses of a host with hundreds of them', async () => {
    const result = await resolveMailHosts('crowded-host.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(
      result.hosts[0]?.addresses,
      Array.from({ length: 8 }, (_, i) => `198.51.100.${i}`),
    );
  });

  it('skips an MX whose exchange is an IP address and uses the next one', async () => {
    const result = await resolveMailHosts('literal.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(
      result.hosts.map((h) => h.name),
      ['mx.literal.test'],
    );
    assert.ok(
      result.skipped.some((s) => s.host === '192.0.2.80' && /IP address, not a host name/.test(s.reason)),
    );
  });

  it('fails permanently when the only MX is an IP address, even a loopback one allowed by policy', async () => {
    const result = await resolveMailHosts('only-literal.test', resolver, { allowPrivate: true });
    assert.ok(result.kind === 'permanent');
    assert.equal(result.status, '5.4.4');
  });

  it('follows an MX host that is a CNAME to its addresses, under the MX name', async () => {
    const result = await resolveMailHosts('cname-mx.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts, [
      { name: 'alias.cname-mx.test', preference: 10, addresses: ['192.0.2.82'] },
    ]);
  });

  it('does not hang or crash on a CNAME loop', async () => {
    const result = await resolveMailHosts('loop.test', resolver, { allowPrivate: false });
    assert.notEqual(result.kind, 'hosts');
  });

  it('returns a TXT record of 40 full character-strings intact', async () => {
    const result = await resolver.txt('long-txt.test');
    assert.ok(result.kind === 'ok');
    assert.equal(result.records[0]?.length, 40);
    assert.equal(result.records[0]?.join('').length, 40 * 255);
  });
});

describe('a resolver implementation that throws', () => {
  it('still yields a temporary 4.4.3 outcome instead of an exception', async () => {
    const broken = createResolver({ servers: ['127.0.0.1:1'], timeout: 200, tries: 1 });
    const throwing: DnsResolver = {
      ...broken,
      mx: () => Promise.reject(new Error('resolver bug')),
    };
    const result = await resolveMailHosts('example.test', throwing, { allowPrivate: false });
    assert.deepEqual(result, {
      kind: 'temporary',
      status: '4.4.3',
      reason: 'DNS lookup for example.test failed: resolver bug',
      skipped: [],
    });
  });
});
