import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  withoutTrace,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * `limits.maxDataLineLength`: a content line (DATA or BDAT) longer than the limit fails the
 * message with 554 5.6.0 at the end of data, however the line was cut into writes or chunks;
 * nothing is stored and the session goes on. The line ending and a stuffed dot do not count.
 */
const LIMIT = 1000;
const TOO_LONG = `5.6.0 Message line too long (limit ${LIMIT} octets)`;

describe('data line length limit', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([connector({ name: 'Lines', limits: { maxDataLineLength: LIMIT } })]);
  });
  after(() => h.close());

  async function transaction(c: SmtpTestClient, from = 'a@remote.test'): Promise<void> {
    assert.equal((await c.command(`MAIL FROM:<${from}>`)).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
  }

  async function ready(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port('Lines'));
    await c.greeting();
    await c.command('EHLO client.test');
    await transaction(c);
    return c;
  }

  /** The session still works: a whole message after the failure is queued. */
  async function stillServes(c: SmtpTestClient): Promise<void> {
    await transaction(c, 'next@remote.test');
    assert.equal((await c.command('DATA')).code, 354);
    assert.match((await c.command('Subject: next\r\n\r\nfine\r\n.')).text, /queued as/);
  }

  /** Writes `text` in pieces of `size`, each on its own (the session reads each separately). */
  async function writeInPieces(c: SmtpTestClient, text: string, size: number): Promise<void> {
    for (let i = 0; i < text.length; i += size) {
      c.write(text.slice(i, i + size));
      await sleep(2);
    }
  }

  const queuedId = (text: string) => /queued as (\S+)/.exec(text)![1]!;

  it('accepts lines of exactly the limit, a stuffed dot and the CRLF not counted', async () => {
    const c = await ready();
    assert.equal((await c.command('DATA')).code, 354);
    const line = 'a'.repeat(LIMIT);
    const dotted = `.${'b'.repeat(LIMIT - 1)}`;
    const r = await c.command(`Subject: long\r\n\r\n${line}\r\n${line}\r\n.${dotted}\r\n.`);
    assert.equal(r.code, 250, r.text);
    assert.equal(
      withoutTrace(await h.body(queuedId(r.text))),
      `Subject: long\r\n\r\n${line}\r\n${line}\r\n${dotted}\r\n`,
    );
    c.close();
  });

  it('refuses a line one octet over the limit with 554 5.6.0 at the end of data, stores nothing, and goes on', async () => {
    const before = (await h.messages()).length;
    const c = await ready();
    assert.equal((await c.command('DATA')).code, 354);
    // More lines after the long one, some looking like commands: all still content.
    const r = await c.command(`Subject: long\r\n\r\n${'a'.repeat(LIMIT + 1)}\r\nNOOP\r\nmore\r\n.`);
    assert.equal(r.code, 554, r.text);
    assert.equal(r.text, TOO_LONG);
    assert.equal((await h.messages()).length, before);
    assert.equal(h.sink.openBodies, 0);
    await stillServes(c);
    c.close();
  });

  it('counts a line across many TCP writes', async () => {
    const before = (await h.messages()).length;
    const c = await ready();
    assert.equal((await c.command('DATA')).code, 354);
    await writeInPieces(c, `Subject: pieces\r\n\r\n${'a'.repeat(LIMIT)}\r\n`, 97);
    c.write('.\r\n');
    assert.equal((await c.reply()).code, 250, 'exactly the limit, in pieces');
    await transaction(c);
    assert.equal((await c.command('DATA')).code, 354);
    // The CR of the last line's CRLF in a write of its own: the count ends at the line break.
    await writeInPieces(c, `Subject: pieces\r\n\r\n${'a'.repeat(LIMIT + 1)}\r`, 97);
    c.write('\n.\r\n');
    assert.equal((await c.reply()).text, TOO_LONG);
    assert.equal((await h.messages()).length, before + 1);
    await stillServes(c);
    c.close();
  });

  it('counts a line across BDAT chunks', async () => {
    const before = (await h.messages()).length;
    const c = await ready();
    const sendChunks = async (line: string) => {
      const chunks = ['Subject: chunks\r\n\r\n'];
      for (let i = 0; i < line.length; i += 100) chunks.push(line.slice(i, i + 100));
      chunks.push('\r\n');
      const replies: string[] = [];
      for (const [i, chunk] of chunks.entries()) {
        c.write(`BDAT ${chunk.length}${i === chunks.length - 1 ? ' LAST' : ''}\r\n${chunk}`);
        const r = await c.reply();
        replies.push(`${r.code} ${r.text}`);
      }
      return replies;
    };
    const fits = await sendChunks('a'.repeat(LIMIT));
    assert.match(fits.at(-1)!, /^250 2\.0\.0 Ok: queued as /);
    assert.equal(
      withoutTrace(await h.body(queuedId(fits.at(-1)!))),
      `Subject: chunks\r\n\r\n${'a'.repeat(LIMIT)}\r\n`,
    );

    await transaction(c);
    const over = await sendChunks('a'.repeat(LIMIT + 1));
    // Each chunk is read; from the one that passes the limit on, each is answered with the error.
    assert.deepEqual(
      over.map((r) => r.slice(0, 3)),
      [...Array(11).fill('250'), '554', '554'],
    );
    assert.equal(over.at(-1), `554 ${TOO_LONG}`);
    assert.equal((await h.messages()).length, before + 1);
    assert.equal(h.sink.openBodies, 0);
    await stillServes(c);
    c.close();
  });

  it('does not measure BODY=BINARYMIME content, which has no lines', async () => {
    const c = await SmtpTestClient.connect(h.port('Lines'));
    await c.greeting();
    await c.command('EHLO client.test');
    assert.equal((await c.command('MAIL FROM:<a@remote.test> BODY=BINARYMIME')).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
    const content = `Subject: bin\r\n\r\n${'z'.repeat(3 * LIMIT)}`;
    c.write(`BDAT ${content.length} LAST\r\n${content}`);
    assert.match((await c.reply()).text, /queued as/);
    c.close();
  });
});
