import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resolveMailHosts } from '../../../src/routing/dns/mx.ts';
import { createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

/** An rng that replays the given draws, so the shuffle is predictable. */
function sequence(...draws: number[]): () => number {
  let i = 0;
  return () => draws[i++ % draws.length] ?? 0;
}

describe('MX hosts come in the order RFC 5321 §5.1 prescribes', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'ordered.test': {
        MX: [
          { preference: 30, exchange: 'c.ordered.test' },
          { preference: 10, exchange: 'a.ordered.test' },
          { preference: 20, exchange: 'b.ordered.test' },
        ],
      },
      'a.ordered.test': { A: ['192.0.2.1'] },
      'b.ordered.test': { A: ['192.0.2.2'] },
      'c.ordered.test': { A: ['192.0.2.3'] },
      'equal.test': {
        MX: [
          { preference: 10, exchange: 'p.equal.test' },
          { preference: 10, exchange: 'q.equal.test' },
          { preference: 10, exchange: 'r.equal.test' },
          { preference: 5, exchange: 'first.equal.test' },
        ],
      },
      'first.equal.test': { A: ['192.0.2.10'] },
      'p.equal.test': { A: ['192.0.2.11'] },
      'q.equal.test': { A: ['192.0.2.12'] },
      'r.equal.test': { A: ['192.0.2.13'] },
      'dual.test': { MX: [{ preference: 10, exchange: 'mx.dual.test' }] },
      'mx.dual.test': {
        A: ['192.0.2.21', '192.0.2.22', '192.0.2.23'],
        AAAA: ['2001:db8::21'],
      },
      'wide.test': {
        MX: [{ preference: 10, exchange: 'mx.wide.test' }],
      },
      'mx.wide.test': {
        A: Array.from({ length: 12 }, (_, i) => `192.0.2.${100 + i}`),
        AAAA: Array.from({ length: 12 }, (_, i) => `2001:db8::${100 + i}`),
      },
      'dupes.test': {
        MX: [
          { preference: 20, exchange: 'MX.dupes.test' },
          { preference: 10, exchange: 'mx.dupes.test' },
        ],
      },
      'mx.dupes.test': { A: ['192.0.2.30'] },
      'crowded.test': {
        MX: Array.from({ length: 15 }, (_, i) => ({ preference: i, exchange: `mx${i}.crowded.test` })),
      },
      ...Object.fromEntries(
        Array.from({ length: 15 }, (_, i) => [`mx${i}.crowded.test`, { A: [`192.0.2.${200 + i}`] }]),
      ),
    });
    resolver = createResolver({ servers: [dns.server], timeout: 200, tries: 1 });
  });
  after(() => dns.close());

  it('orders hosts by ascending preference', async () => {
    const result = await resolveMailHosts('ordered.test', resolver, { allowPrivate: false });
    assert.equal(result.kind, 'hosts');
    assert.ok(result.kind === 'hosts');
    assert.equal(result.implicit, false);
    assert.deepEqual(result.hosts, [
      { name: 'a.ordered.test', preference: 10, addresses: ['192.0.2.1'] },
      { name: 'b.ordered.test', preference: 20, addresses: ['192.0.2.2'] },
      { name: 'c.ordered.test', preference: 30, addresses: ['192.0.2.3'] },
    ]);
  });

  it('treats the domain case-insensitively and with or without the trailing dot', async () => {
    const result = await resolveMailHosts('Ordered.TEST.', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.equal(result.hosts[0]?.name, 'a.ordered.test');
  });

  it('shuffles hosts of equal preference with the given rng, never ahead of a better preference', async () => {
    const names = async (rng: () => number) => {
      const result = await resolveMailHosts('equal.test', resolver, { allowPrivate: false, rng });
      assert.ok(result.kind === 'hosts');
      return result.hosts.map((h) => h.name);
    };
    // Fisher–Yates from the end: draw 0.0 swaps the last with the first of the group, and so on.
    assert.deepEqual(await names(sequence(0, 0)), [
      'first.equal.test',
      'q.equal.test',
      'r.equal.test',
      'p.equal.test',
    ]);
    assert.deepEqual(await names(sequence(0.99, 0.99)), [
      'first.equal.test',
      'p.equal.test',
      'q.equal.test',
      'r.equal.test',
    ]);
    const seen = new Set<string>();
    for (let seed = 0; seed < 6; seed++) {
      const order = await names(sequence(seed / 6, ((seed * 5) % 6) / 6));
      assert.equal(order[0], 'first.equal.test');
      seen.add(order.slice(1).join(','));
    }
    assert.ok(seen.size > 1, 'different draws give different orders');
  });

  it('tolerates an rng that returns out-of-range values', async () => {
    for (const bad of [1, -3, Number.NaN, 1e9]) {
      const result = await resolveMailHosts('equal.test', resolver, { allowPrivate: false, rng: () => bad });
      assert.ok(result.kind === 'hosts');
      assert.equal(result.hosts.length, 4);
      assert.equal(new Set(result.hosts.map((h) => h.name)).size, 4);
    }
  });

  it('keeps both IPv6 and IPv4 addresses, interleaved with IPv6 first', async () => {
    const result = await resolveMailHosts('dual.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts[0]?.addresses, ['2001:db8::21', '192.0.2.21', '192.0.2.22', '192.0.2.23']);
  });

  it('caps the addresses of one host while keeping both families', async () => {
    const result = await resolveMailHosts('wide.test', resolver, {
      allowPrivate: false,
      maxAddressesPerHost: 4,
    });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts[0]?.addresses, [
      '2001:db8::100',
      '192.0.2.100',
      '2001:db8::101',
      '192.0.2.101',
    ]);
  });

  it('caps the addresses of one host at 8 by default', async () => {
    const result = await resolveMailHosts('wide.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.equal(result.hosts[0]?.addresses.length, 8);
  });

  it('lists a host named twice once, at its best preference', async () => {
    const result = await resolveMailHosts('dupes.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts, [{ name: 'mx.dupes.test', preference: 10, addresses: ['192.0.2.30'] }]);
  });

  it('considers at most 10 MX hosts by default, the best ones, and says which were left out', async () => {
    const result = await resolveMailHosts('crowded.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(
      result.hosts.map((h) => h.preference),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(result.skipped.filter((s) => /beyond the limit of 10 MX hosts/.test(s.reason)).length, 5);
    const asked = dns.queries.filter((q) => q.name.endsWith('.crowded.test')).map((q) => q.name);
    assert.ok(!asked.includes('mx12.crowded.test'), 'hosts beyond the cap are not even looked up');
  });

  it('honours a smaller host cap', async () => {
    const result = await resolveMailHosts('ordered.test', resolver, { allowPrivate: false, maxHosts: 2 });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(
      result.hosts.map((h) => h.name),
      ['a.ordered.test', 'b.ordered.test'],
    );
  });
});
