import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { arHeader, authenticator, dkimKey, keyEntry, message, sign, verify } from './email-auth-fixture.ts';

// DKIM on receipt (RFC 6376): every signature is verified against its key in DNS and each one
// is reported; the message's dkim result is pass when any signature passes.

const key = dkimKey();
const other = dkimKey();
let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    's1._domainkey.signer.example': keyEntry(key),
    's2._domainkey.third.example': keyEntry(other),
    'slow._domainkey.signer.example': { timeout: true },
  });
});
after(() => dns.close());

const original = message({ from: 'a@signer.example', body: 'The body as it was signed.' });

test('an intact signed message passes DKIM, and the header names the signing domain and selector', async () => {
  const v = await verify(authenticator(dns), await sign(original, 'signer.example', 's1', key));
  assert.equal(v.results.dkim, 'pass');
  assert.match(arHeader(v), /dkim=pass header\.i=@signer\.example header\.s=s1/);
});

test('a message whose body was altered after signing fails DKIM', async () => {
  const signed = (await sign(original, 'signer.example', 's1', key)).toString();
  const altered = Buffer.from(signed.replace('as it was signed', 'as it was changed'));
  const v = await verify(authenticator(dns), altered);
  assert.equal(v.results.dkim, 'fail');
  assert.match(arHeader(v), /dkim=fail/);
});

test('a signature made with another key than the one published fails DKIM', async () => {
  const v = await verify(authenticator(dns), await sign(original, 'signer.example', 's1', other));
  assert.equal(v.results.dkim, 'fail');
});

test('an unsigned message has dkim=none', async () => {
  const v = await verify(authenticator(dns), original);
  assert.equal(v.results.dkim, 'none');
  assert.match(arHeader(v), /dkim=none/);
});

test('every signature is verified and reported; one passing one makes the message pass', async () => {
  const once = await sign(original, 'third.example', 's2', other);
  const broken = await sign(original, 'signer.example', 's1', other); // wrong key for s1
  const twice = Buffer.concat([broken.subarray(0, broken.length - original.length), once]);
  const v = await verify(authenticator(dns), twice);
  assert.equal(v.results.dkim, 'pass');
  const header = arHeader(v);
  assert.match(header, /dkim=pass header\.i=@third\.example/);
  assert.match(header, /dkim=fail[^;]* header\.i=@signer\.example/);
});

test('a key lookup that times out is temperror, not fail', async () => {
  const v = await verify(authenticator(dns), await sign(original, 'signer.example', 'slow', key));
  assert.equal(v.results.dkim, 'temperror');
});
