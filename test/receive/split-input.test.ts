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
 * Input arrives in whatever pieces TCP makes of it: a session keeps the chunks as they came
 * (src/receive/input-queue.ts) and must find every command line and the end of data across
 * their edges. Each write here is followed by a pause, so it reaches the server as its own chunk.
 */
describe('commands and content split across TCP chunks', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([connector({ name: 'Default' })]);
  });
  after(() => h.close());

  async function ready(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port());
    await c.greeting();
    await c.command('EHLO client.test');
    return c;
  }

  async function writeInPieces(c: SmtpTestClient, pieces: string[]): Promise<void> {
    for (const piece of pieces) {
      c.write(piece);
      await sleep(15);
    }
  }

  it('answers a command sent a few bytes at a time once, when its CRLF arrives', async () => {
    const c = await ready();
    await writeInPieces(c, ['MA', 'IL FROM:<a@rem', 'ote.test>', '\r', '\n']);
    const r = await c.reply();
    assert.equal(r.code, 250, `MAIL split into five chunks: ${r.text}`);
    assert.equal(
      (await c.command('NOOP')).text,
      '2.0.0 Ok',
      'a second reply means a piece was taken as a line',
    );
    c.close();
  });

  it('takes pipelined commands whose line ends fall inside chunks, in order', async () => {
    const c = await ready();
    await writeInPieces(c, [
      'MAIL FROM:<a@remote.test>\r\nRCPT TO:<bo',
      'b@example.test>\r\nRCPT TO:<alice@exa',
      'mple.test>\r\nDA',
      'TA\r\n',
    ]);
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await c.reply()).code);
    assert.deepEqual(codes, [250, 250, 250, 354]);
    await writeInPieces(c, [
      'Subject: split\r\n\r\nfirst line\r',
      '\n.second line starts with a dot\r\n',
      '.',
      '\r',
      '\nNOOP\r\n',
    ]);
    const done = await c.reply();
    assert.equal(done.code, 250, `end of data split over three chunks: ${done.text}`);
    assert.equal((await c.reply()).text, '2.0.0 Ok', 'the command after the end of data, in the same chunk');
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(
      withoutTrace(await h.body(id)),
      'Subject: split\r\n\r\nfirst line\r\nsecond line starts with a dot\r\n',
      'the stuffed dot is removed and nothing is lost or doubled at the chunk edges',
    );
    c.close();
  });

  it('does not take "CRLF ." followed by a CRLF in a later chunk as anything but the end', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    assert.equal((await c.command('DATA')).code, 354);
    await writeInPieces(c, ['Subject: edge\r\n\r\nx\r\n', '.', '\r\n']);
    const done = await c.reply();
    assert.equal(done.code, 250);
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(withoutTrace(await h.body(id)), 'Subject: edge\r\n\r\nx\r\n');
    c.close();
  });

  it('refuses a command line that passes the limit in small chunks once, then serves the next line', async () => {
    const c = await ready();
    // 2,100 bytes (the default limit is 2,048) in 100-byte chunks, then the rest of the line.
    await writeInPieces(
      c,
      Array.from({ length: 21 }, () => 'A'.repeat(100)),
    );
    const refused = await c.reply();
    assert.equal(refused.code, 500);
    assert.match(refused.text, /^5\.5\.2 Line too long/);
    await writeInPieces(c, ['B'.repeat(100), 'C\r\nNO', 'OP\r\n']);
    assert.equal((await c.reply()).text, '2.0.0 Ok', 'the long line was dropped up to its CRLF, and only it');
    c.close();
  });
});
