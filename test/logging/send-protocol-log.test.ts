import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { testPki } from '../delivery/smtp-client/fixtures.ts';
import { outboundConfig, submit } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { removeDir, startTestNode } from '../helpers/node-fixture.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { bySession, type LogRecord, rawText, readLogFolder } from './read-log.ts';

const PASSWORD = 'Sm@rt-Host-Pw-9';
const USER = 'relay-user';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/**
 * A send connector with `protocolLogging: verbose` writes each outbound connection to
 * `SmtpSend/`: the connect (to which host, at which address), every command and reply, TLS,
 * the content's size and the disconnect. AUTH to a smart host shows the mechanism only: the
 * password, its base64 and the user name's base64 never reach the file.
 */
describe('send protocol log', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  /** Relays one message through a TLS + AUTH smart host offering `mechanisms`; returns the log. */
  async function relayThrough(mechanisms: Array<'PLAIN' | 'LOGIN'>, protocolLogging = 'verbose') {
    const pki = await testPki();
    const s = await SmtpSink.start({
      tls: pki.selfSigned,
      auth: { mechanisms, check: (u, p) => u === USER && p === PASSWORD },
    });
    cleanups.push(() => s.close());
    const { dir, config } = await outboundConfig([
      {
        name: 'SmartHost',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${s.port}`] },
        auth: { mode: 'basicRequireTls', username: USER, password: PASSWORD },
        tls: { mode: 'required', validation: 'none' },
        protocolLogging,
      },
    ]);
    const t = await startTestNode({ dir, config });
    cleanups.push(() => removeDir(dir));
    try {
      await submit(
        t.port('Relay'),
        'app@example.test',
        ['x@remote.test'],
        'From: <app@example.test>\r\nSubject: out\r\n\r\nOUTBOUND-BODY-5e1d\r\n',
      );
      await s.waitFor(() => s.transactions.length === 1);
    } finally {
      // Stopping closes the pooled connection with QUIT and flushes the log.
      await t.stop();
    }
    assert.equal(s.transactions[0]!.authUser, USER, 'the smart host got the login');
    const sendDir = join(dir, 'data', 'logs', 'protocol', 'SmtpSend');
    return { sendDir, sink: s, dir };
  }

  const talk = (lines: LogRecord[]) => lines.map((r) => `${r.event} ${r.data}`);

  it('logs the outbound session, AUTH PLAIN without the credentials', async () => {
    const { sendDir, sink } = await relayThrough(['PLAIN']);
    const files = await readLogFolder(sendDir);
    assert.equal(files.length, 1);
    assert.match(files[0]!.name, /^SEND\d{10}-1\.LOG$/);
    assert.equal(files[0]!.header[2], '#Log-type: SMTP Send Protocol Log');
    const sessions = [...bySession(files[0]!.records).values()];
    assert.equal(sessions.length, 1, 'one connection, one session');
    const lines = sessions[0]!;
    assert.deepEqual(
      lines.map((r) => r.sequence),
      lines.map((_, i) => i),
    );
    assert.ok(lines.every((r) => r.connector === 'SmartHost'));

    const connect = lines[0]!;
    assert.equal(connect.event, '+');
    assert.equal(connect.remote, `127.0.0.1:${sink.port}`, 'the address connected to');
    assert.equal(connect.context, '127.0.0.1', 'and the host name it was for');
    assert.match(connect.local, /^127\.0\.0\.1:\d+$/);

    const t = talk(lines);
    assert.match(t[1]!, /^< 220 /, 'the greeting, as received');
    assert.ok(t.some((l) => l.startsWith('> EHLO ')));
    assert.ok(t.includes('> STARTTLS'));
    assert.ok(
      t.some((l) => /^\* TLS negotiated: version=TLSv1\.[23] cipher=\S+ certificate=not trusted$/.test(l)),
    );
    const auth = t.indexOf('> AUTH PLAIN ****');
    assert.ok(auth > 0, t.join('\n'));
    assert.match(t[auth + 1]!, /^< 235 /);
    assert.ok(t.some((l) => /^> MAIL FROM:<app@example\.test> SIZE=\d+/.test(l)));
    assert.ok(t.includes('> RCPT TO:<x@remote.test>'));
    assert.ok(
      lines.some((r) => r.event === '*' && /^\d+ bytes of message content sent$/.test(r.data)),
      'the content by its size',
    );
    assert.ok(t.includes('> QUIT'));
    assert.equal(lines.at(-1)!.event, '-');

    const raw = await rawText(sendDir);
    for (const secret of [PASSWORD, b64(PASSWORD), b64(`\0${USER}\0${PASSWORD}`), b64(USER)]) {
      assert.ok(!raw.includes(secret), `the send log holds ${secret}`);
    }
    assert.ok(!raw.includes('OUTBOUND-BODY-5e1d'), 'no body bytes');
  });

  it('logs AUTH LOGIN as the command and two redacted responses', async () => {
    const { sendDir } = await relayThrough(['LOGIN']);
    const lines = [...bySession((await readLogFolder(sendDir)).flatMap((f) => f.records)).values()][0]!;
    const t = talk(lines);
    const at = t.indexOf('> AUTH LOGIN');
    assert.deepEqual(t.slice(at, at + 6), [
      '> AUTH LOGIN',
      '< 334 <authentication challenge>',
      '> <authentication response>',
      '< 334 <authentication challenge>',
      '> <authentication response>',
      '< 235 2.7.0 Authentication successful',
    ]);
    const raw = await rawText(sendDir);
    for (const secret of [PASSWORD, b64(PASSWORD), b64(USER)]) assert.ok(!raw.includes(secret));
  });

  it('writes nothing for a send connector whose protocolLogging is none', async () => {
    const { dir } = await relayThrough(['PLAIN'], 'none');
    assert.deepEqual(await readLogFolder(join(dir, 'data', 'logs', 'protocol', 'SmtpSend')), []);
  });
});
