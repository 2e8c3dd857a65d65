import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mailauthResolver } from '../../src/agents/email-auth/dns-adapter.ts';
import { createResolver } from '../../src/routing/dns/resolver.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';

// mailauth expects dns.promises.resolve: records, or an error whose code says what happened.
// Our resolver returns values instead; the adapter must give every outcome its right code, or
// SPF would take a timeout for "no record" (none instead of temperror) and DKIM a missing key
// for a DNS failure.

let dns: TestDnsServer;
let resolve: (name: string, type: string) => Promise<unknown[]>;

before(async () => {
  dns = await startDnsServer({
    'txt.example': { TXT: [['v=spf1 ', 'ip4:192.0.2.1 -all'], 'other'] },
    'mx.example': {
      MX: [{ preference: 10, exchange: 'mail.mx.example' }],
      A: ['192.0.2.1'],
      AAAA: ['2001:db8::1'],
    },
    'empty.example': { A: ['192.0.2.2'] },
    'servfail.example': { rcode: 'SERVFAIL' },
    'refused.example': { rcode: 'REFUSED' },
    'slow.example': { timeout: true },
  });
  resolve = mailauthResolver(createResolver({ servers: [dns.server], timeout: 200, tries: 1 }));
});
after(() => dns.close());

async function codeOf(name: string, type: string): Promise<string> {
  try {
    await resolve(name, type);
  } catch (error) {
    return (error as { code: string }).code;
  }
  return 'no error';
}

test('TXT records come back as lists of character-strings, as node resolveTxt gives them', async () => {
  assert.deepEqual(await resolve('txt.example', 'TXT'), [['v=spf1 ', 'ip4:192.0.2.1 -all'], ['other']]);
});

test('MX records come back as { exchange, priority }', async () => {
  assert.deepEqual(await resolve('mx.example', 'MX'), [{ exchange: 'mail.mx.example', priority: 10 }]);
});

test('A and AAAA records come back as address strings', async () => {
  assert.deepEqual(await resolve('mx.example', 'A'), ['192.0.2.1']);
  assert.deepEqual(await resolve('mx.example', 'AAAA'), ['2001:db8::1']);
});

test('a name that does not exist throws ENOTFOUND', async () => {
  assert.equal(await codeOf('missing.example', 'TXT'), 'ENOTFOUND');
});

test('a name without records of the type throws ENODATA', async () => {
  assert.equal(await codeOf('empty.example', 'TXT'), 'ENODATA');
});

test('a query that times out throws ETIMEOUT (temporary, never "no record")', async () => {
  assert.equal(await codeOf('slow.example', 'TXT'), 'ETIMEOUT');
});

test('SERVFAIL throws ESERVFAIL and REFUSED throws EREFUSED (temporary)', async () => {
  assert.equal(await codeOf('servfail.example', 'TXT'), 'ESERVFAIL');
  assert.equal(await codeOf('refused.example', 'TXT'), 'EREFUSED');
});

test('types our resolver does not ask (PTR) throw ENODATA without a query', async () => {
  const before = dns.queries.length;
  assert.equal(await codeOf('1.2.0.192.in-addr.arpa', 'PTR'), 'ENODATA');
  assert.equal(dns.queries.length, before);
});

test('a trailing dot and a lower-case type are accepted', async () => {
  assert.deepEqual(await resolve('mx.example.', 'a'), ['192.0.2.1']);
});
