import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Readable } from 'node:stream';
import { after, afterEach, describe, it } from 'node:test';
import { SmtpClientError } from '../../../src/delivery/smtp/client/index.ts';
import { body, cleanup, connectTo, envelope, MESSAGE, startRawPeer, startSink } from './fixtures.ts';

/** A peer that greets with `greeting` (raw bytes) and answers EHLO with `ehlo`. */
function scripted(greeting: string | Buffer, ehlo = '250 ok\r\n') {
  return startRawPeer((socket, onLine) => {
    socket.write(greeting);
    onLine((line) => {
      if (line.startsWith('EHLO') && !socket.destroyed) socket.write(ehlo);
    });
  });
}

async function protocolError(port: number, stage = 'protocol'): Promise<SmtpClientError> {
  let caught: SmtpClientError | undefined;
  await assert.rejects(connectTo(port), (e: SmtpClientError) => {
    assert.ok(e instanceof SmtpClientError, String(e));
    caught = e;
    return true;
  });
  assert.equal(caught!.stage, stage);
  assert.equal(caught!.status, '4.5.0');
  assert.equal(caught!.permanent, false);
  return caught!;
}

/** Peers that break the protocol: the client fails cleanly, in bounded time and memory. */
describe('outbound SMTP against hostile peers', () => {
  afterEach(cleanup);
  after(cleanup);

  it('reads replies delivered a byte at a time, with bare LF line ends and UTF-8 text', async () => {
    const dribble = async (socket: import('node:net').Socket, text: string) => {
      for (const byte of Buffer.from(text, 'utf8')) {
        if (socket.destroyed) return;
        socket.write(Buffer.from([byte]));
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    const peer = await startRawPeer((socket, onLine) => {
      void dribble(socket, '220-mx.example.test\n220 Grüße\r\n');
      onLine((line) => {
        if (line.startsWith('EHLO'))
          void dribble(socket, '250-mx.example.test\r\n250-SIZE 1000\n250 8BITMIME\r\n');
      });
    });
    const c = await connectTo(peer.port);
    assert.deepEqual(c.greeting.lines, ['mx.example.test', 'Grüße']);
    assert.deepEqual([...c.extensions.keys()], ['SIZE', '8BITMIME']);
  });

  it('rejects a reply line longer than 4096 bytes, with or without its CRLF', async () => {
    const long = await scripted(`220 ${'a'.repeat(5000)}\r\n`);
    await protocolError(long.port);
    const endless = await startRawPeer((socket) => {
      const junk = Buffer.alloc(64 * 1024, 0x61);
      socket.write('220');
      const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(junk)), 5);
    });
    const e = await protocolError(endless.port);
    assert.match(e.message, /longer than 4096 bytes/);
  });

  it('rejects a reply of more than 500 lines', async () => {
    const peer = await scripted('220 hi\r\n', `${'250-X\r\n'.repeat(600)}250 end\r\n`);
    const e = await protocolError(peer.port);
    assert.match(e.message, /more than 500 lines/);
  });

  it('rejects a multi-line reply that never ends (total size capped)', async () => {
    const peer = await startRawPeer((socket) => {
      const line = `220-${'b'.repeat(4000)}\r\n`;
      const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(line)), 1);
    });
    const e = await protocolError(peer.port);
    assert.match(e.message, /reply longer than 65536 bytes/);
  });

  it('rejects malformed reply codes and a code that changes inside a multi-line reply', async () => {
    for (const greeting of [
      'hello there\r\n',
      '600 nope\r\n',
      '2200 x\r\n',
      '22 x\r\n',
      '220x\r\n',
      '\r\n',
      '220-a\r\n221 b\r\n',
    ]) {
      const peer = await scripted(greeting);
      const e = await protocolError(peer.port);
      assert.ok(e.message.length < 300);
    }
  });

  it('treats replies nobody asked for as a protocol error, at the greeting and while idle', async () => {
    const early = await scripted('220 hi\r\n250 surprise\r\n');
    await protocolError(early.port);
    let client: import('node:net').Socket | undefined;
    const idle = await startRawPeer((socket, onLine) => {
      client = socket;
      socket.write('220 hi\r\n');
      onLine((line) => {
        if (line.startsWith('EHLO')) socket.write('250 ok\r\n');
      });
    });
    const c = await connectTo(idle.port);
    assert.equal(c.usable, true);
    client!.write('250 unsolicited\r\n');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(c.usable, false);
    await assert.rejects(c.send(envelope(['a@dest.test']), body(MESSAGE)), {
      name: 'SmtpClientError',
      stage: 'mail',
    });
  });

  it('reports connection refused at stage connect with 4.4.1', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(connectTo(port), (e: SmtpClientError) => {
      assert.equal(e.stage, 'connect');
      assert.equal(e.status, '4.4.1');
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    });
  });

  it('reports the peer closing in the middle of DATA, or before its final reply, as 4.4.2', async () => {
    for (const at of ['body', 'dot'] as const) {
      for (const chunking of [false, true]) {
        const sink = await startSink({ drop: { at }, extensions: { chunking } });
        const c = await connectTo(sink);
        await assert.rejects(
          c.send(envelope(['a@dest.test']), body(`${'x'.repeat(1000)}\r\n`.repeat(100))),
          (e: SmtpClientError) => {
            assert.equal(e.stage, 'data', `${at}, chunking ${chunking}: ${e.message}`);
            assert.equal(e.status, '4.4.2');
            return true;
          },
        );
        assert.equal(c.usable, false);
      }
    }
  });

  it('reports the peer closing without a reply to MAIL or RCPT as 4.4.2', async () => {
    for (const at of ['mail', 'rcpt'] as const) {
      const sink = await startSink({ drop: { at } });
      const c = await connectTo(sink);
      await assert.rejects(c.send(envelope(['a@dest.test']), body(MESSAGE)), { status: '4.4.2', stage: at });
    }
  });

  it('reports a connection lost at the RSET before a transaction as stage mail (a pooled connection can be replaced)', async () => {
    const sink = await startSink({ drop: { at: 'rset' }, rcptReply: () => '550 5.1.1 No such user' });
    const c = await connectTo(sink);
    const first = await c.send(envelope(['gone@dest.test']), body(MESSAGE));
    assert.equal(first.data, undefined);
    await assert.rejects(c.send(envelope(['a@dest.test']), body(MESSAGE)), {
      stage: 'mail',
      status: '4.4.2',
    });
  });

  it('gives the content a 421 final reply as its result and marks the connection unusable', async () => {
    for (const chunking of [false, true]) {
      const sink = await startSink({
        extensions: { chunking },
        dataReply: () => '421 4.4.2 Timeout, closing',
      });
      const c = await connectTo(sink);
      const r = await c.send(envelope(['a@dest.test']), body(MESSAGE));
      assert.equal(r.data?.code, 421);
      assert.equal(c.usable, false);
      assert.equal(c.messagesSent, 0);
    }
  });

  it('throws a 421 to EHLO as an error carrying the reply', async () => {
    const peer = await scripted('220 hi\r\n', '421 4.7.0 Too many connections\r\n');
    await assert.rejects(connectTo(peer.port), (e: SmtpClientError) => {
      assert.equal(e.stage, 'ehlo');
      assert.equal(e.status, '4.7.0');
      assert.equal(e.reply?.code, 421);
      return true;
    });
  });

  it('takes a refusal sent in the middle of the content as the result, and closes', async () => {
    const peer = await startRawPeer((socket, onLine) => {
      socket.write('220 hi\r\n');
      let inData = false;
      onLine((line) => {
        if (inData) return;
        if (line.startsWith('EHLO')) socket.write('250 ok\r\n');
        else if (line.startsWith('MAIL') || line.startsWith('RCPT')) socket.write('250 ok\r\n');
        else if (line === 'DATA') {
          inData = true;
          socket.write('354 go\r\n');
          setTimeout(() => socket.end('552 5.3.4 Message too big for me\r\n'), 30);
        }
      });
    });
    const c = await connectTo(peer.port);
    let produced = 0;
    const endless = () =>
      new Readable({
        read() {
          produced++;
          setTimeout(() => this.push(Buffer.from(`${'y'.repeat(998)}\r\n`.repeat(10))), 1);
        },
      });
    const r = await c.send(envelope(['a@dest.test']), endless);
    assert.equal(r.data?.code, 552);
    assert.equal(c.usable, false);
    assert.ok(produced < 100_000);
  });

  it('survives peers sending random bytes: an error every time, never a crash or a hang', async () => {
    for (let i = 0; i < 30; i++) {
      const noise = randomBytes(1 + ((i * 37) % 3000));
      const peer = await startRawPeer((socket) => {
        socket.write(noise);
        setTimeout(() => socket.destroy(), 50);
      });
      await assert.rejects(connectTo(peer.port, { timeouts: { greeting: 2000 } }), SmtpClientError);
    }
  });
});
