import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { formatReply, SmtpClientError } from '../../../src/delivery/smtp/client/index.ts';
import type { SmtpSink, SmtpSinkOptions } from '../../helpers/smtp-sink.ts';
import { body, cleanup, connectTo, envelope, MESSAGE, startSink } from './fixtures.ts';

async function withSink<T>(options: SmtpSinkOptions, run: (sink: SmtpSink) => Promise<T>): Promise<T> {
  const sink = await startSink(options);
  try {
    return await run(sink);
  } finally {
    await sink.close();
  }
}

/** The session before the first transaction, and what each EHLO keyword changes in MAIL and RCPT. */
describe('outbound SMTP session and extensions', () => {
  afterEach(cleanup);

  it('reads the greeting and the EHLO keywords, upper-cased, with their parameters', () =>
    withSink(
      { banner: '220 mx.example.test ESMTP ready', extraEhloLines: ['x-custom  a b', 'AUTH=LOGIN'] },
      async (sink) => {
        const c = await connectTo(sink);
        assert.equal(formatReply(c.greeting), '220 mx.example.test ESMTP ready');
        assert.equal(c.extensions.get('SIZE'), String(10 * 1024 * 1024));
        assert.equal(c.extensions.get('PIPELINING'), '');
        assert.equal(c.extensions.get('X-CUSTOM'), 'a b');
        assert.equal(c.extensions.get('AUTH'), 'LOGIN', 'the old AUTH= form counts as AUTH');
        assert.equal(c.usable, true);
        assert.deepEqual(sink.connections[0]!.commands, ['EHLO client.origin.test']);
        await c.quit();
      },
    ));

  it('falls back to HELO when EHLO gets a 5xx, and then uses no extension', () =>
    withSink({ ehloReply: '502 5.5.2 Error: command not recognized' }, async (sink) => {
      const c = await connectTo(sink);
      assert.equal(c.extensions.size, 0);
      const r = await c.send(envelope(['a@dest.test'], { size: 42, bodyType: '8BITMIME' }), body(MESSAGE));
      assert.equal(r.data?.code, 250);
      assert.deepEqual(sink.connections[0]!.commands.slice(0, 3), [
        'EHLO client.origin.test',
        'HELO client.origin.test',
        'MAIL FROM:<sender@origin.test>',
      ]);
      assert.equal(sink.transactions[0]!.method, 'DATA');
      await c.quit();
    }));

  it('gives up with a permanent error on a 554 greeting, and says QUIT', () =>
    withSink({ banner: '554 5.7.1 mx.example.test no SMTP service for you' }, async (sink) => {
      await assert.rejects(connectTo(sink), (e: SmtpClientError) => {
        assert.ok(e instanceof SmtpClientError);
        assert.equal(e.stage, 'greeting');
        assert.equal(e.status, '5.7.1');
        assert.equal(e.permanent, true);
        assert.equal(e.reply?.code, 554);
        return true;
      });
      await sink.waitFor(() => sink.connections[0]?.commands.includes('QUIT') ?? false);
    }));

  it('treats a 421 greeting as a transient error', () =>
    withSink({ banner: '421 4.3.2 mx.example.test busy, try later' }, async (sink) => {
      await assert.rejects(connectTo(sink), { stage: 'greeting', status: '4.3.2', permanent: false });
    }));

  it('sends SIZE, BODY, SMTPUTF8, RET, ENVID (xtext), NOTIFY and ORCPT when the peer offers them', () =>
    withSink({}, async (sink) => {
      const c = await connectTo(sink);
      const env = envelope([], {
        sender: 'sénder@origin.test',
        size: 1234,
        bodyType: '8BITMIME',
        smtpUtf8: true,
        dsn: { ret: 'HDRS', envid: 'id+1=2 x' },
      });
      env.recipients = [
        { address: 'a@dest.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;orig+a@dest.test' },
        { address: 'b@dest.test', notify: 'NEVER', orcpt: 'b@old.test' },
        { address: 'c@dest.test', orcpt: 'rfc822;ç@dest.test' },
      ];
      const r = await c.send(env, body(MESSAGE));
      assert.equal(r.data?.code, 250);
      const tx = sink.transactions[0]!;
      assert.equal(
        tx.mailLine,
        'MAIL FROM:<sénder@origin.test> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2+20x',
      );
      assert.deepEqual(
        tx.recipients.map((x) => x.line),
        [
          'RCPT TO:<a@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Ba@dest.test',
          'RCPT TO:<b@dest.test> NOTIFY=NEVER ORCPT=rfc822;b@old.test',
          'RCPT TO:<c@dest.test> ORCPT=utf-8;\\x{E7}@dest.test',
        ],
      );
      await c.quit();
    }));

  it('leaves out the parameters of extensions the peer does not offer, and sends 8-bit content without BODY=', () =>
    withSink(
      { extensions: { size: false, dsn: false, eightBitMime: false, chunking: false, smtpUtf8: false } },
      async (sink) => {
        const c = await connectTo(sink);
        const env = envelope([], { bodyType: '8BITMIME', dsn: { ret: 'FULL', envid: 'abc' } });
        env.recipients = [{ address: 'a@dest.test', notify: 'NEVER', orcpt: 'rfc822;a@dest.test' }];
        const r = await c.send(env, body('Subject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0\r\n'));
        assert.equal(r.data?.code, 250);
        assert.equal(sink.transactions[0]!.mailLine, 'MAIL FROM:<sender@origin.test>');
        assert.equal(sink.transactions[0]!.recipients[0]!.line, 'RCPT TO:<a@dest.test>');
        await c.quit();
      },
    ));

  it('does not send a message that needs SMTPUTF8 to a peer without it: every recipient gets 554 5.6.7', () =>
    withSink({ extensions: { smtpUtf8: false } }, async (sink) => {
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test', 'b@dest.test'], { smtpUtf8: true }), body(MESSAGE));
      assert.equal(r.data, undefined);
      assert.deepEqual(
        r.recipients.map((x) => `${x.code} ${x.enhanced}`),
        ['554 5.6.7', '554 5.6.7'],
      );
      assert.equal(r.mail.code, 554);
      // A non-ASCII address needs it as much as the flag does.
      const r2 = await c.send(envelope(['dé@dest.test']), body(MESSAGE));
      assert.equal(r2.recipients[0]!.enhanced, '5.6.7');
      assert.equal(c.usable, true);
      assert.deepEqual(sink.connections[0]!.commands, ['EHLO client.origin.test'], 'nothing was sent');
      await c.quit();
    }));

  it('does not send a BINARYMIME message to a peer without CHUNKING and BINARYMIME: 554 5.6.3', () =>
    withSink({ extensions: { binaryMime: false } }, async (sink) => {
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test'], { bodyType: 'BINARYMIME' }), body(MESSAGE));
      assert.equal(formatReply(r.recipients[0]!).slice(0, 9), '554 5.6.3');
      assert.equal(sink.connections[0]!.commands.length, 1);
      await c.quit();
    }));

  it('does not send a message larger than the SIZE the peer announced: 552 5.3.4', () =>
    withSink({ extensions: { size: 1000 } }, async (sink) => {
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test'], { size: 1001 }), body(MESSAGE));
      assert.equal(formatReply(r.recipients[0]!).slice(0, 9), '552 5.3.4');
      assert.equal(sink.connections[0]!.commands.length, 1);
      await c.quit();
    }));

  it('refuses to write an address that would break the command line', () =>
    withSink({}, async (sink) => {
      const c = await connectTo(sink);
      const r = await c.send(
        envelope(['ok@dest.test', 'evil@dest.test>\r\nRCPT TO:<x@y.test']),
        body(MESSAGE),
      );
      assert.equal(r.recipients[0]!.code, 250);
      assert.equal(r.recipients[1]!.code, 553);
      assert.deepEqual(sink.transactions[0]!.accepted, ['ok@dest.test']);
      const bad = await c.send(envelope(['ok@dest.test'], { sender: 'a\r\nRSET' }), body(MESSAGE));
      assert.equal(bad.mail.code, 553);
      assert.equal(sink.transactions.length, 1);
      await c.quit();
    }));

  it('sends several messages on one connection, resetting only after a transaction left open', () =>
    withSink(
      { rcptReply: (a) => (a.startsWith('gone') ? '550 5.1.1 no such user' : '250 2.1.5 Ok') },
      async (sink) => {
        const c = await connectTo(sink);
        await c.send(envelope(['a@dest.test']), body(MESSAGE));
        const failed = await c.send(envelope(['gone@dest.test']), body(MESSAGE));
        assert.equal(failed.data, undefined);
        await c.send(envelope(['b@dest.test']), body(MESSAGE));
        await c.send(envelope(['c@dest.test']), body(MESSAGE));
        assert.equal(c.messagesSent, 3);
        assert.equal(sink.transactions.length, 3);
        const verbs = sink.connections[0]!.commands.map((l) => l.split(/[ :]/)[0]);
        assert.equal(
          verbs.filter((v) => v === 'RSET').length,
          1,
          'one RSET, after the transaction with no recipient',
        );
        assert.equal(verbs.indexOf('RSET'), verbs.lastIndexOf('RCPT', verbs.indexOf('RSET')) + 1);
        assert.equal(sink.connections.length, 1);
        await c.quit();
        await sink.waitFor(() => sink.connections[0]!.closed);
        assert.equal(c.usable, false);
      },
    ));

  it('sends RSET when asked to', () =>
    withSink({}, async (sink) => {
      const c = await connectTo(sink);
      await c.reset();
      assert.deepEqual(sink.connections[0]!.commands, ['EHLO client.origin.test', 'RSET']);
      c.close();
      assert.equal(c.usable, false);
      await assert.rejects(c.send(envelope(['a@dest.test']), body(MESSAGE)), { name: 'SmtpClientError' });
    }));

  it('connects from the local address it is given', () =>
    withSink({}, async (sink) => {
      const c = await connectTo(sink, { localAddress: '127.0.0.2' });
      assert.equal(sink.connections[0]!.remoteAddress, '127.0.0.2');
      await c.quit();
    }));
});
