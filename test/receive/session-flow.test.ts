import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  withoutTrace,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** The ordinary SMTP conversation on an anonymous connector: what each command answers. */
describe('an SMTP session', () => {
  let h: ReceiveHarness;
  before(async () => {
    // Several tests here make many deliberate mistakes in one session.
    h = await startReceiveHarness([connector({ limits: { maxProtocolErrors: 50 } })]);
  });
  after(() => h.close());

  async function session(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h.port());
    const greeting = await c.greeting();
    assert.equal(greeting.code, 220);
    assert.match(greeting.text, /^mx\.example\.test Ferrymail ESMTP service ready$/);
    return c;
  }

  it('advertises the extensions after EHLO, with SIZE carrying the limit and no AUTH for anonymous-only', async () => {
    const c = await session();
    const ehlo = await c.command('EHLO client.test');
    assert.equal(ehlo.code, 250);
    assert.match(ehlo.lines[0]!, /^mx\.example\.test Hello client\.test \[127\.0\.0\.1\]$/);
    for (const ext of [
      'PIPELINING',
      'SIZE 37748736',
      '8BITMIME',
      'BINARYMIME',
      'CHUNKING',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'DSN',
      'STARTTLS',
    ]) {
      assert.ok(ehlo.lines.includes(ext), `EHLO lacks ${ext}: ${ehlo.lines.join(' | ')}`);
    }
    assert.ok(
      !ehlo.lines.some((l) => l.startsWith('AUTH')),
      'AUTH offered on a connector without authenticated users',
    );
    c.close();
  });

  it('accepts a message and answers 250 2.0.0 with the queue id; the stored body is the data, dot-unstuffed', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    assert.deepEqual((await c.command('MAIL FROM:<sender@remote.test>')).text, '2.1.0 Ok');
    assert.deepEqual((await c.command('RCPT TO:<bob@example.test>')).text, '2.1.5 Ok');
    assert.equal((await c.command('DATA')).code, 354);
    const done = await c.command('Subject: dots\r\n\r\n..leading dot\r\n..\r\n...two\r\nend\r\n.');
    assert.equal(done.code, 250);
    const id = /^2\.0\.0 Ok: queued as ([0-9A-Z]+)$/.exec(done.text)?.[1];
    assert.ok(id, done.text);
    const message = (await h.messages()).find((m) => m.id === id)!;
    assert.equal(message.sender, 'sender@remote.test');
    assert.deepEqual(
      message.recipients.map((r) => r.address),
      ['bob@example.test'],
    );
    assert.equal(message.subject, 'dots');
    const body = await h.body(id);
    assert.match(
      body,
      /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(Ferrymail\) with ESMTP\r\n/,
    );
    assert.equal(withoutTrace(body), 'Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n');
    assert.equal((await c.command('QUIT')).code, 221);
    await c.closed();
  });

  it('stores an empty message when the data ends at once', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    await c.command('MAIL FROM:<>');
    await c.command('RCPT TO:<bob@example.test>');
    await c.command('DATA');
    const done = await c.command('.');
    assert.equal(done.code, 250);
    const id = /queued as (\S+)/.exec(done.text)![1]!;
    assert.equal(withoutTrace(await h.body(id)), '');
    assert.equal((await h.messages()).find((m) => m.id === id)?.sender, '');
    c.close();
  });

  it('answers RSET, NOOP, VRFY, HELP and refuses EXPN and unknown commands', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    assert.equal((await c.command('NOOP')).text, '2.0.0 Ok');
    assert.equal((await c.command('RSET')).text, '2.0.0 Ok');
    const vrfy = await c.command('VRFY bob');
    assert.equal(vrfy.code, 252);
    assert.match(vrfy.text, /^2\.5\.0 /);
    assert.equal((await c.command('HELP')).code, 214);
    assert.equal((await c.command('EXPN team')).code, 502);
    const unknown = await c.command('FOO bar');
    assert.equal(unknown.code, 500);
    assert.match(unknown.text, /^5\.5\.2 /);
    c.close();
  });

  it('enforces the order of commands with 503 5.5.1', async () => {
    const c = await session();
    assert.match((await c.command('MAIL FROM:<a@remote.test>')).text, /^5\.5\.1 Send hello first/);
    await c.command('EHLO client.test');
    assert.equal((await c.command('RCPT TO:<bob@example.test>')).code, 503);
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 503);
    const data = await c.command('DATA');
    assert.equal(data.code, 554);
    assert.match(data.text, /^5\.5\.1 No valid recipients/);
    c.close();
  });

  it('rejects malformed addresses and parameters with the precise codes', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    assert.match((await c.command('MAIL FROM:<no-at-sign>')).text, /^5\.1\.7 /);
    assert.match((await c.command('MAIL FROM:sender@remote.test')).text, /^5\.5\.4 /);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> FOO=bar')).code, 555);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> SIZE=abc')).code, 555);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> BODY=9BIT')).code, 555);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> RET=ALL')).code, 555);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> ENVID=bad=xtext')).code, 555);
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.match((await c.command('RCPT TO:<bob@@example.test>')).text, /^5\.1\.3 /);
    assert.equal((await c.command('RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS')).code, 555);
    assert.equal((await c.command('RCPT TO:<bob@example.test> ORCPT=nosemicolon')).code, 555);
    assert.equal((await c.command('RCPT TO:<bob@example.test> XYZ=1')).code, 555);
    c.close();
  });

  it('keeps DSN parameters (RET, ENVID, NOTIFY, ORCPT) with the message', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    assert.equal((await c.command('MAIL FROM:<a@remote.test> RET=HDRS ENVID=abc+2Bdef')).code, 250);
    assert.equal(
      (await c.command('RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.test'))
        .code,
      250,
    );
    assert.equal((await c.command('RCPT TO:<alice@example.test> NOTIFY=NEVER')).code, 250);
    await c.command('DATA');
    const id = /queued as (\S+)/.exec((await c.command('x\r\n.')).text)![1]!;
    const message = (await h.messages()).find((m) => m.id === id)!;
    assert.deepEqual(message.dsn, { ret: 'HDRS', envid: 'abc+def' });
    const bob = message.recipients.find((r) => r.address === 'bob@example.test')!;
    assert.deepEqual(bob.notify, ['SUCCESS', 'FAILURE']);
    assert.equal(bob.orcpt, 'rfc822;bob@example.test');
    assert.equal(message.recipients.find((r) => r.address === 'alice@example.test')!.notify, 'NEVER');
    c.close();
  });

  it('accepts UTF-8 addresses only with SMTPUTF8 (553 5.6.7 otherwise)', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    const refused = await c.command('MAIL FROM:<jos\u00e9@remote.test>'.replace('\u00e9', '\u00c3\u00a9'));
    assert.equal(refused.code, 553);
    assert.match(refused.text, /^5\.6\.7 /);
    const ok = await c.command('MAIL FROM:<jos\u00c3\u00a9@remote.test> SMTPUTF8');
    assert.equal(ok.code, 250);
    c.close();
  });

  it('accepts HELO without extensions and refuses ESMTP parameters after it', async () => {
    const c = await session();
    const helo = await c.command('HELO old.client.test');
    assert.equal(helo.code, 250);
    assert.equal(helo.lines.length, 1);
    assert.equal((await c.command('MAIL FROM:<a@remote.test> SIZE=10')).code, 555);
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    c.close();
  });
});
