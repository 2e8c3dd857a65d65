import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { SmtpTestClient } from '../helpers/smtp-client.ts';
import {
  b64,
  hello,
  offered,
  plain,
  type SecurityNode,
  send,
  startSecurityNode,
  TEST_PASSWORD,
} from './auth-fixture.ts';

const ALL = ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER'];

/** Answers a CRAM-MD5 challenge as a client would (RFC 2195). */
async function cram(c: SmtpTestClient, user: string, password: string) {
  const challenge = await c.command('AUTH CRAM-MD5');
  assert.equal(challenge.code, 334);
  const text = Buffer.from(challenge.text, 'base64').toString('utf8');
  assert.match(text, /^<[^@>]+@mx\.example\.test>$/, 'an RFC 2195 msg-id style challenge');
  const digest = createHmac('md5', password).update(text).digest('hex');
  return c.command(b64(`${user} ${digest}`));
}

/**
 * Which SASL mechanisms a connector offers and accepts: CRAM-MD5 only where configured, and every
 * mechanism only inside TLS unless the connector allows it in the clear.
 */
describe('AUTH mechanisms', () => {
  let n: SecurityNode;
  before(async () => {
    n = await startSecurityNode(
      [
        {
          name: 'Submission',
          bindings: ['127.0.0.1:0'],
          permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
          auth: { mechanisms: ALL, requireTls: true, required: true },
          limits: { tarpitInterval: '300ms', maxLogonFailures: 2 },
        },
        {
          name: 'Cleartext',
          bindings: ['127.0.0.1:0'],
          permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
          auth: { mechanisms: ['CRAM-MD5'], requireTls: false, required: true },
          limits: { tarpitInterval: 0 },
        },
        {
          name: 'Defaults',
          bindings: ['127.0.0.1:0'],
          permissionGroups: { authenticatedUsers: ['submit'] },
          auth: { requireTls: false, required: true },
        },
      ],
      {
        top: { oauth: { issuer: 'https://idp.test', audience: 'ferrymail', jwksFile: 'jwks.json' } },
        files: { 'jwks.json': '{"keys":[]}' },
      },
    );
  });
  after(() => n.close());

  it('logs in with CRAM-MD5 and the message from that login is queued under the user', async () => {
    const { c } = await hello(n.port('Cleartext'));
    const ok = await cram(c, 'Alice@Example.test', TEST_PASSWORD);
    assert.equal(ok.code, 235);
    assert.equal(ok.text, '2.7.0 Authentication successful');
    // To an outside address: it waits in the Unreachable queue, where its origin can be read.
    const sent = await send(c, {
      from: 'alice@example.test',
      to: ['someone@elsewhere.test'],
      headers: 'From: alice@example.test\r\nSubject: cram\r\n',
    });
    assert.equal(sent.reply.code, 250, sent.reply.text);
    c.close();
    const queued = (await n.queued()).filter((m) => m.subject === 'cram');
    assert.deepEqual(
      queued.map((m) => m.authUser),
      ['alice@example.test'],
    );
  });

  it('refuses a wrong CRAM-MD5 digest, and a mailbox without a CRAM-MD5 secret even with its right password', async () => {
    const { c } = await hello(n.port('Cleartext'));
    const wrong = await cram(c, 'alice@example.test', 'not-the-password');
    assert.equal(wrong.code, 535);
    assert.equal(wrong.text, '5.7.8 Authentication credentials invalid');
    const noSecret = await cram(c, 'bob@example.test', TEST_PASSWORD);
    assert.equal(
      noSecret.code,
      535,
      'bob has a passwordHash only: scrypt cannot answer a CRAM-MD5 challenge',
    );
    assert.equal((await c.command('MAIL FROM:<alice@example.test>')).text, '5.7.0 Authentication required');
    c.close();
  });

  it('answers a malformed CRAM-MD5 response with 501, and cancels on "*"', async () => {
    const { c } = await hello(n.port('Cleartext'));
    await c.command('AUTH CRAM-MD5');
    assert.equal((await c.command(b64('no-digest'))).code, 501);
    await c.command('AUTH CRAM-MD5');
    assert.equal((await c.command('*')).code, 501);
    assert.equal(
      (await c.command('AUTH CRAM-MD5 aW5pdGlhbA==')).code,
      501,
      'CRAM-MD5 has no initial response',
    );
    c.close();
  });

  it('neither offers nor accepts CRAM-MD5 on a connector that does not list it (the default)', async () => {
    const { c, ehlo } = await hello(n.port('Defaults'));
    assert.deepEqual(offered(ehlo), ['PLAIN', 'LOGIN']);
    const r = await c.command('AUTH CRAM-MD5');
    assert.equal(r.code, 504);
    c.close();
  });

  it('offers no mechanism before STARTTLS on a connector that requires TLS, and refuses each with 538', async () => {
    const { c, ehlo } = await hello(n.port('Submission'));
    assert.deepEqual(offered(ehlo), []);
    for (const mechanism of ALL) {
      const r = await c.command(`AUTH ${mechanism}`);
      assert.equal(r.code, 538, `${mechanism} before TLS: ${r.code} ${r.text}`);
      assert.match(r.text, /^5\.7\.11 /);
    }
    assert.equal((await c.startTls()).code, 220);
    assert.deepEqual(offered(await c.command('EHLO client.test')), ALL);
    assert.equal((await cram(c, 'alice@example.test', TEST_PASSWORD)).code, 235);
    c.close();
  });

  it('tarpits a failed CRAM-MD5 login and disconnects at maxLogonFailures counted across mechanisms', async () => {
    const { c } = await hello(n.port('Submission'));
    await c.startTls();
    await c.command('EHLO client.test');
    const started = Date.now();
    assert.equal((await cram(c, 'alice@example.test', 'wrong')).code, 535);
    assert.ok(Date.now() - started >= 290, `answered after ${Date.now() - started} ms, before the tarpit`);
    assert.equal((await c.command(plain('alice@example.test', 'wrong'))).code, 535);
    assert.equal((await c.reply()).code, 421);
    await c.closed();
  });

  it('stores nothing from a session whose every login failed', async () => {
    const { c } = await hello(n.port('Cleartext'));
    await cram(c, 'alice@example.test', 'wrong');
    const sent = await send(c, {
      from: 'alice@example.test',
      to: ['bob@example.test'],
      headers: 'Subject: never\r\n',
    });
    assert.equal(sent.step, 'mail');
    assert.equal(sent.reply.code, 530);
    c.close();
    assert.deepEqual(await n.stored('never'), []);
  });
});
