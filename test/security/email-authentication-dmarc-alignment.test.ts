import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { arHeader, authenticator, dkimKey, keyEntry, message, sign, verify } from './email-auth-fixture.ts';

// DMARC identifier alignment: relaxed means the same organizational domain, strict the same
// domain exactly (adkim=s / aspf=s). mailauth 7.1 follows RFC 9989 (DMARCbis): the organizational
// domain comes from a DNS Tree Walk over _dmarc records, not from the Public Suffix List, so a
// multi-label public suffix (co.uk) must still keep two registrations apart.

const key = dkimKey();
let dns: TestDnsServer;
const CLIENT = '192.0.2.10';

before(async () => {
  dns = await startDnsServer({
    '_dmarc.relaxed.example': { TXT: ['v=DMARC1; p=reject'] },
    's._domainkey.mail.relaxed.example': keyEntry(key),
    's._domainkey.relaxed.example': keyEntry(key),
    'bounces.relaxed.example': { TXT: [`v=spf1 ip4:${CLIENT} -all`] },

    '_dmarc.strict.example': { TXT: ['v=DMARC1; p=reject; adkim=s; aspf=s'] },
    's._domainkey.mail.strict.example': keyEntry(key),
    's._domainkey.strict.example': keyEntry(key),
    'bounces.strict.example': { TXT: [`v=spf1 ip4:${CLIENT} -all`] },
    'strict.example': { TXT: [`v=spf1 ip4:${CLIENT} -all`] },

    '_dmarc.example.co.uk': { TXT: ['v=DMARC1; p=reject'] },
    's._domainkey.other.co.uk': keyEntry(key),
    's._domainkey.mail.example.co.uk': keyEntry(key),
    'other.co.uk': { TXT: [`v=spf1 ip4:${CLIENT} -all`] },

    '_dmarc.psd.example': { TXT: ['v=DMARC1; p=none; psd=y'] },
    '_dmarc.a.psd.example': { TXT: ['v=DMARC1; p=reject'] },
    's._domainkey.b.psd.example': keyEntry(key),

    's._domainkey.unrelated.example': keyEntry(key),
    'unrelated.example': { TXT: [`v=spf1 ip4:${CLIENT} -all`] },
  });
});
after(() => dns.close());

async function dmarcOf(options: { from: string; d?: string; sender?: string }) {
  let msg = message({ from: options.from });
  if (options.d) msg = await sign(msg, options.d, 's', key);
  const verdict = await verify(authenticator(dns), msg, {
    remoteIp: CLIENT,
    sender: options.sender ?? 'bounce@nospf.example',
  });
  return verdict;
}

test('relaxed: DKIM d=mail.example.com aligns with From example.com (pass)', async () => {
  const v = await dmarcOf({ from: 'a@relaxed.example', d: 'mail.relaxed.example' });
  assert.equal(v.results.dkim, 'pass');
  assert.equal(v.results.dmarc, 'pass');
  assert.match(arHeader(v), /dmarc=pass/);
});

test('strict (adkim=s): DKIM d=mail.example.com does not align with From example.com (fail)', async () => {
  const v = await dmarcOf({ from: 'a@strict.example', d: 'mail.strict.example' });
  assert.equal(v.results.dkim, 'pass');
  assert.equal(v.results.dmarc, 'fail');
});

test('strict (adkim=s): DKIM d= equal to the From domain aligns (pass)', async () => {
  const v = await dmarcOf({ from: 'a@strict.example', d: 'strict.example' });
  assert.equal(v.results.dmarc, 'pass');
});

test('relaxed: SPF for a MAIL FROM subdomain aligns with the From domain (pass)', async () => {
  const v = await dmarcOf({ from: 'a@relaxed.example', sender: 'b@bounces.relaxed.example' });
  assert.equal(v.results.spf, 'pass');
  assert.equal(v.results.dkim, 'none');
  assert.equal(v.results.dmarc, 'pass');
});

test('strict (aspf=s): SPF for a MAIL FROM subdomain does not align (fail); the exact domain does', async () => {
  const sub = await dmarcOf({ from: 'a@strict.example', sender: 'b@bounces.strict.example' });
  assert.equal(sub.results.spf, 'pass');
  assert.equal(sub.results.dmarc, 'fail');
  const exact = await dmarcOf({ from: 'a@strict.example', sender: 'b@strict.example' });
  assert.equal(exact.results.dmarc, 'pass');
});

test('multi-label public suffix: example.co.uk and other.co.uk do NOT align, by DKIM or by SPF', async () => {
  const byDkim = await dmarcOf({ from: 'a@example.co.uk', d: 'other.co.uk' });
  assert.equal(byDkim.results.dkim, 'pass');
  assert.equal(byDkim.results.dmarc, 'fail');
  const bySpf = await dmarcOf({ from: 'a@example.co.uk', sender: 'b@other.co.uk' });
  assert.equal(bySpf.results.spf, 'pass');
  assert.equal(bySpf.results.dmarc, 'fail');
});

test('multi-label public suffix: mail.example.co.uk does align with example.co.uk (relaxed)', async () => {
  const v = await dmarcOf({ from: 'a@example.co.uk', d: 'mail.example.co.uk' });
  assert.equal(v.results.dmarc, 'pass');
});

test('a public suffix domain that says psd=y keeps its registrations apart', async () => {
  const v = await dmarcOf({ from: 'x@a.psd.example', d: 'b.psd.example' });
  assert.equal(v.results.dkim, 'pass');
  assert.equal(v.results.dmarc, 'fail');
});

test('an unrelated passing DKIM signature and SPF pass do not make DMARC pass', async () => {
  const v = await dmarcOf({
    from: 'a@relaxed.example',
    d: 'unrelated.example',
    sender: 'b@unrelated.example',
  });
  assert.equal(v.results.spf, 'pass');
  assert.equal(v.results.dkim, 'pass');
  assert.equal(v.results.dmarc, 'fail');
  assert.equal(v.results.dmarcPolicy, 'reject');
  assert.equal(v.results.fromDomain, 'relaxed.example');
});

test('a From domain without a DMARC record gives dmarc=none', async () => {
  const v = await dmarcOf({ from: 'a@unrelated.example', d: 'unrelated.example' });
  assert.equal(v.results.dmarc, 'none');
  assert.equal(v.results.dmarcPolicy, undefined);
});
