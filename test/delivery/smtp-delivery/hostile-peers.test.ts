import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { removeDir, startTestNode } from '../../helpers/node-fixture.ts';
import { attempted, outboundConfig, submit, waitForQueued } from './outbound-fixture.ts';

/**
 * Whatever a remote server sends — garbage, a reply that never ends, a banner of megabytes, a
 * connection that closes in the middle of the data — the recipient is deferred with a recorded
 * reason, the message stays queued, and the node goes on serving.
 */
describe('hostile next hops', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function peer(onConnection: (socket: Socket) => void): Promise<number> {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
      onConnection(socket);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    return (server.address() as { port: number }).port;
  }

  async function deferredBy(port: number, commandTimeout = '2s'): Promise<string> {
    const { dir, config } = await outboundConfig([
      {
        name: 'SmartHost',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${port}`] },
        limits: { commandTimeout, connectTimeout: '2s' },
      },
    ]);
    const t = await startTestNode({ dir, config });
    cleanups.push(async () => {
      await t.stop();
      await removeDir(dir);
    });
    const id = await submit(t.port('Relay'), 'app@example.test', ['x@remote.test']);
    const message = await waitForQueued((m) => t.node.store.getMessage(m), id, attempted);
    const r = message.recipients[0]!;
    assert.equal(r.status, 'pending', `deferred, not ${r.status}`);
    // The node still takes mail after the bad peer.
    await submit(t.port('Default'), 'someone@remote.test', ['bob@example.test']);
    return r.lastResponse ?? '';
  }

  it('defers on a greeting that is not SMTP', async () => {
    const port = await peer((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    assert.match(await deferredBy(port), /^4\d\d 4\.\d\.\d /);
  });

  it('defers on a multi-line reply that never ends', async () => {
    const port = await peer((s) => {
      const flood = () => {
        if (s.destroyed) return;
        if (s.write('220-still talking\r\n'.repeat(500))) setImmediate(flood);
        else s.once('drain', flood);
      };
      flood();
    });
    assert.match(await deferredBy(port), /^4\d\d 4\.\d\.\d /);
  });

  it('defers on a banner line of megabytes without a line end', async () => {
    const port = await peer((s) => s.write(`220 ${'x'.repeat(4 * 1024 * 1024)}`));
    assert.match(await deferredBy(port), /^4\d\d 4\.\d\.\d /);
  });

  it('defers when the peer closes the connection in the middle of the data', async () => {
    const port = await peer((s) => {
      s.write('220 peer ESMTP\r\n');
      let inData = false;
      s.on('data', (chunk) => {
        const text = chunk.toString('latin1');
        if (inData) {
          s.destroy();
          return;
        }
        for (const line of text.split('\r\n').filter(Boolean)) {
          if (/^EHLO/i.test(line)) s.write('250-peer\r\n250 8BITMIME\r\n');
          else if (/^(MAIL|RCPT)/i.test(line)) s.write('250 2.1.0 Ok\r\n');
          else if (/^DATA/i.test(line)) {
            s.write('354 go ahead\r\n');
            inData = true;
          }
        }
      });
    });
    assert.match(await deferredBy(port), /^4\d\d 4\.4\.2 /);
  });

  it('defers when the peer goes silent (command timeout)', async () => {
    const port = await peer((s) => s.write('220 peer ESMTP\r\n'));
    assert.match(await deferredBy(port, '500ms'), /^4\d\d 4\.4\.2 /);
  });
});
