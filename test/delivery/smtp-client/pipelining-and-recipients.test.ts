import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { formatReply } from '../../../src/delivery/smtp/client/index.ts';
import type { SmtpSink } from '../../helpers/smtp-sink.ts';
import { body, cleanup, connectTo, envelope, MESSAGE, startSink } from './fixtures.ts';

const mixed = (address: string) =>
  address.startsWith('busy')
    ? '450 4.2.1 Mailbox busy, try later'
    : address.startsWith('gone')
      ? '550 5.1.1 No such user'
      : '250 2.1.5 Ok';

/** The received chunk (one TCP read on the sink) holding `text`. */
function chunkWith(sink: SmtpSink, text: string): string | undefined {
  return sink.connections[0]!.received.map((b) => b.toString('latin1')).find((s) => s.includes(text));
}

/** RFC 2920 pipelining and the reply to each recipient, in order. */
describe('outbound pipelining and per-recipient results', () => {
  afterEach(cleanup);

  for (const chunking of [false, true]) {
    const how = chunking ? 'BDAT' : 'DATA';
    it(`returns 250, 450 and 550 recipients each with its own reply, the ${how} reply for the accepted (pipelined)`, async () => {
      const sink = await startSink({ rcptReply: mixed, extensions: { chunking } });
      const c = await connectTo(sink);
      const r = await c.send(
        envelope(['ok@dest.test', 'busy@dest.test', 'gone@dest.test', 'ok2@dest.test']),
        body(MESSAGE),
      );
      assert.deepEqual(
        r.recipients.map((x) => formatReply(x)),
        ['250 2.1.5 Ok', '450 4.2.1 Mailbox busy, try later', '550 5.1.1 No such user', '250 2.1.5 Ok'],
      );
      assert.equal(r.data?.code, 250);
      assert.deepEqual(sink.transactions[0]!.accepted, ['ok@dest.test', 'ok2@dest.test']);
      assert.equal(sink.transactions[0]!.method, how);
      // One write: MAIL, every RCPT (and DATA) arrived together.
      const first = chunkWith(sink, 'MAIL FROM');
      assert.ok(first?.includes('RCPT TO:<ok2@dest.test>'), 'the RCPTs were sent with MAIL');
      if (!chunking) assert.ok(first?.endsWith('DATA\r\n'), 'DATA was sent with them');
      await c.quit();
      await sink.close();
    });
  }

  it('sends one command at a time to a peer without PIPELINING', async () => {
    const sink = await startSink({ rcptReply: mixed, extensions: { pipelining: false } });
    const c = await connectTo(sink);
    const r = await c.send(envelope(['ok@dest.test', 'gone@dest.test']), body(MESSAGE));
    assert.deepEqual(
      r.recipients.map((x) => x.code),
      [250, 550],
    );
    for (const chunk of sink.connections[0]!.received.slice(1, 4)) {
      assert.equal(chunk.toString('latin1').match(/\r\n/g)?.length, 1, 'a single command per write');
    }
    await c.quit();
    await sink.close();
  });

  it('gives every recipient the MAIL reply when MAIL is refused, with and without pipelining', async () => {
    for (const pipelining of [true, false]) {
      const sink = await startSink({
        mailReply: () => '550 5.7.1 Sender rejected',
        extensions: { pipelining, chunking: false },
      });
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test', 'b@dest.test']), body(MESSAGE));
      assert.equal(formatReply(r.mail), '550 5.7.1 Sender rejected');
      assert.deepEqual(r.recipients, [r.mail, r.mail]);
      assert.equal(r.data, undefined);
      assert.equal(c.usable, true);
      const next = await c.send(envelope(['a@dest.test']), body(MESSAGE));
      assert.equal(next.mail.code, 550, 'the connection still works');
      await c.quit();
      await sink.close();
    }
  });

  it('returns no data reply when every recipient is refused, and does not send the content', async () => {
    for (const chunking of [false, true]) {
      const sink = await startSink({ rcptReply: () => '550 5.1.1 No such user', extensions: { chunking } });
      const c = await connectTo(sink);
      const r = await c.send(envelope(['gone@dest.test', 'gone2@dest.test']), body(MESSAGE));
      assert.equal(r.data, undefined);
      assert.deepEqual(
        r.recipients.map((x) => x.code),
        [550, 550],
      );
      assert.equal(sink.transactions.length, 0);
      assert.ok(!sink.wire().includes('Hello.'), 'no content on the wire');
      await c.quit();
      await sink.close();
    }
  });

  it('applies a failing DATA reply to the accepted recipients', async () => {
    const sink = await startSink({
      extensions: { chunking: false },
      dataReply: () => '554 5.7.1 Message rejected as spam',
    });
    const c = await connectTo(sink);
    const r = await c.send(envelope(['a@dest.test']), body(MESSAGE));
    assert.equal(r.recipients[0]!.code, 250);
    assert.equal(formatReply(r.data!), '554 5.7.1 Message rejected as spam');
    assert.equal(c.messagesSent, 0);
    assert.equal(c.usable, true);
    await c.quit();
    await sink.close();
  });

  it('hands a 421 to the rest of the recipients and marks the connection unusable', async () => {
    for (const pipelining of [true, false]) {
      let n = 0;
      const sink = await startSink({
        extensions: { pipelining, chunking: false },
        rcptReply: () => (++n === 2 ? '421 4.3.2 Shutting down' : '250 2.1.5 Ok'),
      });
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test', 'b@dest.test', 'c@dest.test']), body(MESSAGE));
      assert.deepEqual(
        r.recipients.map((x) => formatReply(x)),
        ['250 2.1.5 Ok', '421 4.3.2 Shutting down', '421 4.3.2 Shutting down'],
      );
      assert.equal(r.data?.code, 421, 'the accepted recipient gets the 421 too');
      assert.equal(c.usable, false);
      await assert.rejects(c.send(envelope(['a@dest.test']), body(MESSAGE)), {
        stage: 'mail',
        status: '4.3.2',
      });
      await c.quit();
      await sink.close();
    }
  });
});
