import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { QueueUnavailableError } from '../../src/queue/types.ts';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  withoutTrace,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * A body is opened at DATA or the first BDAT, streamed to the sink as it arrives (one write at a
 * time), and either submitted or aborted: never left open, never kept after a refusal.
 */
describe('the life of a message body', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([connector({ limits: { maxMessageSize: 64 * 1024 * 1024 } })]);
  });
  after(() => h.close());
  beforeEach(() => {
    h.sink.options = {};
  });

  async function inTransaction(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port());
    await c.greeting();
    await c.command('EHLO client.test');
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 250);
    return c;
  }

  async function eventually(check: () => boolean, what: string): Promise<void> {
    const started = Date.now();
    while (!check()) {
      if (Date.now() - started > 3000) assert.fail(`never happened: ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('streams a large message in order, one write at a time, when the sink is slow', async () => {
    h.sink.options = { writeDelayMs: 2 };
    const c = await inTransaction();
    assert.equal((await c.command('DATA')).code, 354);
    const lines = Array.from(
      { length: 40_000 },
      (_, i) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(40)}\r\n`,
    );
    const content = `Subject: big\r\n\r\n${lines.join('')}`;
    c.write(`${content}.\r\n`);
    const done = await c.reply(20_000);
    assert.equal(done.code, 250, done.text);
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(withoutTrace(await h.body(id)), content);
    assert.equal(h.sink.overlappingWrites, 0, 'a write started before the previous one finished');
    c.close();
  });

  it('aborts the body when the client resets after a BDAT chunk', async () => {
    const c = await inTransaction();
    c.write('BDAT 5\r\nhello');
    assert.equal((await c.reply()).code, 250);
    assert.equal(h.sink.openBodies, 1);
    assert.equal((await c.command('RSET')).text, '2.0.0 Ok');
    assert.equal(h.sink.openBodies, 0);
    assert.equal((await c.command('MAIL FROM:<b@remote.test>')).code, 250, 'a new transaction may start');
    c.close();
  });

  it('aborts the body when the client disconnects in the middle of DATA', async () => {
    const aborted = h.sink.aborted.length;
    const submitted = h.sink.submitted.length;
    const c = await inTransaction();
    await c.command('DATA');
    c.write('Subject: cut off\r\n\r\nhalf a mess');
    await eventually(() => h.sink.openBodies === 1, 'the body was opened');
    c.close();
    await eventually(() => h.sink.aborted.length === aborted + 1, 'the body was aborted');
    assert.equal(h.sink.openBodies, 0);
    assert.equal(h.sink.submitted.length, submitted);
  });

  it('aborts the body on QUIT in the middle of a BDAT transaction', async () => {
    const c = await inTransaction();
    c.write('BDAT 3\r\nabc');
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.command('QUIT')).code, 221);
    await c.closed();
    await eventually(() => h.sink.openBodies === 0, 'the body was aborted');
  });

  it('commits a message whose end of data arrived just before the client left', async () => {
    const submitted = h.sink.submitted.length;
    const c = await inTransaction();
    await c.command('DATA');
    c.write('Subject: and gone\r\n\r\nbye\r\n.\r\n');
    c.close();
    await eventually(() => h.sink.submitted.length === submitted + 1, 'the message was submitted');
  });

  it('answers 452 4.3.1 at DATA when the sink cannot open a body, and the session goes on', async () => {
    h.sink.options = { failOpenWith: new QueueUnavailableError('disk full') };
    const c = await inTransaction();
    const r = await c.command('DATA');
    assert.equal(r.code, 452);
    assert.equal(r.text, '4.3.1 Insufficient system resources');
    h.sink.options = {};
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250, 'the transaction was reset');
    c.close();
  });

  it('drops the body of a refused submission and answers 452 4.3.1', async () => {
    h.sink.options = { failSubmitWith: new QueueUnavailableError('disk full') };
    const aborted = h.sink.aborted.length;
    const c = await inTransaction();
    await c.command('DATA');
    const r = await c.command('x\r\n.');
    assert.equal(r.code, 452);
    assert.equal(h.sink.aborted.length, aborted + 1);
    assert.equal(h.sink.openBodies, 0);
    c.close();
  });

  it('holds pipelined commands until the submission has been answered', async () => {
    h.sink.options = { submitDelayMs: 150 };
    const c = await inTransaction();
    await c.command('DATA');
    // RSET, not NOOP: NOOP must end a pipelined group (RFC 2920), and MAIL follows it here.
    c.write('x\r\n.\r\nRSET\r\nMAIL FROM:<next@remote.test>\r\n');
    assert.match((await c.reply()).text, /^2\.0\.0 Ok: queued as /);
    assert.equal((await c.reply()).text, '2.0.0 Ok');
    assert.equal((await c.reply()).text, '2.1.0 Ok');
    c.close();
  });
});
