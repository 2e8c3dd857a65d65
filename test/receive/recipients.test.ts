import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  TEST_PASSWORD,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** Recipient resolution at RCPT: unknown users, relay control, and what the envelope carries. */
describe('recipients at RCPT', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Internet' }),
      connector({
        name: 'Submission',
        permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
        auth: { mechanisms: ['PLAIN', 'LOGIN'], requireTls: false, required: true },
      }),
      connector({
        name: 'TrustedRelay',
        remoteRanges: ['127.0.0.0/8'],
        permissionGroups: { anonymous: ['submit', 'relay'] },
      }),
    ]);
  });
  after(() => h.close());

  async function transaction(port: number, login = false): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(port);
    await c.greeting();
    await c.command('EHLO client.test');
    if (login) {
      const token = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');
      assert.equal((await c.command(`AUTH PLAIN ${token}`)).code, 235);
    }
    // A logged-in user sends as itself (send-as is enforced where AUTH is required).
    const sender = login ? 'alice@example.test' : 'a@remote.test';
    assert.equal((await c.command(`MAIL FROM:<${sender}>`)).code, 250);
    return c;
  }

  async function queuedRecipients(c: SmtpTestClient) {
    await c.command('DATA');
    const id = /queued as (\S+)/.exec((await c.command('x\r\n.')).text)![1]!;
    c.close();
    return (await h.messages()).find((m) => m.id === id)!.recipients;
  }

  it('rejects an unknown user of an authoritative domain with 550 5.1.1', async () => {
    const c = await transaction(h.port('Internet'));
    const r = await c.command('RCPT TO:<nobody@example.test>');
    assert.equal(r.code, 550);
    assert.match(r.text, /^5\.1\.1 <nobody@example\.test>: Recipient address rejected: User unknown/);
    c.close();
  });

  it('refuses to relay for an anonymous sender with 550 5.7.1', async () => {
    const c = await transaction(h.port('Internet'));
    const r = await c.command('RCPT TO:<someone@elsewhere.test>');
    assert.equal(r.code, 550);
    assert.equal(r.text, '5.7.1 Unable to relay');
    c.close();
  });

  it('relays for an authenticated user on a connector that grants relay', async () => {
    const c = await transaction(h.port('Submission'), true);
    assert.equal((await c.command('RCPT TO:<someone@elsewhere.test>')).code, 250);
    const recipients = await queuedRecipients(c);
    assert.deepEqual(
      recipients.map((r) => [r.address, r.resolvesTo]),
      [['someone@elsewhere.test', [{ address: 'someone@elsewhere.test', local: false }]]],
    );
  });

  it('relays for a trusted remote range that grants anonymous relay', async () => {
    const c = await transaction(h.port('TrustedRelay'));
    assert.equal((await c.command('RCPT TO:<someone@elsewhere.test>')).code, 250);
    c.close();
  });

  it('keeps each address as the client gave it (domain lower-cased) with what the directory resolved', async () => {
    const c = await transaction(h.port('Internet'));
    assert.equal((await c.command('RCPT TO:<Postmaster@Example.TEST>')).code, 250);
    assert.equal((await c.command('RCPT TO:<team@example.test> NOTIFY=FAILURE')).code, 250);
    const recipients = await queuedRecipients(c);
    assert.deepEqual(recipients, [
      { address: 'Postmaster@example.test', resolvesTo: [{ address: 'alice@example.test', local: true }] },
      {
        address: 'team@example.test',
        notify: ['FAILURE'],
        resolvesTo: [
          { address: 'alice@example.test', local: true },
          { address: 'bob@example.test', local: true },
        ],
      },
    ]);
  });

  it('accepts an unknown address in an internal-relay domain as not local', async () => {
    const c = await transaction(h.port('Internet'));
    assert.equal((await c.command('RCPT TO:<anyone@relay.example.test>')).code, 250);
    const recipients = await queuedRecipients(c);
    assert.deepEqual(recipients[0]?.resolvesTo, [{ address: 'anyone@relay.example.test', local: false }]);
  });

  it('accepts the bare <postmaster> address (RFC 5321 §4.5.1)', async () => {
    const c = await transaction(h.port('Internet'));
    assert.equal((await c.command('RCPT TO:<postmaster>')).code, 250);
    const recipients = await queuedRecipients(c);
    assert.deepEqual(
      recipients.map((r) => [r.address, r.resolvesTo[0]?.address]),
      [['postmaster@example.test', 'alice@example.test']],
    );
  });
});
