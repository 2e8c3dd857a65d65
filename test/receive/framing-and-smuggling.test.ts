import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  withoutTrace,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * Strict framing: commands end in CRLF only, data ends only on CRLF.CRLF, and no published SMTP
 * smuggling variant can make the node see a second, hidden transaction.
 */
const SMUGGLING_ENDINGS = [
  '\n.\n',
  '\n.\r\n',
  '\r.\r',
  '\r\n.\n',
  '\n.\r',
  '\r.\n',
  '\r.\r\n',
  '\r\n\x00.\r\n',
  '\r\n.\r\r\n',
  '\r\r\n.\r\r\n',
  '\r\n.\r',
  '\n\n.\n\n',
];

function smuggle(ending: string): string {
  return (
    `Subject: outer\r\n\r\nouter body${ending}` +
    'MAIL FROM:<admin@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nhidden\r\n.\r\n'
  );
}

describe('framing and SMTP smuggling', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Reject' }),
      connector({ name: 'Normalize', bareLineEndings: 'normalize' }),
    ]);
  });
  after(() => h.close());

  async function openData(name: string): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port(name));
    await c.greeting();
    await c.command('EHLO client.test');
    await c.command('MAIL FROM:<outer@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    assert.equal((await c.command('DATA')).code, 354);
    return c;
  }

  for (const mode of ['Reject', 'Normalize'] as const) {
    for (const ending of SMUGGLING_ENDINGS) {
      it(`${mode}: ${JSON.stringify(ending)} never ends the data, so the hidden transaction is never run`, async () => {
        const before = new Set((await h.messages()).map((m) => m.id));
        const c = await openData(mode);
        // The only real end of data is the hidden message's own CRLF.CRLF: everything before it,
        // the "hidden transaction" included, is content of the outer message.
        c.write(smuggle(ending));
        const r = await c.reply();
        const bare = /[\r\n]/.test(ending.replace(/\r\n/g, ''));
        if (mode === 'Reject' && bare) {
          assert.equal(r.code, 554, r.text);
          assert.equal(r.text, '5.6.11 Message contains bare CR or LF; rejected');
        } else {
          assert.equal(r.code, 250, r.text);
        }
        // The next reply must be to our NOOP: no reply to a hidden MAIL, RCPT or DATA ever comes.
        assert.equal((await c.command('NOOP')).text, '2.0.0 Ok');
        c.close();
        const added = (await h.messages()).filter((m) => !before.has(m.id));
        assert.ok(added.length <= 1, `${added.length} messages stored from one transaction`);
        for (const m of added) {
          assert.equal(m.sender, 'outer@remote.test', 'the hidden transaction was stored as a message');
          assert.deepEqual(
            m.recipients.map((x) => x.address),
            ['bob@example.test'],
          );
        }
        if (mode === 'Reject' && bare)
          assert.equal(added.length, 0, 'a message with bare line endings was kept');
      });
    }
  }

  it('normalize mode stores CRLF line endings only', async () => {
    const c = await openData('Normalize');
    const r = await c.command('Subject: mixed\n\nline one\rline two\nline three\r\n.');
    assert.equal(r.code, 250);
    const body = withoutTrace(await h.body(/queued as (\S+)/.exec(r.text)![1]!));
    assert.equal(body, 'Subject: mixed\r\n\r\nline one\r\nline two\r\nline three\r\n');
    c.close();
  });

  it('refuses a command ending in a bare LF instead of waiting for a CRLF', async () => {
    const c = await SmtpTestClient.connect(h.port('Reject'));
    await c.greeting();
    c.write('EHLO client.test\n');
    const r = await c.reply();
    assert.equal(r.code, 500);
    assert.match(r.text, /^5\.5\.2 Bare LF/);
    c.close();
  });

  it('survives 100,000 garbage commands in one write and keeps serving other clients', async () => {
    const c = await SmtpTestClient.connect(h.port('Reject'));
    await c.greeting();
    const rssBefore = process.memoryUsage().rss;
    c.write('GARBAGE COMMAND\r\n'.repeat(100_000));
    await c.closed();
    const other = await SmtpTestClient.connect(h.port('Reject'));
    assert.equal((await other.greeting()).code, 220);
    assert.equal((await other.command('EHLO other.test')).code, 250);
    other.close();
    assert.ok(
      process.memoryUsage().rss - rssBefore < 128 * 1024 * 1024,
      'memory grew without bound (client and server share this process)',
    );
  });

  it('answers 100,000 pipelined NOOPs in order with bounded memory', async () => {
    const c = await SmtpTestClient.connect(h.port('Reject'));
    await c.greeting();
    const rssBefore = process.memoryUsage().rss;
    c.write('NOOP\r\n'.repeat(100_000));
    for (let i = 0; i < 100_000; i++) assert.equal((await c.reply()).code, 250);
    assert.equal((await c.command('QUIT')).code, 221);
    assert.ok(
      process.memoryUsage().rss - rssBefore < 128 * 1024 * 1024,
      'memory grew without bound (client and server share this process)',
    );
  });

  it('refuses an endless line without CRLF once it passes the command limit, and drops it', async () => {
    const c = await SmtpTestClient.connect(h.port('Reject'));
    await c.greeting();
    for (let i = 0; i < 64; i++) c.write('A'.repeat(64 * 1024));
    const r = await c.reply();
    assert.equal(r.code, 500);
    c.write('\r\nNOOP\r\n');
    assert.equal((await c.reply()).code, 250);
    c.close();
  });
});
