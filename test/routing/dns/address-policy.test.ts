import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addressScope } from '../../../src/routing/dns/address-scope.ts';
import { resolveMailHosts } from '../../../src/routing/dns/mx.ts';
import { createResolver, type DnsResolver } from '../../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

describe('addresses are classified by where they would send mail', () => {
  const cases: Array<[string, ReturnType<typeof addressScope>]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.7.7', 'private'],
    ['fd12:3456::1', 'private'],
    ['fc00::1', 'private'],
    ['169.254.10.10', 'link-local'],
    ['fe80::1', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.254', 'cgnat'],
    ['0.0.0.0', 'unusable'],
    ['::', 'unusable'],
    ['224.0.0.1', 'unusable'],
    ['255.255.255.255', 'unusable'],
    ['ff02::1', 'unusable'],
    ['::ffff:127.0.0.1', 'unusable'],
    ['::ffff:7f00:1', 'unusable'],
    ['not an address', 'unusable'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['192.0.2.1', 'public'],
    ['2001:db8::1', 'public'],
    ['2a00:1450:4001::1', 'public'],
  ];
  for (const [address, scope] of cases) {
    it(`${address} is ${scope}`, () => assert.equal(addressScope(address), scope));
  }
});

describe('MX hosts on non-public addresses are refused unless private destinations are allowed', () => {
  let dns: TestDnsServer;
  let resolver: DnsResolver;

  before(async () => {
    dns = await startDnsServer({
      'inside.test': {
        MX: [
          { preference: 10, exchange: 'loop.inside.test' },
          { preference: 20, exchange: 'lan.inside.test' },
          { preference: 30, exchange: 'out.inside.test' },
        ],
      },
      'loop.inside.test': { A: ['127.0.0.1'], AAAA: ['::1'] },
      'lan.inside.test': { A: ['10.0.0.25', '192.0.2.60'], AAAA: ['fd00::25'] },
      'out.inside.test': { A: ['192.0.2.61'] },
      'trap.test': { MX: [{ preference: 10, exchange: 'mx.trap.test' }] },
      'mx.trap.test': {
        A: ['127.0.0.1', '169.254.169.254', '100.64.1.1'],
        AAAA: ['fe80::1', '::ffff:10.0.0.1'],
      },
      'implicit-lan.test': { A: ['192.168.1.10'] },
      'zero.test': { MX: [{ preference: 10, exchange: 'mx.zero.test' }] },
      'mx.zero.test': { A: ['0.0.0.0'], AAAA: ['::'] },
    });
    resolver = createResolver({ servers: [dns.server], timeout: 200, tries: 1 });
  });
  after(() => dns.close());

  it('drops loopback and private addresses, keeps public ones, and records each refusal', async () => {
    const result = await resolveMailHosts('inside.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts, [
      { name: 'lan.inside.test', preference: 20, addresses: ['192.0.2.60'] },
      { name: 'out.inside.test', preference: 30, addresses: ['192.0.2.61'] },
    ]);
    const refusals = result.skipped
      .filter((s) => s.address !== undefined)
      .map((s) => `${s.host} ${s.address} ${s.reason}`)
      .sort();
    assert.deepEqual(refusals, [
      'lan.inside.test 10.0.0.25 private address refused',
      'lan.inside.test fd00::25 private address refused',
      'loop.inside.test 127.0.0.1 loopback address refused',
      'loop.inside.test ::1 loopback address refused',
    ]);
  });

  it('keeps loopback and private addresses when allowed', async () => {
    const result = await resolveMailHosts('inside.test', resolver, { allowPrivate: true });
    assert.ok(result.kind === 'hosts');
    assert.deepEqual(result.hosts, [
      { name: 'loop.inside.test', preference: 10, addresses: ['::1', '127.0.0.1'] },
      { name: 'lan.inside.test', preference: 20, addresses: ['fd00::25', '10.0.0.25', '192.0.2.60'] },
      { name: 'out.inside.test', preference: 30, addresses: ['192.0.2.61'] },
    ]);
  });

  it('fails permanently with 5.4.4 when every address is refused, naming the reasons', async () => {
    const result = await resolveMailHosts('trap.test', resolver, { allowPrivate: false });
    assert.ok(result.kind === 'permanent');
    assert.equal(result.status, '5.4.4');
    assert.match(result.reason, /loopback address refused/);
    assert.deepEqual(result.skipped.filter((s) => s.address !== undefined).length, 5);
  });

  it('refuses a private implicit MX too', async () => {
    const refused = await resolveMailHosts('implicit-lan.test', resolver, { allowPrivate: false });
    assert.ok(refused.kind === 'permanent');
    assert.equal(refused.status, '5.4.4');
    const allowed = await resolveMailHosts('implicit-lan.test', resolver, { allowPrivate: true });
    assert.ok(allowed.kind === 'hosts');
    assert.deepEqual(allowed.hosts[0]?.addresses, ['192.168.1.10']);
  });

  it('never delivers to the unspecified address, even when private destinations are allowed', async () => {
    const result = await resolveMailHosts('zero.test', resolver, { allowPrivate: true });
    assert.ok(result.kind === 'permanent');
    assert.equal(result.status, '5.4.4');
  });

  it('applies the same policy to an address-literal domain', async () => {
    const loop = await resolveMailHosts('[127.0.0.1]', resolver, { allowPrivate: false });
    assert.ok(loop.kind === 'permanent');
    assert.equal(loop.status, '5.4.4');
    const allowed = await resolveMailHosts('[IPv6:::1]', resolver, { allowPrivate: true });
    assert.ok(allowed.kind === 'hosts');
    assert.deepEqual(allowed.hosts, [{ name: '[IPv6:::1]', preference: 0, addresses: ['::1'] }]);
    const publicLiteral = await resolveMailHosts('[192.0.2.70]', resolver, { allowPrivate: false });
    assert.ok(publicLiteral.kind === 'hosts');
    assert.deepEqual(publicLiteral.hosts[0]?.addresses, ['192.0.2.70']);
  });
});
