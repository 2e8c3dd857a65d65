import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient, type TestReply } from '../helpers/smtp-client.ts';

const SYNC_ERROR = /^5\.5\.0 .*SMTP protocol synchronization/;

/**
 * Clients that do not wait for their turn (spam bots, ratware): talking before the greeting, or
 * sending commands past one whose reply they must wait for (RFC 2920 §3.1), or pipelining
 * without PIPELINING (no EHLO). Postfix's pre-greet test and smtpd_forbid_unauth_pipelining:
 * the client gets 554 5.5.0, the connection is dropped, and nothing it sent is stored.
 */
describe('pipelining abuse', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Default' }),
      connector({ name: 'Delayed', limits: { greetDelay: 400 } }),
      connector({ name: 'Lenient', forbidUnauthPipelining: false }),
    ]);
  });
  after(() => h.close());

  /** Every reply until the server closes the connection. */
  async function repliesUntilClosed(c: SmtpTestClient): Promise<TestReply[]> {
    const out: TestReply[] = [];
    for (;;) {
      try {
        out.push(await c.reply(5000));
      } catch {
        break;
      }
    }
    await c.closed();
    return out;
  }

  async function storedCount(): Promise<number> {
    return (await h.messages()).length;
  }

  it('drops a client that talks before the delayed greeting, without greeting it', async () => {
    const before = await storedCount();
    const c = await SmtpTestClient.connect(h.port('Delayed'));
    c.write('EHLO bot.test\r\nMAIL FROM:<spam@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n');
    const replies = await repliesUntilClosed(c);
    assert.equal(replies.length, 1, `one reply, then the connection closes: ${JSON.stringify(replies)}`);
    assert.equal(replies[0]!.code, 554, 'the 220 greeting must not be sent to a pre-greet talker');
    assert.match(replies[0]!.text, SYNC_ERROR);
    assert.equal(await storedCount(), before, 'nothing stored');
  });

  it('greets a client that waits for the delayed greeting, and serves it', async () => {
    const started = Date.now();
    const c = await SmtpTestClient.connect(h.port('Delayed'));
    assert.equal((await c.greeting()).code, 220);
    assert.ok(Date.now() - started >= 350, 'the greeting was held for greetDelay');
    assert.equal((await c.command('EHLO client.test')).code, 250);
    c.close();
  });

  it('drops an EHLO client that sends MAIL before the EHLO reply', async () => {
    const before = await storedCount();
    const c = await SmtpTestClient.connect(h.port('Default'));
    await c.greeting();
    c.write('EHLO bot.test\r\nMAIL FROM:<spam@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n');
    const replies = await repliesUntilClosed(c);
    assert.deepEqual(
      replies.map((r) => r.code),
      [554],
      'the EHLO, MAIL, RCPT and DATA behind it are not answered',
    );
    assert.match(replies[0]!.text, SYNC_ERROR);
    assert.equal(await storedCount(), before);
  });

  it('drops a client that sends the message content behind DATA before the 354', async () => {
    const before = await storedCount();
    const c = await SmtpTestClient.connect(h.port('Default'));
    await c.greeting();
    await c.command('EHLO bot.test');
    c.write(
      'MAIL FROM:<spam@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: spam\r\n\r\nbuy now\r\n.\r\nQUIT\r\n',
    );
    const replies = await repliesUntilClosed(c);
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250, 554],
      'MAIL and RCPT answered, DATA refused, no 354 and no 250 for the content',
    );
    assert.match(replies[2]!.text, SYNC_ERROR);
    assert.equal(await storedCount(), before, 'the content sent before 354 was not stored');
  });

  it('drops a HELO client (no PIPELINING offered) that pipelines its transaction', async () => {
    const before = await storedCount();
    const c = await SmtpTestClient.connect(h.port('Default'));
    await c.greeting();
    assert.equal((await c.command('HELO bot.test')).code, 250);
    c.write('MAIL FROM:<spam@remote.test>\r\nRCPT TO:<bob@example.test>\r\n');
    const replies = await repliesUntilClosed(c);
    assert.deepEqual(
      replies.map((r) => r.code),
      [554],
      'MAIL is not executed when RCPT came with it',
    );
    assert.match(replies[0]!.text, SYNC_ERROR);
    assert.equal(await storedCount(), before);
  });

  it('drops a client that pipelines commands behind NOOP or VRFY', async () => {
    for (const verb of ['NOOP', 'VRFY bob']) {
      const c = await SmtpTestClient.connect(h.port('Default'));
      await c.greeting();
      await c.command('EHLO bot.test');
      c.write(`${verb}\r\nMAIL FROM:<spam@remote.test>\r\n`);
      const replies = await repliesUntilClosed(c);
      assert.deepEqual(
        replies.map((r) => r.code),
        [554],
        `${verb} followed by MAIL`,
      );
    }
  });

  it('serves a legitimate pipelining client: MAIL, RCPT, DATA in one write, content after 354, dot and QUIT together', async () => {
    const before = await storedCount();
    const c = await SmtpTestClient.connect(h.port('Default'));
    await c.greeting();
    await c.command('EHLO client.test');
    c.write(
      'RSET\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n',
    );
    assert.deepEqual(
      [await c.reply(), await c.reply(), await c.reply(), await c.reply(), await c.reply()].map(
        (r) => r.code,
      ),
      [250, 250, 250, 250, 354],
    );
    c.write('Subject: fine\r\n\r\nhello\r\n.\r\nQUIT\r\n');
    assert.match((await c.reply()).text, /queued as/);
    assert.equal((await c.reply()).code, 221);
    assert.equal(await storedCount(), before + 1);
  });

  it('lets a connector with forbidUnauthPipelining: false serve a HELO client that pipelines', async () => {
    const c = await SmtpTestClient.connect(h.port('Lenient'));
    await c.greeting();
    c.write('HELO old.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nNOOP\r\nQUIT\r\n');
    const codes = (await repliesUntilClosed(c)).map((r) => r.code);
    assert.deepEqual(codes, [250, 250, 250, 250, 221]);
  });
});
