import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { bareLineEnding, body, cleanup, connectTo, envelope, startSink } from './fixtures.ts';

/** Lines a smuggler would like to see on the wire as the end of data. */
const HOSTILE =
  'Subject: framing\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n' +
  'bare lf\n.\nbare cr\r.\rmixed\r\n.\nlf then dot\n.\r\nMAIL FROM:<x@evil.test>\r\n.';

/** What HOSTILE must arrive as: every line ending CRLF, and a final CRLF added. */
const HOSTILE_NORMALISED =
  'Subject: framing\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n' +
  'bare lf\r\n.\r\nbare cr\r\n.\r\nmixed\r\n.\r\nlf then dot\r\n.\r\nMAIL FROM:<x@evil.test>\r\n.\r\n';

/** DATA dot-stuffing, BDAT chunks, and the bytes on the wire. */
describe('outbound content framing', () => {
  afterEach(cleanup);

  for (const pieceSize of [1, 3, 64 * 1024]) {
    it(`dot-stuffs DATA and never puts a bare CR or LF on the wire (body in ${pieceSize}-byte pieces)`, async () => {
      const sink = await startSink({ extensions: { chunking: false } });
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test']), body(HOSTILE, pieceSize));
      assert.equal(r.data?.code, 250);
      assert.equal(sink.transactions.length, 1, 'one transaction: nothing in the content ended it early');
      const tx = sink.transactions[0]!;
      assert.equal(tx.body.toString('latin1'), HOSTILE_NORMALISED, 'the dots round-trip');
      assert.ok(
        tx.raw.toString('latin1').includes('\r\n...two dots\r\n..\r\nnot the end'),
        'lines starting with a dot got another',
      );
      assert.ok(tx.raw.toString('latin1').endsWith('\r\n..\r\n.\r\n'));
      assert.equal(bareLineEnding(sink.wire()), -1, 'no bare CR or LF anywhere on the wire');
      await c.quit();
      await sink.close();
    });
  }

  it('adds the missing CRLF at the end, and sends an empty body as just the terminator', async () => {
    const sink = await startSink({ extensions: { chunking: false } });
    const c = await connectTo(sink);
    await c.send(envelope(['a@dest.test']), body('Subject: x\r\n\r\nno newline at the end'));
    await c.send(envelope(['a@dest.test']), body(''));
    await c.send(envelope(['a@dest.test']), body('ends in a CR\r'));
    assert.equal(sink.transactions[0]!.raw.toString(), 'Subject: x\r\n\r\nno newline at the end\r\n.\r\n');
    assert.equal(sink.transactions[1]!.raw.toString(), '.\r\n');
    assert.equal(sink.transactions[2]!.raw.toString(), 'ends in a CR\r\n.\r\n');
    await c.quit();
    await sink.close();
  });

  it('sends BDAT chunks of the configured size with LAST on the final one, without dot-stuffing', async () => {
    const sink = await startSink({});
    const c = await connectTo(sink, { bdatChunkSize: 100 });
    const content = `Subject: chunks\r\n\r\n${'.line starting with a dot\r\n'.repeat(20)}`;
    const r = await c.send(envelope(['a@dest.test']), body(content, 7));
    assert.equal(r.data?.code, 250);
    const tx = sink.transactions[0]!;
    assert.equal(tx.method, 'BDAT');
    assert.equal(tx.body.toString(), content, 'sent as it is: no dots added');
    assert.ok(tx.chunks.length > 5);
    assert.ok(tx.chunks.slice(0, -1).every((n) => n === 100));
    const bdats = sink.connections[0]!.commands.filter((l) => l.startsWith('BDAT'));
    assert.equal(bdats.at(-1), `BDAT ${tx.chunks.at(-1)} LAST`);
    assert.ok(bdats.slice(0, -1).every((l) => l === 'BDAT 100'));
    assert.equal(bareLineEnding(sink.wire()), -1);
    await c.quit();
    await sink.close();
  });

  it('pipelines BDAT chunks when the peer offers PIPELINING, and waits for each reply when not', async () => {
    for (const pipelining of [true, false]) {
      let receivedAtSecondChunk = 0;
      const sink = await startSink({
        extensions: { pipelining },
        delay: { bdat: 50 },
        bdatReply: (i) => {
          if (i === 1) receivedAtSecondChunk = sink.connections[0]!.bytesReceived;
          return '250 2.0.0 Ok';
        },
      });
      const c = await connectTo(sink, { bdatChunkSize: 1000 });
      const r = await c.send(envelope(['a@dest.test']), body('x'.repeat(998).concat('\r\n').repeat(6)));
      assert.equal(r.data?.code, 250);
      assert.equal(sink.transactions[0]!.chunks.length, 7);
      // The second chunk is read 50 ms after the first (its reply is held back that long). By
      // then a pipelining client has sent all seven; a waiting one only the second.
      const total = sink.connections[0]!.bytesReceived;
      const quitLine = 'QUIT\r\n'.length;
      if (pipelining)
        assert.ok(receivedAtSecondChunk >= total - quitLine, `${receivedAtSecondChunk} of ${total} bytes`);
      else assert.ok(receivedAtSecondChunk < total - 4000, `${receivedAtSecondChunk} of ${total} bytes`);
      await c.quit();
      await sink.close();
    }
  });

  it('normalises bare CR and LF in BDAT text bodies, and sends BINARYMIME exactly as stored', async () => {
    const sink = await startSink({});
    const c = await connectTo(sink);
    await c.send(envelope(['a@dest.test']), body('a\nb\rc\r\n'));
    const binary = Buffer.from([0x00, 0x0a, 0x0d, 0xff, 0x0d, 0x0a, 0x2e, 0x0a]);
    await c.send(envelope(['a@dest.test'], { bodyType: 'BINARYMIME', size: binary.length }), body(binary, 3));
    assert.equal(sink.transactions[0]!.body.toString(), 'a\r\nb\r\nc\r\n');
    assert.deepEqual(sink.transactions[1]!.body, binary);
    assert.equal(sink.transactions[1]!.mailParams.BODY, 'BINARYMIME');
    await c.quit();
    await sink.close();
  });

  it('uses DATA instead of BDAT when chunking is turned off, unless the message is BINARYMIME', async () => {
    const sink = await startSink({});
    const c = await connectTo(sink, { chunking: false });
    await c.send(envelope(['a@dest.test']), body('text\r\n'));
    await c.send(envelope(['a@dest.test'], { bodyType: 'BINARYMIME' }), body('bin\r\n'));
    assert.deepEqual(
      sink.transactions.map((t) => t.method),
      ['DATA', 'BDAT'],
    );
    await c.quit();
    await sink.close();
  });

  it('stops after a refused BDAT chunk, returns that reply and resets before the next message', async () => {
    const sink = await startSink({ bdatReply: (i) => (i === 1 ? '552 5.3.4 Too much' : '250 2.0.0 Ok') });
    const c = await connectTo(sink, { bdatChunkSize: 10 });
    const r = await c.send(envelope(['a@dest.test']), body('y'.repeat(200)));
    assert.equal(r.data?.code, 552);
    assert.equal(c.usable, true);
    const next = await c.send(envelope(['b@dest.test']), body('short\r\n'));
    assert.equal(next.data?.code, 250);
    const commands = sink.connections[0]!.commands;
    assert.ok(commands.includes('RSET'));
    assert.ok(
      commands.filter((l) => l.startsWith('BDAT 10')).length < 20,
      'the rest of the body was not sent',
    );
    await c.quit();
    await sink.close();
  });

  it('streams a large body with back pressure: reading the body keeps pace with the peer', async () => {
    const sink = await startSink({ extensions: { chunking: false, size: 0 }, keepContent: false });
    const c = await connectTo(sink);
    const block = Buffer.from(`${'z'.repeat(76)}\r\n`.repeat(1000)); // 78 KB
    const blocks = 800; // 62 MB
    let produced = 0;
    let maxAhead = 0;
    const source = () =>
      new Readable({
        read() {
          maxAhead = Math.max(maxAhead, produced * block.length - sink.connections[0]!.bytesReceived);
          if (produced++ >= blocks) return this.push(null);
          this.push(block);
        },
      });
    const r = await c.send(envelope(['a@dest.test'], { size: block.length * blocks }), source);
    assert.equal(r.data?.code, 250);
    assert.equal(sink.transactions[0]!.size, block.length * blocks);
    // Without waiting for drain the whole body would be read at once (62 MB ahead of the peer).
    assert.ok(maxAhead < 24 * 1024 * 1024, `the body was read ${maxAhead} bytes ahead of the peer`);
  });
});
