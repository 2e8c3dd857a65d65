import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  TEST_PASSWORD,
  type TestNode,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { type LogRecord, rawText, waitForRecords } from './read-log.ts';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const USER = 'alice@example.test';
const WRONG = 'wrong-Passw0rd';

/**
 * AUTH secrets never reach the receive protocol log, whatever the mechanism and however the
 * client sends them: the AUTH command keeps its mechanism and loses its initial response
 * (`AUTH PLAIN ****`), every SASL response is `<authentication response>`, every challenge
 * `334 <authentication challenge>`. The raw files are searched for the password, its base64,
 * the PLAIN blob and the user name's base64 (LOGIN's first step).
 */
describe('AUTH redaction in the receive protocol log', () => {
  let t: TestNode;
  let dir: string;
  let receiveDir: string;
  /** Every secret-bearing string any test put on the wire. */
  const secrets = new Set<string>([
    TEST_PASSWORD,
    b64(TEST_PASSWORD),
    WRONG,
    b64(WRONG),
    b64(USER),
    b64(`\0${USER}\0${TEST_PASSWORD}`),
    b64(`${USER}\0${USER}\0${TEST_PASSWORD}`),
    b64(`\0${USER}\0${WRONG}`),
  ]);

  before(async () => {
    dir = await makeTempDir('ferrymail-protolog-auth-');
    const base = await demoLikeConfig(dir);
    const client = base.receiveConnectors[1]!;
    t = await startTestNode({
      dir,
      config: {
        ...base,
        receiveConnectors: [
          base.receiveConnectors[0],
          {
            ...client,
            protocolLogging: 'verbose',
            // Failed logins answer at once (no tarpit) and do not end the session early.
            limits: { tarpitInterval: 0, maxLogonFailures: 10, maxProtocolErrors: 20 },
          },
        ],
      },
    });
    receiveDir = join(dir, 'data', 'logs', 'protocol', 'SmtpReceive');
  });
  after(async () => {
    await t.stop();
    await removeDir(dir);
  });

  /** Runs `steps` in a session marked by its EHLO name; returns that session's lines. */
  async function session(name: string, steps: (c: SmtpTestClient) => Promise<void>): Promise<LogRecord[]> {
    const c = await SmtpTestClient.connect(t.port('Client'));
    try {
      await c.greeting();
      assert.equal((await c.command(`EHLO ${name}`)).code, 250);
      await steps(c);
      await c.command('QUIT');
    } finally {
      c.close();
    }
    let id: string | undefined;
    const records = await waitForRecords(receiveDir, (rs) => {
      id = rs.find((r) => r.data === `EHLO ${name}`)?.sessionId;
      return rs.some((r) => r.sessionId === id && r.event === '-');
    });
    return records.filter((r) => r.sessionId === id);
  }

  const conversation = (lines: LogRecord[]) =>
    lines.filter((r) => r.event === '<' || r.event === '>').map((r) => `${r.event} ${r.data}`);

  async function assertNoSecrets(): Promise<void> {
    const raw = await rawText(receiveDir);
    for (const secret of secrets) assert.ok(!raw.includes(secret), `the log holds ${JSON.stringify(secret)}`);
  }

  it('AUTH PLAIN with an initial response: logged as AUTH PLAIN ****', async () => {
    const lines = await session('plain-initial.test', async (c) => {
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0${USER}\0${TEST_PASSWORD}`)}`)).code, 235);
    });
    const talk = conversation(lines);
    assert.ok(talk.includes('< AUTH PLAIN ****'), talk.join('\n'));
    assert.ok(talk.includes('> 235 2.7.0 Authentication successful'));
    assert.ok(lines.some((r) => r.event === '*' && r.data === `authenticated as ${USER}`));
    await assertNoSecrets();
  });

  it('AUTH PLAIN in two steps: the response is <authentication response>', async () => {
    const lines = await session('plain-two-step.test', async (c) => {
      assert.equal((await c.command('AUTH PLAIN')).code, 334);
      assert.equal((await c.command(b64(`\0${USER}\0${TEST_PASSWORD}`))).code, 235);
    });
    const talk = conversation(lines);
    const at = talk.indexOf('< AUTH PLAIN');
    assert.ok(at > 0, talk.join('\n'));
    assert.deepEqual(talk.slice(at, at + 4), [
      '< AUTH PLAIN',
      '> 334 <authentication challenge>',
      '< <authentication response>',
      '> 235 2.7.0 Authentication successful',
    ]);
    await assertNoSecrets();
  });

  it('AUTH PLAIN with an authorization identity: still nothing of it', async () => {
    await session('plain-authzid.test', async (c) => {
      assert.equal((await c.command(`AUTH PLAIN ${b64(`${USER}\0${USER}\0${TEST_PASSWORD}`)}`)).code, 235);
    });
    await assertNoSecrets();
  });

  it('AUTH LOGIN: neither the user name step nor the password step', async () => {
    const lines = await session('login.test', async (c) => {
      assert.equal((await c.command('AUTH LOGIN')).code, 334);
      assert.equal((await c.command(b64(USER))).code, 334);
      assert.equal((await c.command(b64(TEST_PASSWORD))).code, 235);
    });
    const talk = conversation(lines);
    const at = talk.indexOf('< AUTH LOGIN');
    assert.deepEqual(talk.slice(at, at + 6), [
      '< AUTH LOGIN',
      '> 334 <authentication challenge>',
      '< <authentication response>',
      '> 334 <authentication challenge>',
      '< <authentication response>',
      '> 235 2.7.0 Authentication successful',
    ]);
    await assertNoSecrets();
  });

  it('AUTH LOGIN with the user name as initial response: AUTH LOGIN ****', async () => {
    const lines = await session('login-initial.test', async (c) => {
      assert.equal((await c.command(`AUTH LOGIN ${b64(USER)}`)).code, 334);
      assert.equal((await c.command(b64(TEST_PASSWORD))).code, 235);
    });
    assert.ok(conversation(lines).includes('< AUTH LOGIN ****'));
    await assertNoSecrets();
  });

  it('a failed login: the wrong password is not logged either, nor which user tried', async () => {
    const lines = await session('failed.test', async (c) => {
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0${USER}\0${WRONG}`)}`)).code, 535);
      assert.equal((await c.command('AUTH LOGIN')).code, 334);
      assert.equal((await c.command(b64(USER))).code, 334);
      assert.equal((await c.command(b64(WRONG))).code, 535);
    });
    assert.ok(conversation(lines).includes('> 535 5.7.8 Authentication credentials invalid'));
    assert.ok(!lines.some((r) => r.data.includes(USER)), 'a failed attempt names nobody');
    await assertNoSecrets();
  });

  it('a pipelined response, sent before the 334, is redacted too', async () => {
    const lines = await session('pipelined.test', async (c) => {
      c.write(`AUTH PLAIN\r\n${b64(`\0${USER}\0${TEST_PASSWORD}`)}\r\n`);
      assert.equal((await c.reply()).code, 334);
      assert.equal((await c.reply()).code, 235);
    });
    assert.ok(conversation(lines).includes('< <authentication response>'));
    await assertNoSecrets();
  });

  it('a refused line in the middle of the exchange does not make the next response loggable', async () => {
    const lines = await session('interrupted.test', async (c) => {
      assert.equal((await c.command('AUTH LOGIN')).code, 334);
      // A bare LF is refused (500) while the session still waits for the response.
      c.write('garbage\n');
      assert.equal((await c.reply()).code, 500);
      assert.equal((await c.command(b64(USER))).code, 334);
      assert.equal((await c.command(b64(TEST_PASSWORD))).code, 235);
    });
    assert.ok(conversation(lines).filter((l) => l === '< <authentication response>').length >= 2);
    await assertNoSecrets();
  });

  it('a cancelled exchange (*) and an unknown mechanism with a token keep the token out', async () => {
    const token = b64(`user=${USER}\x01auth=Bearer ya29.SECRET-TOKEN-abc\x01\x01`);
    secrets.add(token);
    secrets.add('ya29.SECRET-TOKEN-abc');
    const lines = await session('oauth.test', async (c) => {
      assert.equal((await c.command('AUTH LOGIN')).code, 334);
      assert.equal((await c.command('*')).code, 501);
      // Not offered on this connector (504), but the token went over the wire all the same.
      assert.equal((await c.command(`AUTH XOAUTH2 ${token}`)).code, 504);
      assert.equal((await c.command(`AUTH OAUTHBEARER ${token}`)).code, 504);
    });
    const talk = conversation(lines);
    assert.ok(talk.includes('< AUTH XOAUTH2 ****'), talk.join('\n'));
    assert.ok(talk.includes('< AUTH OAUTHBEARER ****'));
    assert.ok(talk.includes('> 501 5.7.0 Authentication cancelled'));
    await assertNoSecrets();
  });

  it('logs the commands after a successful AUTH in full again', async () => {
    const lines = await session('after-auth.test', async (c) => {
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0${USER}\0${TEST_PASSWORD}`)}`)).code, 235);
      assert.equal((await c.command(`MAIL FROM:<${USER}>`)).code, 250);
    });
    assert.ok(conversation(lines).includes(`< MAIL FROM:<${USER}>`), 'redaction ends with the 235');
  });
});
