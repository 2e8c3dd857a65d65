import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import {
  arHeader,
  authenticator,
  dkimKey,
  keyEntry,
  message,
  seal,
  sign,
  verify,
} from './email-auth-fixture.ts';

// ARC on receipt (RFC 8617): a chain of seals added by forwarders is verified and reported as
// arc=pass, or arc=fail when a seal or the sealed message no longer verifies.

const author = dkimKey();
const forwarder = dkimKey();
let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    's._domainkey.author.example': keyEntry(author),
    'arc._domainkey.forwarder.example': keyEntry(forwarder),
    'arc._domainkey.second.example': keyEntry(forwarder),
  });
});
after(() => dns.close());

async function sealed(): Promise<Buffer> {
  const signed = await sign(
    message({ from: 'a@author.example', body: 'Forwarded body.' }),
    'author.example',
    's',
    author,
  );
  return seal(
    signed,
    'forwarder.example',
    'arc',
    forwarder,
    'none',
    'forwarder.example; dkim=pass header.d=author.example',
  );
}

test('a message sealed by a forwarder verifies: arc=pass', async () => {
  const v = await verify(authenticator(dns), await sealed());
  assert.equal(v.results.arc, 'pass');
  assert.match(arHeader(v), /arc=pass/);
});

test('a chain of two seals verifies: arc=pass', async () => {
  const twice = await seal(
    await sealed(),
    'second.example',
    'arc',
    forwarder,
    'pass',
    'second.example; arc=pass',
  );
  const v = await verify(authenticator(dns), twice);
  assert.equal(v.results.arc, 'pass');
});

test('a message changed after it was sealed fails: arc=fail', async () => {
  const broken = Buffer.from((await sealed()).toString().replace('Forwarded body.', 'Changed body.'));
  const v = await verify(authenticator(dns), broken);
  assert.equal(v.results.arc, 'fail');
});

test('a seal whose signature was tampered with fails: arc=fail', async () => {
  const text = (await sealed()).toString();
  const tampered = text.replace(
    /(ARC-Seal:[\s\S]*?b=)([A-Za-z0-9+/])/,
    (_m, head: string, c: string) => head + (c === 'A' ? 'B' : 'A'),
  );
  assert.notEqual(tampered, text);
  const v = await verify(authenticator(dns), Buffer.from(tampered));
  assert.equal(v.results.arc, 'fail');
});

test('a message without ARC headers has arc=none', async () => {
  const v = await verify(authenticator(dns), message({ from: 'a@author.example' }));
  assert.equal(v.results.arc, 'none');
});
