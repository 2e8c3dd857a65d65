import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  TEST_PASSWORD,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * What the session hands to the queue: the body exactly as received with our Received header in
 * front of it, and an envelope with the sender, recipients, origin and a few header values.
 */
describe('the trace header and the envelope', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness(
      [
        connector({ name: 'Mx', tls: { mode: 'none', required: false } }),
        connector({
          name: 'Submit',
          tls: { mode: 'none', required: false },
          permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
          auth: { mechanisms: ['PLAIN'], requireTls: false, required: true },
        }),
      ],
      // Thursday 1 January 2026, 00:00:00 UTC.
      { clock: new ManualClock() },
    );
  });
  after(() => h.close());

  async function send(port: number, commands: string[], data: string) {
    const c = await SmtpTestClient.connect(port);
    await c.greeting();
    for (const line of commands) assert.ok((await c.command(line)).code < 400, line);
    assert.equal((await c.command('DATA')).code, 354);
    const done = await c.command(`${data}.`);
    assert.equal(done.code, 250, done.text);
    c.close();
    const id = /^2\.0\.0 Ok: queued as (\S+)$/.exec(done.text)![1]!;
    const message = (await h.messages()).find((m) => m.id === id);
    assert.ok(message, 'the sink got no submission for the queue id in the reply');
    return { id, message, body: await h.body(id) };
  }

  it('prepends Received with the HELO name, client IP, queue id, the one recipient and the date, folded', async () => {
    const data = 'Subject: hi\r\n\r\nbody line\r\n';
    const { id, body } = await send(
      h.port('Mx'),
      ['EHLO client.test', 'MAIL FROM:<a@remote.test>', 'RCPT TO:<bob@example.test>'],
      data,
    );
    assert.equal(
      body,
      'Received: from client.test ([127.0.0.1])\r\n' +
        '\tby mx.example.test (Ferrymail) with ESMTP\r\n' +
        `\tid ${id}\r\n` +
        '\tfor <bob@example.test>;\r\n' +
        '\tThu, 1 Jan 2026 00:00:00 +0000\r\n' +
        data,
    );
    for (const line of body.split('\r\n')) assert.ok(line.length <= 78, `unfolded line: ${line}`);
  });

  it('names no recipient for several, says SMTP after HELO and ESMTPA after AUTH', async () => {
    const two = await send(
      h.port('Mx'),
      [
        'HELO old.test',
        'MAIL FROM:<a@remote.test>',
        'RCPT TO:<bob@example.test>',
        'RCPT TO:<alice@example.test>',
      ],
      'x\r\n',
    );
    assert.match(
      two.body,
      /^Received: from old\.test \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(Ferrymail\) with SMTP\r\n/,
    );
    assert.match(two.body, new RegExp(`\\tid ${two.id};\\r\\n\\tThu, 1 Jan 2026`));
    assert.doesNotMatch(two.body, /\tfor </);

    const token = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');
    const authed = await send(
      h.port('Submit'),
      [
        'EHLO laptop.test',
        `AUTH PLAIN ${token}`,
        'MAIL FROM:<alice@example.test>',
        'RCPT TO:<x@elsewhere.test>',
      ],
      'x\r\n',
    );
    assert.match(authed.body, /with ESMTPA\r\n/);
    assert.deepEqual(authed.message.origin, {
      connector: 'Submit',
      clientIp: '127.0.0.1',
      clientHelo: 'laptop.test',
      tls: false,
      authUser: 'alice@example.test',
      serverIp: '127.0.0.1',
    });
  });

  it('strips control characters a client put in its HELO name', async () => {
    const { body } = await send(
      h.port('Mx'),
      ['HELO evil\x01.test', 'MAIL FROM:<a@remote.test>', 'RCPT TO:<bob@example.test>'],
      'x\r\n',
    );
    assert.match(body, /^Received: from evil\?\.test /);
  });

  it('captures Message-ID and the unfolded Subject from the header section only', async () => {
    const { message } = await send(
      h.port('Mx'),
      ['EHLO client.test', 'MAIL FROM:<> BODY=8BITMIME', 'RCPT TO:<bob@example.test>'],
      'From: a@remote.test\r\nSubject: a long\r\n\tfolded  subject\r\nMessage-ID: <abc@remote.test>\r\n' +
        '\r\nSubject: not a header\r\nMessage-ID: <body@remote.test>\r\n',
    );
    assert.equal(message.subject, 'a long folded  subject');
    assert.equal(message.messageId, '<abc@remote.test>');
    assert.equal(message.sender, '');
    assert.equal(message.bodyType, '8BITMIME');
    assert.equal(message.smtpUtf8, false);
  });

  it('leaves Message-ID and Subject out when the message has none', async () => {
    const { message } = await send(
      h.port('Mx'),
      ['EHLO client.test', 'MAIL FROM:<a@remote.test>', 'RCPT TO:<bob@example.test>'],
      'X-Only: header\r\n\r\nbody\r\n',
    );
    assert.equal('subject' in message, false);
    assert.equal('messageId' in message, false);
  });

  it('keeps only a bounded part of a huge Subject', async () => {
    const { message } = await send(
      h.port('Mx'),
      ['EHLO client.test', 'MAIL FROM:<a@remote.test>', 'RCPT TO:<bob@example.test>'],
      `Subject: ${'s'.repeat(20_000)}\r\n\r\nbody\r\n`,
    );
    assert.ok(message.subject!.length <= 1000, `subject of ${message.subject!.length} characters`);
    assert.ok(message.subject!.startsWith('sss'));
  });
});
