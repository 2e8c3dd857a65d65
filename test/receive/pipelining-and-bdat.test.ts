import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ReceiveHarness, startReceiveHarness, withoutTrace } from '../helpers/receive-harness.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030): batched commands, exact chunk framing. */
describe('pipelined commands and BDAT chunks', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness();
  });
  after(() => h.close());

  async function ready(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port());
    await c.greeting();
    await c.command('EHLO client.test');
    return c;
  }

  it('answers a whole pipelined transaction in order, in one write', async () => {
    const c = await ready();
    c.write(
      'MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n',
    );
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await c.reply()).code);
    assert.deepEqual(codes, [250, 250, 550, 250, 354]);
    c.write(
      'Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n',
    );
    const rest = [];
    for (let i = 0; i < 4; i++) rest.push((await c.reply()).code);
    assert.deepEqual(rest, [250, 250, 250, 354]);
    assert.equal((await c.command('second\r\n.')).code, 250);
    c.close();
  });

  it('assembles a message from several BDAT chunks without dot handling', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test> BODY=8BITMIME');
    await c.command('RCPT TO:<bob@example.test>');
    const part1 = 'Subject: chunks\r\n\r\n.not stuffed\r\n';
    const part2 = '.\r\nstill content\r\n';
    c.write(`BDAT ${Buffer.byteLength(part1)}\r\n${part1}`);
    assert.equal((await c.reply()).text, `2.0.0 ${Buffer.byteLength(part1)} octets received`);
    c.write(`BDAT ${Buffer.byteLength(part2)} LAST\r\n${part2}`);
    const done = await c.reply();
    assert.equal(done.code, 250);
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(withoutTrace(await h.body(id)), part1 + part2);
    assert.equal((await h.messages()).find((m) => m.id === id)?.bodyType, '8BITMIME');
    c.close();
  });

  it('accepts BDAT 0 LAST to end a message, and a chunk pipelined with the next command', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    c.write('BDAT 5\r\nhelloBDAT 0 LAST\r\nNOOP\r\n');
    assert.equal((await c.reply()).code, 250);
    const done = await c.reply();
    assert.match(done.text, /queued as/);
    assert.equal((await c.reply()).text, '2.0.0 Ok');
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(withoutTrace(await h.body(id)), 'hello');
    c.close();
  });

  it('reads and refuses a BDAT chunk sent without a transaction, then carries on', async () => {
    const c = await ready();
    c.write('BDAT 10\r\nMAIL FROM:NOOP\r\n');
    const refused = await c.reply();
    assert.equal(refused.code, 503);
    assert.equal((await c.reply()).text, '2.0.0 Ok');
    c.close();
  });

  it('refuses DATA after BDAT in the same transaction', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    c.write('BDAT 3\r\nabc');
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.command('DATA')).code, 503);
    c.close();
  });
});
