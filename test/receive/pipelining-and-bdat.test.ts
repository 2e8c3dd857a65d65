import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  withoutTrace,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** PIPELINING (RFC 2920) and CHUNKING/BDAT (RFC 3030): batched commands, exact chunk framing. */
describe('pipelined commands and BDAT chunks', () => {
  let h: ReceiveHarness;
  before(async () => {
    h = await startReceiveHarness([
      connector({ name: 'Default' }),
      connector({ name: 'Small', limits: { maxMessageSize: 100 } }),
    ]);
  });
  after(() => h.close());

  async function ready(name = 'Default'): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port(name));
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

  it('stores BODY=BINARYMIME chunks byte for byte, bare line endings and NULs included', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test> BODY=BINARYMIME');
    await c.command('RCPT TO:<bob@example.test>');
    const binary = Buffer.from('Subject: bin\r\n\r\n\n.\n\r\x00\xff\r\n.\r\n', 'latin1');
    c.write(Buffer.concat([Buffer.from(`BDAT ${binary.length} LAST\r\n`), binary]));
    const done = await c.reply();
    assert.equal(done.code, 250, done.text);
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(withoutTrace(await h.body(id)), binary.toString('latin1'));
    assert.equal((await h.messages()).find((m) => m.id === id)?.bodyType, 'BINARYMIME');
    c.close();
  });

  it('refuses DATA for a BODY=BINARYMIME transaction with 503 5.5.1 (RFC 3030)', async () => {
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test> BODY=BINARYMIME');
    await c.command('RCPT TO:<bob@example.test>');
    const r = await c.command('DATA');
    assert.equal(r.code, 503);
    assert.match(r.text, /^5\.5\.1 /);
    c.close();
  });

  it('refuses bare line endings in BDAT content of a text body at the last chunk', async () => {
    const before = (await h.messages()).length;
    const c = await ready();
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    c.write('BDAT 9\r\nbare\nline');
    assert.equal((await c.reply()).code, 250);
    c.write('BDAT 0 LAST\r\n');
    assert.equal((await c.reply()).text, '5.6.11 Message contains bare CR or LF; rejected');
    assert.equal((await h.messages()).length, before);
    c.close();
  });

  it('keeps reading the chunks of a refused transaction and answers each with the error', async () => {
    const before = (await h.messages()).length;
    const c = await ready('Small');
    await c.command('MAIL FROM:<a@remote.test>');
    await c.command('RCPT TO:<bob@example.test>');
    const chunk = 'y'.repeat(80);
    // The Received header alone takes most of the 100 octets: the first chunk already overflows.
    c.write(`BDAT 80\r\n${chunk}BDAT 80\r\n${chunk}BDAT 80 LAST\r\n${chunk}NOOP\r\n`);
    for (let i = 0; i < 3; i++) {
      const r = await c.reply();
      assert.equal(r.code, 552, `chunk ${i + 1}: ${r.code} ${r.text}`);
      assert.match(r.text, /^5\.3\.4 /);
    }
    assert.equal((await c.reply()).text, '2.0.0 Ok', 'the chunk data was not taken for commands');
    assert.equal((await h.messages()).length, before);
    assert.equal(h.sink.openBodies, 0);
    c.close();
  });
});
