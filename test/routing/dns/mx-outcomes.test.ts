import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resolveMailHosts } from '../../../src/routing/dns/mx.ts';
import { createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

describe('a domain without usable MX records gets the outcome RFC 5321 and RFC 7505 call for', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'implicit.test': { A: ['192.0.2.40'], AAAA: ['2001:db8::40'] },
      'implicit-v6.test': { AAAA: ['2001:db8::41'] },
      'bare.test': { TXT: ['v=spf1 -all'] },
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }], A: ['192.0.2.42'] },
      'mixed-null.test': {
        MX: [
          { preference: 0, exchange: '.' },
          { preference: 10, exchange: 'mx.mixed-null.test' },
        ],
      },
      'mx.mixed-null.test': { A: ['192.0.2.43'] },
      'servfail.test': { rcode: 'SERVFAIL' },
      'slow.test': { timeout: true },
      'implicit-slow.test': { TXT: ['exists'] },
      'partial.test': {
        MX: [
          { preference: 10, exchange: 'ghost.partial.test' },
          { preference: 20, exchange: 'empty.partial.test' },
          { preference: 30, exchange: 'mx.partial.test' },
        ],
      },
      'empty.partial.test': { TXT: ['no addresses here'] },
      'mx.partial.test': { A: ['192.0.2.44'] },
      'dead.test': {
        MX: [
          { preference: 10, exchange: 'ghost.dead.test' },
          { preference: 20, exchange: 'empty.dead.test' },
        ],
      },
      'empty.dead.test': { TXT: ['no addresses here'] },
      'flaky.test': {
        MX: [
          { preference: 10, exchange: 'slow.flaky.test' },
          { preference: 20, exchange: 'ghost.flaky.test' },
        ],
      },
      'slow.flaky.test': { rcode: 'SERVFAIL' },
      'backup.test': {
        MX: [
          { preference: 10, exchange: 'slow.backup.test' },
          { preference: 20, exchange: 'mx.backup.test' },
        ],
      },
      'slow.backup.test': { rcode: 'SERVFAIL' },
      'mx.backup.test': { A: ['192.0.2.45'] },
    });
    resolver = createResolver({ servers: [dns.server], timeout: 200, tries: 1 });
  });
  after(() => dns.close());

  it('falls back to the domain’s own A and AAAA when it has no MX records (implicit MX)', async () => {
    const result = await resolveMailHosts('implicit.test', resolver, { allowPrivate: false });
    assert.deepEqual(result, {
      kind: 'hosts',
      implicit: true,
      hosts: [{ name: 'implicit.test', preference: 0, addresses: ['2001:db8::40', '192.0.2.40'] }],
      skipped: [],
    });
  });

  it('uses an implicit MX that has only an AAAA record', async () => {
    const result = await resolveMailHosts('implicit-v6.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts[0]?.addresses, ['2001:db8::41']);
  });

  it('fails permanently with 5.4.4 when the domain has neither MX nor address records', async () => {
    const result = await resolveMailHosts('bare.test', resolver, { allowPrivate: false });
    assert.equal(result.kind, 'permanent');
    assert.ok(result.kind === 'permanent');
    assert.equal(result.status, '5.4.4');
    assert.match(result.reason, /no MX and no usable A\/AAAA/);
  });

  it('fails permanently with 5.1.10 for a null MX, without falling back to the A record', async () => {
    const result = await resolveMailHosts('nullmx.test', resolver, { allowPrivate: false });
    assert.deepEqual(result, {
      kind: 'permanent',
      status: '5.1.10',
      reason: 'domain nullmx.test accepts no mail (null MX)',
      skipped: [],
    });
  });

  it('ignores a null MX published beside real MX records and uses the real ones', async () => {
    const result = await resolveMailHosts('mixed-null.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts, [
      { name: 'mx.mixed-null.test', preference: 10, addresses: ['192.0.2.43'] },
    ]);
    assert.ok(result.skipped.some((s) => /null MX/.test(s.reason)));
  });

  it('fails permanently with 5.1.2 when the domain does not exist', async () => {
    const result = await resolveMailHosts('nowhere.test', resolver, { allowPrivate: false });
    assert.deepEqual(result, {
      kind: 'permanent',
      status: '5.1.2',
      reason: 'domain nowhere.test does not exist',
      skipped: [],
    });
  });

  it('fails permanently with 5.1.2 for a domain that is not a valid name, without asking DNS', async () => {
    const before = dns.queries.length;
    for (const bad of ['', 'a..b', 'exa mple.test', '1.2.3.4', `${'x'.repeat(64)}.test`, 'bad\r\n.test']) {
      const result = await resolveMailHosts(bad, resolver, { allowPrivate: false });
      assert.equal(result.kind, 'permanent', bad);
      assert.ok(result.kind === 'permanent');
      assert.equal(result.status, '5.1.2');
    }
    assert.equal(dns.queries.length, before);
  });

  it('defers with 4.4.3 when the MX lookup gets SERVFAIL', async () => {
    const result = await resolveMailHosts('servfail.test', resolver, { allowPrivate: false });
    assert.equal(result.kind, 'temporary');
    assert.ok(result.kind === 'temporary');
    assert.equal(result.status, '4.4.3');
    assert.match(result.reason, /SERVFAIL/);
  });

  it('defers with 4.4.3 when the MX lookup times out', async () => {
    const result = await resolveMailHosts('slow.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'temporary');
    assert.equal(result.status, '4.4.3');
    assert.match(result.reason, /timed out/);
  });

  it('skips MX hosts without addresses and delivers to the ones that have some', async () => {
    const result = await resolveMailHosts('partial.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts, [{ name: 'mx.partial.test', preference: 30, addresses: ['192.0.2.44'] }]);
    assert.deepEqual(result.skipped.map((s) => [s.host, s.reason]).sort(), [
      ['empty.partial.test', 'host has no A or AAAA records'],
      ['ghost.partial.test', 'host does not exist (NXDOMAIN)'],
    ]);
  });

  it('fails permanently with 5.4.4 when no MX host has any address', async () => {
    const result = await resolveMailHosts('dead.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'permanent');
    assert.equal(result.status, '5.4.4');
    assert.match(result.reason, /no MX host of dead\.test has a usable address/);
  });

  it('defers with 4.4.3 when no MX host resolved and one lookup failed temporarily', async () => {
    const result = await resolveMailHosts('flaky.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'temporary');
    assert.equal(result.status, '4.4.3');
  });

  it('uses a backup MX when a better one cannot be resolved right now, and says so', async () => {
    const result = await resolveMailHosts('backup.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(
      result.hosts.map((h) => h.name),
      ['mx.backup.test'],
    );
    assert.ok(result.skipped.some((s) => s.host === 'slow.backup.test' && /SERVFAIL/.test(s.reason)));
  });
});

describe('address lookups that fail for one family only', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'implicit-broken.test': { failTypes: { A: 'SERVFAIL', AAAA: 'SERVFAIL' } },
      'v6-broken.test': { MX: [{ preference: 10, exchange: 'mx.v6-broken.test' }] },
      'mx.v6-broken.test': { A: ['192.0.2.50'], failTypes: { AAAA: 'timeout' } },
    });
    resolver = createResolver({ servers: [dns.server], timeout: 200, tries: 1 });
  });
  after(() => dns.close());

  it('defers with 4.4.3 when an MX-less domain’s address lookups fail temporarily', async () => {
    const result = await resolveMailHosts('implicit-broken.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'temporary');
    assert.equal(result.status, '4.4.3');
    assert.match(result.reason, /no MX for implicit-broken\.test/);
  });

  it('keeps the IPv4 addresses of a host whose AAAA lookup times out, and notes the timeout', async () => {
    const result = await resolveMailHosts('v6-broken.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts[0]?.addresses, ['192.0.2.50']);
    assert.ok(result.skipped.some((s) => s.host === 'mx.v6-broken.test' && /AAAA/.test(s.reason)));
  });
});
