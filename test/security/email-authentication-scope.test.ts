import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { receiveConnectorSchema } from '../../src/config/schema.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { authenticator, CONNECTOR, message, subject, verify } from './email-auth-fixture.ts';

// Which messages are checked: by default those of connectors where anonymous senders submit
// (mail from the internet); never those of authenticated sessions, bypassAntiSpam sessions or
// trusted ranges (as configured). A checked message gets exactly one Authentication-Results.

let dns: TestDnsServer;
before(async () => {
  dns = await startDnsServer({});
});
after(() => dns.close());

const SUBMISSION = receiveConnectorSchema.parse({
  name: 'Client',
  bindings: ['127.0.0.1:0'],
  permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
});

test('by default, a connector where anonymous senders submit is checked and a submission one is not', () => {
  const auth = authenticator(dns);
  assert.equal(auth.skipReason(subject({ connector: CONNECTOR })), undefined);
  assert.equal(auth.skipReason(subject({ connector: SUBMISSION })), 'connector');
  assert.equal(auth.begin(subject({ connector: SUBMISSION })), undefined);
});

test('connectors: lists exactly the connectors checked', () => {
  const auth = authenticator(dns, { connectors: ['Client'] });
  assert.equal(auth.skipReason(subject({ connector: CONNECTOR })), 'connector');
  assert.equal(auth.skipReason(subject({ connector: SUBMISSION })), undefined);
});

test('an authenticated session is not checked, unless skipAuthenticated is false', () => {
  assert.equal(authenticator(dns).skipReason(subject({ authUser: 'alice@example.test' })), 'authenticated');
  const all = authenticator(dns, { skipAuthenticated: false });
  assert.equal(all.skipReason(subject({ authUser: 'alice@example.test' })), undefined);
});

test('a session with the bypassAntiSpam permission is not checked', () => {
  const who = subject({ permissions: new Set(['submit', 'bypassAntiSpam']) });
  assert.equal(authenticator(dns).skipReason(who), 'bypassAntiSpam');
});

test('clients in trustedRanges are not checked, IPv4-mapped addresses included', () => {
  const auth = authenticator(dns, { trustedRanges: ['10.0.0.0/8', '2001:db8::/32'] });
  assert.equal(auth.skipReason(subject({ remoteIp: '10.1.2.3' })), 'trusted');
  assert.equal(auth.skipReason(subject({ remoteIp: '::ffff:10.1.2.3' })), 'trusted');
  assert.equal(auth.skipReason(subject({ remoteIp: '2001:db8::5' })), 'trusted');
  assert.equal(auth.skipReason(subject({ remoteIp: '192.0.2.10' })), undefined);
});

test('enabled: false checks nothing', () => {
  assert.equal(authenticator(dns, { enabled: false }).skipReason(subject()), 'disabled');
});

test('a trustedRanges entry that is not a range is a config error', () => {
  assert.throws(() => authenticator(dns, { trustedRanges: ['not-a-range'] }));
});

test('a verdict carries exactly one Authentication-Results header, named by our authserv-id', async () => {
  const forged = [
    'Authentication-Results: mx.example.test; dmarc=pass',
    'Authentication-Results: other.example; spf=pass',
  ];
  const v = await verify(authenticator(dns), message({ from: 'a@nowhere.example', extraHeaders: forged }));
  const ar = v.headers.filter((h) => /^authentication-results:/i.test(h));
  assert.equal(ar.length, 1);
  assert.match(ar[0]!, /^Authentication-Results: mx\.example\.test;\r\n\t/);
  assert.match(ar[0]!, /spf=none/);
});
