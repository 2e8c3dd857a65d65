import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  type TestNode,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { type LogRecord, rawText, waitForRecords } from './read-log.ts';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'ferrymail-smtp';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/**
 * XOAUTH2 and OAUTHBEARER bearer tokens are credentials like passwords: the protocol log shows
 * the mechanism and the outcome, never the token, in the initial response, in a later step, or
 * around the RFC 7628 error document of a refused token.
 */
describe('OAuth tokens in the receive protocol log', () => {
  let t: TestNode;
  let dir: string;
  let receiveDir: string;
  let good: string;
  let stale: string;

  before(async () => {
    const key = await generateKeyPair('ES256');
    const sign = (expires: number) =>
      new SignJWT({ email: 'alice@example.test' })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(Math.floor(Date.now() / 1000) - 10)
        .setExpirationTime(expires)
        .sign(key.privateKey);
    good = await sign(Math.floor(Date.now() / 1000) + 600);
    stale = await sign(Math.floor(Date.now() / 1000) - 600);
    dir = await makeTempDir('ferrymail-protolog-oauth-');
    await writeFile(
      join(dir, 'jwks.json'),
      JSON.stringify({
        keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }],
      }),
    );
    const base = await demoLikeConfig(dir);
    t = await startTestNode({
      dir,
      config: {
        ...base,
        receiveConnectors: [
          {
            name: 'Submission',
            bindings: ['127.0.0.1:0'],
            permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
            auth: { mechanisms: ['XOAUTH2', 'OAUTHBEARER'], requireTls: false, required: true },
            limits: { tarpitInterval: 0, maxLogonFailures: 0 },
            protocolLogging: 'verbose',
          },
        ],
        oauth: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'jwks.json' },
      },
    });
    receiveDir = join(dir, 'data', 'logs', 'protocol', 'SmtpReceive');
  });
  after(async () => {
    await t.stop();
    await removeDir(dir);
  });

  async function session(name: string, steps: (c: SmtpTestClient) => Promise<void>): Promise<string[]> {
    const c = await SmtpTestClient.connect(t.port('Submission'));
    try {
      await c.greeting();
      await c.command(`EHLO ${name}`);
      await steps(c);
      await c.command('QUIT');
    } finally {
      c.close();
    }
    let id: string | undefined;
    const records = await waitForRecords(receiveDir, (rs: LogRecord[]) => {
      id = rs.find((r) => r.data === `EHLO ${name}`)?.sessionId;
      return rs.some((r) => r.sessionId === id && r.event === '-');
    });
    return records.filter((r) => r.sessionId === id && r.event !== '*').map((r) => `${r.event} ${r.data}`);
  }

  async function assertNoToken(): Promise<void> {
    const raw = await rawText(receiveDir);
    for (const token of [good, stale]) {
      assert.ok(!raw.includes(token), 'the token itself');
      assert.ok(!raw.includes(token.split('.')[1]!), 'not even its claims part');
      assert.ok(!raw.includes(b64(`user=alice@example.test\x01auth=Bearer ${token}\x01\x01`).slice(0, 40)));
    }
    assert.ok(!raw.includes('eyJ'), 'no JSON in base64 at all (tokens, error documents)');
  }

  it('XOAUTH2 with the token in the initial response', async () => {
    const talk = await session('xoauth2.test', async (c) => {
      const r = await c.command(
        `AUTH XOAUTH2 ${b64(`user=alice@example.test\x01auth=Bearer ${good}\x01\x01`)}`,
      );
      assert.equal(r.code, 235, r.text);
    });
    assert.ok(talk.includes('< AUTH XOAUTH2 ****'), talk.join('\n'));
    assert.ok(talk.includes('> 235 2.7.0 Authentication successful'));
    await assertNoToken();
  });

  it('OAUTHBEARER in two steps', async () => {
    const talk = await session('oauthbearer.test', async (c) => {
      assert.equal((await c.command('AUTH OAUTHBEARER')).code, 334);
      const r = await c.command(
        b64(`n,,\x01host=mx.example.test\x01port=587\x01auth=Bearer ${good}\x01\x01`),
      );
      assert.equal(r.code, 235, r.text);
    });
    assert.ok(talk.includes('< AUTH OAUTHBEARER'));
    assert.ok(talk.includes('< <authentication response>'));
    await assertNoToken();
  });

  it('a refused token: the error document and the dummy response are redacted too', async () => {
    const talk = await session('refused.test', async (c) => {
      const challenge = await c.command(
        `AUTH XOAUTH2 ${b64(`user=alice@example.test\x01auth=Bearer ${stale}\x01\x01`)}`,
      );
      assert.equal(challenge.code, 334, 'the RFC 7628 error document');
      assert.equal((await c.command('')).code, 535);
    });
    const at = talk.indexOf('< AUTH XOAUTH2 ****');
    assert.deepEqual(talk.slice(at, at + 4), [
      '< AUTH XOAUTH2 ****',
      '> 334 <authentication challenge>',
      '< <authentication response>',
      '> 535 5.7.8 Authentication credentials invalid',
    ]);
    await assertNoToken();
  });
});
