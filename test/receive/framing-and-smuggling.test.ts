import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  withoutTrace,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { hasBareLineEnding, SMUGGLING_ENDINGS, smuggle } from '../security/smuggling-endings.ts';

/**
 * Strict framing: commands end in CRLF only, data ends only on CRLF.CRLF, and no published SMTP
 * smuggling variant can make the node see a second, hidden transaction.
 */

/** A full garbage collection, so what is measured is memory still held, not garbage. */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

describe('framing and SMTP smuggling', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Reject' }),
      connector({ name: 'Normalize', bareLineEndings: 'normalize' }),
      // Every garbage line is answered, none closes the session: the flood test parses them all.
      // The floods are pipelined without EHLO on purpose, so the synchronization check (its own
      // spec: test/security/pipelining-abuse.test.ts) is off here.
      connector({ name: 'Flood', forbidUnauthPipelining: false, limits: { maxProtocolErrors: 1_000_000 } }),
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
        const bare = hasBareLineEnding(ending);
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

  it('answers each of 100,000 garbage commands and serves a whole transaction mid-flood, in bounded memory', async () => {
    const FLOOD = 100_000;
    const GARBAGE = 'GARBAGE COMMAND\r\n';
    // A raw socket that only counts reply lines, so the memory measured is the node's, not a client's.
    const flood = connect(h.port('Flood'), '127.0.0.1');
    flood.setEncoding('latin1');
    let tail = '';
    let replies = 0;
    let wrong: string | undefined;
    let last = '';
    let wanted = { count: 1, resolve: () => {} };
    const repliesReached = (count: number) =>
      new Promise<void>((resolve) => {
        wanted = { count, resolve };
        if (replies >= count) resolve();
      });
    flood.on('data', (chunk: string) => {
      const lines = (tail + chunk).split('\r\n');
      tail = lines.pop()!;
      for (const line of lines) {
        // The greeting first, then one 500 per garbage line.
        if (replies > 0 && replies <= FLOOD && !line.startsWith('500 5.5.2 '))
          wrong ??= `reply ${replies}: ${line}`;
        replies++;
        last = line;
      }
      if (replies >= wanted.count) wanted.resolve();
    });
    await repliesReached(1);
    collectGarbage();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    let heapRetained = Number.POSITIVE_INFINITY;
    const sample = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 20);
    try {
      // The first half in one write; the node is answering it when the other client starts, and
      // cannot have finished the flood before the other transaction ends: the rest is unsent.
      flood.write(GARBAGE.repeat(FLOOD / 2));
      await repliesReached(2);
      const o = await SmtpTestClient.connect(h.port('Flood'));
      assert.equal((await o.greeting()).code, 220);
      assert.equal((await o.command('EHLO other.test')).code, 250);
      assert.equal((await o.command('MAIL FROM:<other@remote.test>')).code, 250);
      assert.equal((await o.command('RCPT TO:<bob@example.test>')).code, 250);
      assert.equal((await o.command('DATA')).code, 354);
      const queued = await o.command('Subject: during the flood\r\n\r\nstill served\r\n.');
      assert.equal(queued.code, 250, queued.text);
      assert.equal((await o.command('QUIT')).code, 221);
      o.close();
      // Half the flood is still unsent, so the node is mid-flood by construction; and still listening.
      assert.equal(flood.closed, false, 'the node closed the flooding session (an error limit cut it short)');
      assert.match(
        withoutTrace(await h.body(/queued as (\S+)/.exec(queued.text)![1]!)),
        /^Subject: during the flood\r\n/,
      );

      flood.write(GARBAGE.repeat(FLOOD / 2));
      await repliesReached(FLOOD + 1);
      assert.equal(wrong, undefined, 'every garbage command is answered 500 5.5.2');
      // What the open session (and the server) still hold after 100,000 lines: nothing per line.
      collectGarbage();
      heapRetained = process.memoryUsage().heapUsed - heapBefore;
      // Every line was parsed and answered, and the session still takes commands.
      flood.write('QUIT\r\n');
      await repliesReached(FLOOD + 2);
      assert.match(last, /^221 /);
    } finally {
      clearInterval(sample);
      flood.destroy();
    }
    assert.equal(replies, FLOOD + 2, 'one reply per line: greeting, 100,000 × 500, 221');
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    assert.ok(
      heapRetained < 8 * 1024 * 1024,
      `the node kept ${Math.round(heapRetained / 1048576)} MB after the flood: memory per line`,
    );
    // The peak includes garbage not yet collected, and the test runner's own bookkeeping.
    assert.ok(
      rssPeak - rssBefore < 96 * 1024 * 1024,
      `memory grew by ${Math.round((rssPeak - rssBefore) / 1048576)} MB during the flood`,
    );
  });

  it('answers 100,000 pipelined NOOPs in order with bounded memory', async () => {
    const c = await SmtpTestClient.connect(h.port('Flood'));
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
