import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { arHeader, authenticator, message, verify } from './email-auth-fixture.ts';

// SPF on receipt (RFC 7208): the MAIL FROM identity, and the HELO identity on its own, each
// with the result the domain's record gives for the client's address. A DNS failure is a
// temperror, never "none" or "fail".

let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    'pass.example': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    'fail.example': { TXT: ['v=spf1 ip4:198.51.100.1 -all'] },
    'softfail.example': { TXT: ['v=spf1 ip4:198.51.100.1 ~all'] },
    'neutral.example': { TXT: ['v=spf1 ?all'] },
    'nospf.example': { TXT: ['some other record'] },
    'include.example': { TXT: ['v=spf1 include:pass.example -all'] },
    'mx.example': { TXT: ['v=spf1 mx -all'], MX: [{ preference: 10, exchange: 'smtp.mx.example' }] },
    'smtp.mx.example': { A: ['192.0.2.10'] },
    'slow.example': { timeout: true },
    'servfail.example': { rcode: 'SERVFAIL' },
    'helo-pass.example': { TXT: ['v=spf1 ip4:192.0.2.10 -all'] },
    'helo-fail.example': { TXT: ['v=spf1 -all'] },
  });
});
after(() => dns.close());

const msg = message({ from: 'someone@pass.example' });

async function spfOf(sender: string, helo = 'unlisted.example') {
  const verdict = await verify(authenticator(dns), msg, { sender, helo });
  return verdict;
}

test('a client inside the MAIL FROM domain’s record passes SPF', async () => {
  const v = await spfOf('someone@pass.example');
  assert.equal(v.results.spf, 'pass');
  assert.match(arHeader(v), /spf=pass .*smtp\.mailfrom=someone@pass\.example/);
});

test('a client outside a -all record fails SPF', async () => {
  assert.equal((await spfOf('someone@fail.example')).results.spf, 'fail');
});

test('a client outside a ~all record softfails SPF', async () => {
  assert.equal((await spfOf('someone@softfail.example')).results.spf, 'softfail');
});

test('?all is neutral', async () => {
  assert.equal((await spfOf('someone@neutral.example')).results.spf, 'neutral');
});

test('a domain without an SPF record gives none, and so does one that does not exist', async () => {
  assert.equal((await spfOf('someone@nospf.example')).results.spf, 'none');
  assert.equal((await spfOf('someone@nowhere.example')).results.spf, 'none');
});

test('include: and mx mechanisms are followed through our resolver', async () => {
  assert.equal((await spfOf('someone@include.example')).results.spf, 'pass');
  assert.equal((await spfOf('someone@mx.example')).results.spf, 'pass');
});

test('a DNS timeout is temperror (not none), and the header says so', async () => {
  const v = await spfOf('someone@slow.example');
  assert.equal(v.results.spf, 'temperror');
  assert.match(arHeader(v), /spf=temperror/);
});

test('a SERVFAIL is temperror', async () => {
  assert.equal((await spfOf('someone@servfail.example')).results.spf, 'temperror');
});

test('the HELO identity is checked on its own and reported as smtp.helo', async () => {
  const passing = await spfOf('someone@fail.example', 'helo-pass.example');
  assert.equal(passing.results.spf, 'fail');
  assert.equal(passing.results.spfHelo, 'pass');
  assert.match(arHeader(passing), /spf=pass smtp\.helo=helo-pass\.example/);
  const failing = await spfOf('someone@pass.example', 'helo-fail.example');
  assert.equal(failing.results.spfHelo, 'fail');
});

test('for the null sender, the MAIL FROM check is the HELO check (postmaster@helo)', async () => {
  const v = await spfOf('', 'helo-pass.example');
  assert.equal(v.results.spf, 'pass');
  assert.equal(v.results.spfHelo, undefined, 'no second, identical check');
});

test('an address literal HELO is not checked as a domain', async () => {
  const v = await spfOf('someone@pass.example', '[192.0.2.10]');
  assert.equal(v.results.spf, 'pass');
  assert.equal(v.results.spfHelo, undefined);
});
