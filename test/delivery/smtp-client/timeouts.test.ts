import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, afterEach, describe, it } from 'node:test';
import type { SmtpClientError } from '../../../src/delivery/smtp/client/index.ts';
import { body, cleanup, connectTo, envelope, MESSAGE, startRawPeer, startSink } from './fixtures.ts';

async function timesOut(promise: Promise<unknown>, stage: string, withinMs: number): Promise<void> {
  const started = Date.now();
  await assert.rejects(promise, (e: SmtpClientError) => {
    assert.equal(e.stage, stage, e.message);
    assert.equal(e.status, '4.4.2');
    assert.equal(e.permanent, false);
    return true;
  });
  assert.ok(Date.now() - started < withinMs, `took ${Date.now() - started} ms`);
}

/** Every wait has a limit (RFC 5321 §4.5.3.2): a silent peer costs a timeout, never a hang. */
describe('outbound SMTP timeouts', () => {
  afterEach(cleanup);
  after(cleanup);

  it('gives up on a peer that never greets', async () => {
    const peer = await startRawPeer(() => undefined);
    await timesOut(connectTo(peer.port, { timeouts: { greeting: 200 } }), 'greeting', 2000);
  });

  it('gives up on a reply that does not come, and the connection is no longer usable', async () => {
    const sink = await startSink({ delay: { rcpt: 3000 } });
    const c = await connectTo(sink, { timeouts: { command: 200 } });
    await timesOut(c.send(envelope(['a@dest.test']), body(MESSAGE)), 'rcpt', 2000);
    assert.equal(c.usable, false);
  });

  it('waits dataEnd, not the command timeout, for the reply to the end of data', async () => {
    for (const chunking of [false, true]) {
      const slow = await startSink({ delay: { dot: 400 }, extensions: { chunking } });
      const c = await connectTo(slow, { timeouts: { command: 200, dataEnd: 2000 } });
      const r = await c.send(envelope(['a@dest.test']), body(MESSAGE));
      assert.equal(r.data?.code, 250, 'a 400 ms wait is within dataEnd');
      const slower = await startSink({ delay: { dot: 3000 }, extensions: { chunking } });
      const d = await connectTo(slower, { timeouts: { dataEnd: 200 } });
      await timesOut(d.send(envelope(['a@dest.test']), body(MESSAGE)), 'data', 2000);
    }
  });

  it('does not count the time spent streaming the content against the end-of-data timeout', async () => {
    const sink = await startSink({ extensions: { chunking: false } });
    const c = await connectTo(sink, { timeouts: { dataEnd: 150 } });
    let n = 0;
    const slowBody = () =>
      new Readable({
        read() {
          if (n++ === 6) return this.push(null);
          setTimeout(() => this.push(Buffer.from('line\r\n')), 50);
        },
      });
    const r = await c.send(envelope(['a@dest.test']), slowBody);
    assert.equal(r.data?.code, 250);
  });

  it('gives up on a peer that stops reading the content (dataChunk)', async () => {
    const peer = await startRawPeer((socket, onLine) => {
      socket.write('220 hi\r\n');
      onLine((line) => {
        if (line === 'DATA') {
          socket.write('354 go\r\n');
          socket.pause();
        } else if (!socket.isPaused()) socket.write('250 ok\r\n');
      });
    });
    const c = await connectTo(peer.port, { timeouts: { dataChunk: 300 } });
    const big = Buffer.from(`${'q'.repeat(1022)}\r\n`.repeat(1024)); // 1 MB a piece
    const endless = () =>
      new Readable({
        read() {
          this.push(big);
        },
      });
    await timesOut(c.send(envelope(['a@dest.test'], { size: 1 }), endless), 'data', 5000);
  });

  it('gives up on a TLS handshake that never progresses', async () => {
    const peer = await startRawPeer((socket, onLine) => {
      socket.write('220 hi\r\n');
      onLine((line) => {
        if (line.startsWith('EHLO')) socket.write('250-hi\r\n250 STARTTLS\r\n');
        if (line === 'STARTTLS') socket.write('220 go ahead\r\n');
      });
    });
    await timesOut(
      connectTo(peer.port, { tls: { mode: 'required', verify: 'none' }, timeouts: { command: 200 } }),
      'tls',
      2000,
    );
  });

  it('reports a connect timeout at stage connect (4.4.1: no answer from host)', async () => {
    const started = Date.now();
    // TEST-NET-1 (RFC 5737) is never routed: the SYN goes nowhere (or the network says unreachable).
    await assert.rejects(connectTo(0, { address: '192.0.2.1', port: 25, timeouts: { connect: 300 } }), {
      stage: 'connect',
      status: '4.4.1',
    });
    assert.ok(Date.now() - started < 3000);
  });

  it('stops at once when the signal aborts, and quit() on a silent peer returns without throwing', async () => {
    const sink = await startSink({ delay: { rcpt: 5000 } });
    const controller = new AbortController();
    const c = await connectTo(sink, { signal: controller.signal, timeouts: { command: 4000 } });
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    await assert.rejects(c.send(envelope(['a@dest.test']), body(MESSAGE)), { status: '4.3.2' });
    assert.ok(Date.now() - started < 2000, 'long before the command timeout');
    const silent = await startSink({ delay: { quit: 5000 } });
    const d = await connectTo(silent, { timeouts: { command: 200 } });
    const quitStarted = Date.now();
    await d.quit();
    assert.ok(Date.now() - quitStarted < 1000);
    assert.equal(d.usable, false);
  });
});
