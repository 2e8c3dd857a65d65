import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkDnsServers, createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

describe('the DNS resolver turns every answer into a typed result and never throws', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'example.test': {
        MX: [
          { preference: 10, exchange: 'mx1.example.test' },
          { preference: 20, exchange: 'mx2.example.test.' },
        ],
        TXT: ['v=spf1 -all', ['part one ', 'part two']],
      },
      'mx1.example.test': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'] },
      'nomail.test': { MX: [{ preference: 0, exchange: '.' }] },
      'a-only.test': { A: ['192.0.2.20'] },
      '_25._tcp.mx1.example.test': {
        TLSA: [{ usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 0xab) }],
      },
      'alias.test': { CNAME: 'a-only.test' },
      'broken.test': { rcode: 'SERVFAIL' },
      'refused.test': { rcode: 'REFUSED' },
      'silent.test': { timeout: true },
      'garbage.test': {
        raw: (query) => Buffer.concat([query.subarray(0, 2), Buffer.from('8180000100010000', 'hex')]),
      },
    });
    resolver = createResolver({ servers: [dns.server], timeout: 200, tries: 1 });
  });
  after(() => dns.close());

  it('returns MX records with preference and exchange, trailing dot removed', async () => {
    assert.deepEqual(await resolver.mx('example.test'), {
      kind: 'ok',
      records: [
        { preference: 10, exchange: 'mx1.example.test' },
        { preference: 20, exchange: 'mx2.example.test' },
      ],
    });
  });

  it('returns the null MX as an empty exchange', async () => {
    assert.deepEqual(await resolver.mx('nomail.test'), {
      kind: 'ok',
      records: [{ preference: 0, exchange: '' }],
    });
  });

  it('returns A and AAAA addresses', async () => {
    assert.deepEqual(await resolver.a('mx1.example.test'), { kind: 'ok', records: ['192.0.2.10'] });
    assert.deepEqual(await resolver.aaaa('mx1.example.test'), { kind: 'ok', records: ['2001:db8::10'] });
  });

  it('returns TXT records as their character-strings', async () => {
    assert.deepEqual(await resolver.txt('example.test'), {
      kind: 'ok',
      records: [['v=spf1 -all'], ['part one ', 'part two']],
    });
  });

  it('returns TLSA records with their certificate data as bytes', async () => {
    const result = await resolver.tlsa('_25._tcp.mx1.example.test');
    assert.equal(result.kind, 'ok');
    assert.ok(result.kind === 'ok');
    assert.equal(result.records.length, 1);
    const [record] = result.records;
    assert.equal(record?.usage, 3);
    assert.equal(record?.selector, 1);
    assert.equal(record?.matchingType, 1);
    assert.deepEqual(record?.data, Buffer.alloc(32, 0xab));
  });

  it('reports nodata when the name exists without records of the type', async () => {
    assert.deepEqual(await resolver.mx('a-only.test'), { kind: 'nodata' });
    assert.deepEqual(await resolver.aaaa('a-only.test'), { kind: 'nodata' });
  });

  it('follows a CNAME answered in the same response', async () => {
    assert.deepEqual(await resolver.a('alias.test'), { kind: 'ok', records: ['192.0.2.20'] });
  });

  it('reports nodata when an alias leads to a name without records of the type', async () => {
    assert.deepEqual(await resolver.aaaa('alias.test'), { kind: 'nodata' });
  });

  it('reports nxdomain for a name that does not exist', async () => {
    assert.deepEqual(await resolver.mx('missing.test'), { kind: 'nxdomain' });
  });

  it('reports nxdomain for a name that cannot exist in DNS', async () => {
    assert.deepEqual(await resolver.a('a..b.test'), { kind: 'nxdomain' });
    assert.deepEqual(await resolver.a(`${'x'.repeat(64)}.test`), { kind: 'nxdomain' });
  });

  it('reports SERVFAIL as temporary with the reason and the question', async () => {
    const result = await resolver.mx('broken.test');
    assert.equal(result.kind, 'temporary');
    assert.match(result.kind === 'temporary' ? result.reason : '', /SERVFAIL.*broken\.test MX/);
  });

  it('reports a REFUSED answer as temporary', async () => {
    assert.equal((await resolver.a('refused.test')).kind, 'temporary');
  });

  it('reports a timeout as temporary, within the configured timeout', async () => {
    const started = Date.now();
    const result = await resolver.mx('silent.test');
    assert.equal(result.kind, 'temporary');
    assert.match(result.kind === 'temporary' ? result.reason : '', /timed out/);
    assert.ok(Date.now() - started < 2000, 'the lookup gave up quickly');
  });

  it('reports a malformed answer as temporary', async () => {
    const result = await resolver.mx('garbage.test');
    assert.equal(result.kind, 'temporary');
    assert.match(result.kind === 'temporary' ? result.reason : '', /malformed/);
  });

  it('records the queries it sent', () => {
    assert.ok(dns.queries.some((q) => q.name === 'example.test' && q.type === 'MX' && q.transport === 'udp'));
  });
});

describe('the DNS resolver copes with unreachable and misconfigured servers', () => {
  it('reports temporary when no server listens', async () => {
    const dns = await startDnsServer({});
    const server = dns.server;
    await dns.close();
    const resolver = createResolver({ servers: [server], timeout: 200, tries: 1 });
    const result = await resolver.mx('example.test');
    assert.equal(result.kind, 'temporary');
  });

  it('answers every lookup with a temporary reason naming a bad server instead of throwing', async () => {
    const resolver = createResolver({ servers: ['not-an-ip'], timeout: 200, tries: 1 });
    assert.deepEqual(await resolver.a('example.test'), {
      kind: 'temporary',
      reason: "DNS server 'not-an-ip' is not an IP address, 'ip:port' or '[ipv6]:port'",
    });
  });

  it('checks server lists for configuration: ip, ip:port and [ipv6]:port are accepted', () => {
    assert.equal(checkDnsServers(['192.0.2.53', '127.0.0.1:5353', '::1', '[::1]:53']), undefined);
    assert.match(checkDnsServers(['127.0.0.1:70000']) ?? '', /port outside/);
    assert.match(checkDnsServers(['[127.0.0.1]:53']) ?? '', /not an IP address/);
    assert.match(checkDnsServers(['dns.example:53']) ?? '', /not an IP address/);
  });
});
