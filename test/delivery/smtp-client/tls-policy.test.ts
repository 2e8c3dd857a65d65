import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { nameMatches, type SmtpClientError } from '../../../src/delivery/smtp/client/index.ts';
import { body, cleanup, connectTo, envelope, MESSAGE, startSink, type TestPki, testPki } from './fixtures.ts';

/** A raw peer: greets, offers STARTTLS, and then does what `onStartTls` says. */
async function rawStartTlsPeer(
  onStartTls: (socket: Socket) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.write('220 raw.test ESMTP\r\n');
    socket.on('data', (d) => {
      const text = d.toString('latin1');
      if (text.startsWith('EHLO')) socket.write('250-raw.test\r\n250 STARTTLS\r\n');
      else if (text.startsWith('STARTTLS')) onStartTls(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** STARTTLS per mode, implicit TLS, and the certificate checks. */
describe('outbound TLS policy', () => {
  let pki: TestPki;
  before(async () => {
    pki = await testPki();
  });
  afterEach(cleanup);
  after(cleanup);

  it('opportunistic: uses STARTTLS when offered, then EHLOs again and forgets the plaintext keywords', async () => {
    const sink = await startSink({ tls: pki.selfSigned, auth: { check: () => true } });
    const c = await connectTo(sink, { tls: { mode: 'opportunistic', verify: 'none' } });
    assert.equal(c.secure.tls, true);
    if (c.secure.tls) {
      assert.match(c.secure.protocol, /^TLSv1\.[23]$/);
      assert.equal(c.secure.authorized, false, 'self-signed');
      assert.deepEqual(c.secure.peerNames, ['mx.example.test']);
    }
    assert.ok(!c.extensions.has('STARTTLS'), 'the post-TLS EHLO is what counts');
    assert.ok(c.extensions.has('AUTH'), 'keywords offered only over TLS are seen');
    assert.deepEqual(sink.connections[0]!.commands, [
      'EHLO client.origin.test',
      'STARTTLS',
      'EHLO client.origin.test',
    ]);
    await c.send(envelope(['a@dest.test']), body(MESSAGE));
    assert.equal(sink.transactions[0]!.tls, true);
  });

  it('opportunistic: stays in plaintext when STARTTLS is not offered, or refused', async () => {
    const plain = await startSink({});
    const c = await connectTo(plain, { tls: { mode: 'opportunistic', verify: 'none' } });
    assert.equal(c.secure.tls, false);
    const refusing = await startSink({
      tls: { ...pki.selfSigned, starttlsReply: '454 4.7.0 TLS not available' },
    });
    const d = await connectTo(refusing, { tls: { mode: 'opportunistic', verify: 'none' } });
    assert.equal(d.secure.tls, false);
    await d.send(envelope(['a@dest.test']), body(MESSAGE));
    assert.equal(refusing.transactions[0]!.tls, false);
  });

  it('required: a peer without STARTTLS is a transient 4.7.4 error, and nothing is sent', async () => {
    const sink = await startSink({});
    await assert.rejects(
      connectTo(sink, { tls: { mode: 'required', verify: 'none' } }),
      (e: SmtpClientError) => {
        assert.equal(e.stage, 'starttls');
        assert.equal(e.status, '4.7.4');
        assert.equal(e.permanent, false);
        return true;
      },
    );
    const refusing = await startSink({
      tls: { ...pki.selfSigned, starttlsReply: '454 4.7.0 TLS not available' },
    });
    await assert.rejects(connectTo(refusing, { tls: { mode: 'required', verify: 'none' } }), {
      stage: 'starttls',
      status: '4.7.0',
      permanent: false,
    });
    assert.ok(!sink.connections[0]!.commands.some((l) => l.startsWith('MAIL')));
  });

  it('implicit: speaks TLS from the first byte', async () => {
    const sink = await startSink({ tls: { ...pki.leaf, implicit: true } });
    const c = await connectTo(sink, { tls: { mode: 'implicit', verify: 'domain', ca: pki.ca } });
    assert.equal(c.secure.tls && c.secure.authorized, true);
    await c.send(envelope(['a@dest.test']), body(MESSAGE));
    assert.equal(sink.transactions[0]!.tls, true);
    assert.deepEqual(sink.connections[0]!.commands, [
      'EHLO client.origin.test',
      'MAIL FROM:<sender@origin.test> SIZE=100',
      'RCPT TO:<a@dest.test>',
      'BDAT 51 LAST',
    ]);
  });

  it('verify certificate: an untrusted chain is refused with 4.7.5 naming the chain check', async () => {
    const sink = await startSink({ tls: pki.selfSigned });
    await assert.rejects(
      connectTo(sink, { tls: { mode: 'required', verify: 'certificate' } }),
      (e: SmtpClientError) => {
        assert.equal(e.stage, 'tls');
        assert.equal(e.status, '4.7.5');
        assert.match(e.message, /certificate chain check failed/);
        return true;
      },
    );
    assert.ok(
      !sink.connections[0]!.commands.some((l) => l.startsWith('MAIL')),
      'no transaction over an unverified channel',
    );
  });

  it('verify certificate: a chain to a given trust anchor passes, whatever the name', async () => {
    const sink = await startSink({ tls: pki.leaf });
    const c = await connectTo(sink, {
      host: 'other.test',
      tls: { mode: 'required', verify: 'certificate', ca: pki.ca },
    });
    assert.equal(c.secure.tls && c.secure.authorized, true);
  });

  it('verify domain: the name must match, and a mismatch is 4.7.5 naming the name check', async () => {
    const sink = await startSink({ tls: pki.leaf });
    await assert.rejects(
      connectTo(sink, { host: 'mx.other.test', tls: { mode: 'required', verify: 'domain', ca: pki.ca } }),
      (e: SmtpClientError) => {
        assert.equal(e.status, '4.7.5');
        assert.match(e.message, /certificate name check failed.*expected mx\.other\.test/);
        return true;
      },
    );
    const ok = await connectTo(sink, { tls: { mode: 'required', verify: 'domain', ca: pki.ca } });
    assert.equal(ok.secure.tls, true);
    const viaWildcard = await connectTo(sink, {
      host: 'mx1.wild.example.test',
      tls: { mode: 'required', verify: 'domain', ca: pki.ca },
    });
    assert.equal(viaWildcard.secure.tls, true);
    const viaMatchNames = await connectTo(sink, {
      host: 'mx.other.test',
      tls: {
        mode: 'required',
        verify: 'domain',
        ca: pki.ca,
        matchNames: ['other.test', 'a.wild.example.test'],
      },
    });
    assert.equal(viaMatchNames.secure.tls, true);
    await assert.rejects(
      connectTo(sink, {
        host: 'a.b.wild.example.test',
        tls: { mode: 'required', verify: 'domain', ca: pki.ca },
      }),
      { status: '4.7.5' },
      'a wildcard covers one label only',
    );
  });

  it('matches RFC 6125 names: wildcard as the whole leftmost label only, one label, no bare suffix', () => {
    assert.equal(nameMatches('*.example.com', 'mx.example.com'), true);
    assert.equal(nameMatches('*.example.com', 'MX.Example.COM.'), true);
    assert.equal(nameMatches('*.example.com', 'example.com'), false);
    assert.equal(nameMatches('*.example.com', 'a.b.example.com'), false);
    assert.equal(nameMatches('mx*.example.com', 'mx1.example.com'), false);
    assert.equal(nameMatches('mx.*.com', 'mx.example.com'), false);
    assert.equal(nameMatches('*.com', 'example.com'), false);
    assert.equal(nameMatches('mx.example.com', 'mx.example.com'), true);
    assert.equal(nameMatches('mx.example.com', 'mx2.example.com'), false);
  });

  it('a peer that closes after its 220 to STARTTLS fails the handshake with 4.7.5', async () => {
    const peer = await rawStartTlsPeer((s) => {
      s.write('220 go ahead\r\n');
      setTimeout(() => s.destroy(), 20);
    });
    try {
      await assert.rejects(connectTo(peer.port, { tls: { mode: 'opportunistic', verify: 'none' } }), {
        stage: 'tls',
        status: '4.7.5',
      });
    } finally {
      await peer.close();
    }
  });

  it('a peer that answers the handshake with garbage fails it with 4.7.5', async () => {
    const peer = await rawStartTlsPeer((s) => {
      s.write('220 go ahead\r\n');
      s.once('data', () => s.write('this is not TLS at all\r\n'.repeat(10)));
    });
    try {
      await assert.rejects(connectTo(peer.port, { tls: { mode: 'required', verify: 'none' } }), {
        stage: 'tls',
        status: '4.7.5',
      });
    } finally {
      await peer.close();
    }
  });

  it('refuses a reply injected behind the 220 to STARTTLS (it would be read as if it came over TLS)', async () => {
    const peer = await rawStartTlsPeer((s) => s.write('220 go ahead\r\n250-injected\r\n'));
    try {
      await assert.rejects(connectTo(peer.port, { tls: { mode: 'required', verify: 'none' } }), {
        stage: 'protocol',
        status: '4.5.0',
      });
    } finally {
      await peer.close();
    }
  });
});
