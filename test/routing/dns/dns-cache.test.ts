import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../../src/core/clock.ts';
import { cachingResolver } from '../../../src/routing/dns/cache.ts';
import { createResolver } from '../../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

/**
 * The DNS cache in front of the resolver: the same question asked again within the cache time,
 * or asked by many sessions at once, reaches the DNS server once; temporary failures are asked
 * again; a zone change is seen once the cache time has passed.
 */
describe('the DNS cache', () => {
  let dns: TestDnsServer;
  before(async () => {
    dns = await startDnsServer({
      'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }], TXT: ['v=spf1 -all'] },
      'broken.test': { rcode: 'SERVFAIL' },
    });
  });
  after(() => dns.close());

  const asked = (type: string, name: string) =>
    dns.queries.filter((q) => q.type === type && q.name === name).length;

  function resolver(clock: ManualClock, cacheTime = 60_000) {
    return cachingResolver(createResolver({ servers: [dns.server], timeout: 500, tries: 1 }), {
      clock,
      cacheTime,
    });
  }

  it('answers a repeated question from the cache until the cache time has passed', async () => {
    const clock = new ManualClock(1_000_000);
    const r = resolver(clock);
    const before = asked('MX', 'example.test');
    const first = await r.mx('example.test');
    const second = await r.mx('Example.TEST');
    assert.deepEqual(second, first);
    assert.equal(asked('MX', 'example.test'), before + 1, 'one query for two lookups');
    clock.advance(60_001);
    await r.mx('example.test');
    assert.equal(asked('MX', 'example.test'), before + 2, 'asked again after the cache time');
  });

  it('shares one query among lookups in flight at the same moment', async () => {
    const clock = new ManualClock(1_000_000);
    const r = resolver(clock, 0);
    const before = asked('TXT', 'example.test');
    const results = await Promise.all(Array.from({ length: 20 }, () => r.txt('example.test')));
    assert.equal(asked('TXT', 'example.test'), before + 1);
    assert.ok(results.every((x) => x.kind === 'ok'));
    await r.txt('example.test');
    assert.equal(asked('TXT', 'example.test'), before + 2, 'cacheTime 0 keeps nothing after the answer');
  });

  it('never keeps a temporary failure', async () => {
    const clock = new ManualClock(1_000_000);
    const r = resolver(clock);
    const before = asked('MX', 'broken.test');
    assert.equal((await r.mx('broken.test')).kind, 'temporary');
    assert.equal((await r.mx('broken.test')).kind, 'temporary');
    assert.equal(asked('MX', 'broken.test'), before + 2);
  });

  it('keeps "no such domain" too, for the cache time', async () => {
    const clock = new ManualClock(1_000_000);
    const r = resolver(clock);
    const before = asked('A', 'nowhere.test');
    assert.equal((await r.a('nowhere.test')).kind, 'nxdomain');
    assert.equal((await r.a('nowhere.test')).kind, 'nxdomain');
    assert.equal(asked('A', 'nowhere.test'), before + 1);
  });
});
