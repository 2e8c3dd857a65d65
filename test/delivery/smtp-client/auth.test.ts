import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { SmtpClientError } from '../../../src/delivery/smtp/client/index.ts';
import { body, cleanup, connectTo, envelope, MESSAGE, startSink, type TestPki, testPki } from './fixtures.ts';

const SECRET = 'S3cret-pässword';
const check = (username: string, password: string) => username === 'relay@origin.test' && password === SECRET;
const tlsOn = { mode: 'required', verify: 'none' } as const;

/** AUTH PLAIN and LOGIN (RFC 4954), never in the clear unless allowed, never leaking the secret. */
describe('outbound AUTH', () => {
  let pki: TestPki;
  before(async () => {
    pki = await testPki();
  });
  afterEach(cleanup);
  after(cleanup);

  it('authenticates with PLAIN when offered (preferred over LOGIN), after TLS', async () => {
    const sink = await startSink({ tls: pki.selfSigned, auth: { check } });
    const c = await connectTo(sink, {
      tls: tlsOn,
      auth: { username: 'relay@origin.test', password: SECRET },
    });
    assert.equal(c.authenticated, 'relay@origin.test');
    await c.send(envelope(['a@dest.test']), body(MESSAGE));
    assert.deepEqual(sink.connections[0]!.authAttempts, [
      { mechanism: 'PLAIN', username: 'relay@origin.test', ok: true },
    ]);
    assert.equal(sink.transactions[0]!.authUser, 'relay@origin.test');
  });

  it('authenticates with LOGIN when only LOGIN is offered, or only LOGIN is allowed', async () => {
    const onlyLogin = await startSink({ tls: pki.selfSigned, auth: { check, mechanisms: ['LOGIN'] } });
    const c = await connectTo(onlyLogin, {
      tls: tlsOn,
      auth: { username: 'relay@origin.test', password: SECRET },
    });
    assert.equal(c.authenticated, 'relay@origin.test');
    assert.equal(onlyLogin.connections[0]!.authAttempts[0]!.mechanism, 'LOGIN');
    const both = await startSink({ tls: pki.selfSigned, auth: { check } });
    await connectTo(both, {
      tls: tlsOn,
      auth: { username: 'relay@origin.test', password: SECRET, mechanisms: ['LOGIN'] },
    });
    assert.equal(both.connections[0]!.authAttempts[0]!.mechanism, 'LOGIN');
  });

  it('reports 535 as stage auth, 5.7.8, not permanent, without the password anywhere in the error', async () => {
    const sink = await startSink({ tls: pki.selfSigned, auth: { check } });
    for (const mechanism of ['PLAIN', 'LOGIN'] as const) {
      await assert.rejects(
        connectTo(sink, {
          tls: tlsOn,
          auth: { username: 'relay@origin.test', password: 'wrong-secret', mechanisms: [mechanism] },
        }),
        (e: SmtpClientError) => {
          assert.equal(e.stage, 'auth');
          assert.equal(e.status, '5.7.8');
          assert.equal(e.permanent, false);
          assert.equal(e.reply?.code, 535);
          const everything = JSON.stringify({
            message: e.message,
            stack: e.stack,
            reply: e.reply,
            cause: String(e.cause),
          });
          assert.ok(!everything.includes('wrong-secret'));
          assert.ok(!everything.includes(Buffer.from('wrong-secret').toString('base64')));
          assert.ok(
            !everything.includes(Buffer.from('\0relay@origin.test\0wrong-secret').toString('base64')),
          );
          return true;
        },
      );
    }
  });

  it('does not send credentials without TLS, unless plaintext AUTH is allowed', async () => {
    const sink = await startSink({ auth: { check, requireTls: false } });
    await assert.rejects(
      connectTo(sink, { auth: { username: 'relay@origin.test', password: SECRET } }),
      (e: SmtpClientError) => {
        assert.equal(e.stage, 'auth');
        assert.match(e.message, /without TLS/);
        return true;
      },
    );
    assert.ok(!sink.wire(0).toString('latin1').includes('AUTH'), 'no AUTH command went out');
    const c = await connectTo(sink, {
      allowPlaintextAuth: true,
      auth: { username: 'relay@origin.test', password: SECRET },
    });
    assert.equal(c.authenticated, 'relay@origin.test');
  });

  it('fails at stage auth when credentials are configured but the peer offers no usable mechanism', async () => {
    const none = await startSink({ tls: pki.selfSigned });
    await assert.rejects(connectTo(none, { tls: tlsOn, auth: { username: 'u', password: SECRET } }), {
      stage: 'auth',
      status: '4.7.0',
    });
    const other = await startSink({ tls: pki.selfSigned, extraEhloLines: ['AUTH CRAM-MD5'] });
    await assert.rejects(connectTo(other, { tls: tlsOn, auth: { username: 'u', password: SECRET } }), {
      stage: 'auth',
      message: /offers AUTH CRAM-MD5/,
    });
  });

  it('keeps credentials out of the protocol log, which has every command and reply otherwise', async () => {
    const sink = await startSink({ tls: pki.selfSigned, auth: { check } });
    for (const mechanism of ['PLAIN', 'LOGIN'] as const) {
      const log: string[] = [];
      const c = await connectTo(sink, {
        tls: tlsOn,
        auth: { username: 'relay@origin.test', password: SECRET, mechanisms: [mechanism] },
        protocolLog: (direction, text) => log.push(`${direction} ${text}`),
      });
      await c.send(envelope(['a@dest.test']), body(MESSAGE));
      const text = log.join('\n');
      assert.ok(log.includes('out STARTTLS'));
      assert.ok(log.includes('out RCPT TO:<a@dest.test>'));
      assert.ok(log.includes('in 235 2.7.0 Authentication successful'));
      assert.ok(!text.includes(SECRET));
      assert.ok(!text.includes(Buffer.from(SECRET).toString('base64')));
      assert.ok(
        !text.includes(Buffer.from('relay@origin.test').toString('base64')),
        'not even the user name in base64',
      );
      assert.ok(!text.includes('Hello.'), 'no content');
    }
  });
});
