import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  TEST_PASSWORD,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

const PLAIN = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');

/**
 * STARTTLS command injection (CVE-2011-0411 and its many successors): whatever was sent in the
 * clear behind STARTTLS must never be executed, or answered, inside TLS; and nothing learnt
 * before TLS (HELO, a transaction, AUTH) may carry over into it (RFC 3207 §4.2).
 */
describe('STARTTLS injection', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Mx' }),
      // AUTH in the clear allowed, so the test can show that AUTH does not survive STARTTLS.
      connector({
        name: 'Submission',
        permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
        auth: { mechanisms: ['PLAIN'], requireTls: false, required: true },
      }),
      connector({ name: 'Implicit', tls: { mode: 'implicit', required: false } }),
    ]);
  });
  after(() => h.close());

  async function ehlo(name: string): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port(name));
    await c.greeting();
    assert.equal((await c.command('EHLO client.test')).code, 250);
    return c;
  }

  it('never answers or executes plaintext pipelined behind STARTTLS in the same write', async () => {
    const before = (await h.messages()).length;
    const c = await ehlo('Mx');
    c.write(
      'STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n',
    );
    const go = await c.reply();
    assert.equal(go.code, 220);
    await c.upgradeTls();
    // Time for replies to injected commands to arrive, if any were going to.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const first = await c.command('EHLO client.test');
    assert.match(
      first.lines[0] ?? '',
      /Hello client\.test/,
      'the first reply inside TLS answers an injected command',
    );
    const rcpt = await c.command('RCPT TO:<bob@example.test>');
    assert.equal(rcpt.code, 503, 'the injected MAIL FROM opened a transaction');
    assert.equal(rcpt.text, '5.5.1 Need MAIL before RCPT');
    assert.equal((await h.messages()).length, before, 'the injected message was stored');
    c.close();
  });

  it('forgets the EHLO and an open transaction once TLS is up', async () => {
    const c = await ehlo('Mx');
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
    assert.equal((await c.startTls()).code, 220);
    const mail = await c.command('MAIL FROM:<a@remote.test>');
    assert.equal(mail.code, 503, 'the EHLO from before TLS still counted');
    assert.equal(mail.text, '5.5.1 Send hello first');
    await c.command('EHLO client.test');
    const data = await c.command('DATA');
    assert.equal(data.code, 503, 'the transaction from before TLS survived');
    c.close();
  });

  it('forgets an AUTH done before STARTTLS', async () => {
    const c = await ehlo('Submission');
    assert.equal((await c.command(`AUTH PLAIN ${PLAIN}`)).code, 235);
    assert.equal((await c.startTls()).code, 220);
    const again = await c.command('EHLO client.test');
    assert.ok(
      again.lines.some((l) => l.startsWith('AUTH ')),
      'AUTH is offered again: the session is not authenticated',
    );
    const mail = await c.command('MAIL FROM:<alice@example.test>');
    assert.equal(mail.code, 530, 'the authentication from before TLS was kept');
    c.close();
  });

  it('refuses a second STARTTLS inside TLS with 503 5.5.1, after STARTTLS and on implicit TLS', async () => {
    const c = await ehlo('Mx');
    await c.startTls();
    await c.command('EHLO client.test');
    const second = await c.command('STARTTLS');
    assert.equal(second.code, 503);
    assert.match(second.text, /^5\.5\.1 /);
    assert.equal((await c.command('NOOP')).code, 250, 'the session goes on inside TLS');
    c.close();

    const i = await SmtpTestClient.connect(h.port('Implicit'), { tls: true });
    await i.greeting();
    await i.command('EHLO client.test');
    const r = await i.command('STARTTLS');
    assert.equal(r.code, 503);
    assert.match(r.text, /^5\.5\.1 /);
    i.close();
  });
});
