import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import type { SmtpTestClient } from '../helpers/smtp-client.ts';
import { b64, hello, type SecurityNode, send, startSecurityNode } from './auth-fixture.ts';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'ferrymail-smtp';

type Key = Awaited<ReturnType<typeof generateKeyPair>>;
let trusted: Key;
let stranger: Key;

async function token(
  claims: JWTPayload,
  options: { key?: Key; kid?: string; expires?: string | number } = {},
) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ email: 'alice@example.test', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? 'k1' })
    .setIssuer(typeof claims.iss === 'string' ? claims.iss : ISSUER)
    .setAudience((claims.aud as string | undefined) ?? AUDIENCE)
    .setIssuedAt(now - 10)
    .setExpirationTime(options.expires ?? now + 600)
    .sign((options.key ?? trusted).privateKey);
}

const xoauth2 = (user: string, t: string) => b64(`user=${user}\x01auth=Bearer ${t}\x01\x01`);
const oauthbearer = (t: string, authzid?: string) =>
  b64(
    `n,${authzid === undefined ? '' : `a=${authzid}`},\x01host=mx.example.test\x01port=587\x01auth=Bearer ${t}\x01\x01`,
  );

/** The RFC 7628 failure: an error document in a 334, the client's dummy %x01, then 535 5.7.8. */
async function expectBearerFailure(c: SmtpTestClient, command: string, mechanism: 'XOAUTH2' | 'OAUTHBEARER') {
  const challenge = await c.command(command);
  assert.equal(challenge.code, 334, `${challenge.code} ${challenge.text}`);
  const document = JSON.parse(Buffer.from(challenge.text, 'base64').toString('utf8'));
  assert.equal(document.status, mechanism === 'OAUTHBEARER' ? 'invalid_token' : '401');
  assert.equal(document.schemes, 'bearer');
  assert.equal(document.scope, 'smtp.send');
  const final = await c.command(mechanism === 'OAUTHBEARER' ? 'AQ==' : '');
  assert.equal(final.code, 535);
  assert.equal(final.text, '5.7.8 Authentication credentials invalid');
}

/**
 * XOAUTH2 and OAUTHBEARER: a JWT signed by a key of the configured JWKS, for the configured issuer
 * and audience, unexpired, whose `email` claim is a mailbox, logs that mailbox in; anything else
 * is the mechanism's failure exchange, and nothing from that session is stored.
 */
describe('OAuth bearer tokens', () => {
  let n: SecurityNode;
  let jwksServer: Server;
  let jwksFetches = 0;
  let urlNode: SecurityNode;

  before(async () => {
    trusted = await generateKeyPair('ES256');
    stranger = await generateKeyPair('ES256');
    const jwks = JSON.stringify({
      keys: [{ ...(await exportJWK(trusted.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }],
    });
    const connector = {
      name: 'Submission',
      bindings: ['127.0.0.1:0'],
      permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
      auth: { mechanisms: ['XOAUTH2', 'OAUTHBEARER'], requireTls: false, required: true },
      limits: { tarpitInterval: 0, maxLogonFailures: 0 },
    };
    const oauth = { issuer: ISSUER, audience: AUDIENCE, scope: 'smtp.send', clockTolerance: '5s' };
    n = await startSecurityNode([connector], {
      top: { oauth: { ...oauth, jwksFile: 'jwks.json' } },
      files: { 'jwks.json': jwks },
    });
    jwksServer = createServer((_request, response) => {
      jwksFetches++;
      response.setHeader('content-type', 'application/json');
      response.end(jwks);
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
    urlNode = await startSecurityNode([connector], { top: { oauth: { ...oauth, jwksUrl: url } } });
  });
  after(async () => {
    await n.close();
    await urlNode.close();
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  it('logs in with XOAUTH2 and queues the message under the token’s mailbox', async () => {
    const { c, ehlo } = await hello(n.port('Submission'));
    assert.ok(ehlo.lines.includes('AUTH XOAUTH2 OAUTHBEARER'));
    const ok = await c.command(`AUTH XOAUTH2 ${xoauth2('alice@example.test', await token({}))}`);
    assert.equal(ok.code, 235, ok.text);
    const sent = await send(c, {
      from: 'alice@example.test',
      // Outside: it stays in the Unreachable queue, where its origin can be read.
      to: ['someone@elsewhere.test'],
      headers: 'From: alice@example.test\r\nSubject: xoauth2\r\n',
    });
    assert.equal(sent.reply.code, 250, sent.reply.text);
    c.close();
    assert.deepEqual(
      (await n.queued()).filter((m) => m.subject === 'xoauth2').map((m) => m.authUser),
      ['alice@example.test'],
    );
  });

  it('logs in with OAUTHBEARER, with and without an authzid, also after an empty challenge', async () => {
    const first = await hello(n.port('Submission'));
    assert.equal(
      (await first.c.command(`AUTH OAUTHBEARER ${oauthbearer(await token({}), 'alice@example.test')}`)).code,
      235,
    );
    first.c.close();
    const second = await hello(n.port('Submission'));
    assert.equal((await second.c.command('AUTH OAUTHBEARER')).code, 334);
    const ok = await second.c.command(oauthbearer(await token({ email: 'Bob@Example.test' })));
    assert.equal(ok.code, 235, ok.text);
    assert.equal((await second.c.command('MAIL FROM:<bob@example.test>')).code, 250);
    second.c.close();
  });

  it('refuses expired, wrong-issuer, wrong-audience and foreign-key tokens with the failure exchange', async () => {
    const now = Math.floor(Date.now() / 1000);
    const bad = {
      expired: await token({}, { expires: now - 3600 }),
      issuer: await token({ iss: 'https://evil.example.test' }),
      audience: await token({ aud: 'some-other-app' }),
      signature: await token({}, { key: stranger }),
      unknownKid: await token({}, { key: stranger, kid: 'k2' }),
    };
    for (const [what, t] of Object.entries(bad)) {
      const { c } = await hello(n.port('Submission'));
      await assert.doesNotReject(
        expectBearerFailure(c, `AUTH OAUTHBEARER ${oauthbearer(t)}`, 'OAUTHBEARER'),
        what,
      );
      await assert.doesNotReject(
        expectBearerFailure(c, `AUTH XOAUTH2 ${xoauth2('alice@example.test', t)}`, 'XOAUTH2'),
        what,
      );
      assert.equal(
        (await c.command('MAIL FROM:<alice@example.test>')).text,
        '5.7.0 Authentication required',
        what,
      );
      c.close();
    }
  });

  it('refuses an unsigned or HMAC-signed token, whatever its claims', async () => {
    const header = (alg: string) => Buffer.from(JSON.stringify({ alg, typ: 'JWT' })).toString('base64url');
    const claims = Buffer.from(
      JSON.stringify({
        iss: ISSUER,
        aud: AUDIENCE,
        email: 'alice@example.test',
        exp: Math.floor(Date.now() / 1000) + 600,
      }),
    ).toString('base64url');
    const { c } = await hello(n.port('Submission'));
    await expectBearerFailure(
      c,
      `AUTH OAUTHBEARER ${oauthbearer(`${header('none')}.${claims}.`)}`,
      'OAUTHBEARER',
    );
    await expectBearerFailure(
      c,
      `AUTH OAUTHBEARER ${oauthbearer(`${header('HS256')}.${claims}.c2ln`)}`,
      'OAUTHBEARER',
    );
    c.close();
  });

  it('refuses a valid token for an address that is no mailbox, or for another user than the one named', async () => {
    const { c } = await hello(n.port('Submission'));
    await expectBearerFailure(
      c,
      `AUTH OAUTHBEARER ${oauthbearer(await token({ email: 'mallory@example.test' }))}`,
      'OAUTHBEARER',
    );
    await expectBearerFailure(c, `AUTH XOAUTH2 ${xoauth2('bob@example.test', await token({}))}`, 'XOAUTH2');
    await expectBearerFailure(
      c,
      `AUTH OAUTHBEARER ${oauthbearer(await token({}), 'bob@example.test')}`,
      'OAUTHBEARER',
    );
    await expectBearerFailure(
      c,
      `AUTH OAUTHBEARER ${oauthbearer(await token({ email_verified: false }))}`,
      'OAUTHBEARER',
    );
    c.close();
  });

  it('answers a malformed bearer message with 501 without a failure exchange', async () => {
    const { c } = await hello(n.port('Submission'));
    assert.equal(
      (await c.command(`AUTH OAUTHBEARER ${b64('p=tls-unique,,\x01auth=Bearer x\x01\x01')}`)).code,
      501,
    );
    assert.equal((await c.command(`AUTH XOAUTH2 ${b64('user=alice@example.test\x01\x01')}`)).code, 501);
    c.close();
  });

  it('fetches a JWKS URL once and serves later logins from its cache', async () => {
    for (let i = 0; i < 3; i++) {
      const { c } = await hello(urlNode.port('Submission'));
      assert.equal((await c.command(`AUTH OAUTHBEARER ${oauthbearer(await token({}))}`)).code, 235);
      c.close();
    }
    assert.equal(jwksFetches, 1);
    const { c } = await hello(urlNode.port('Submission'));
    await expectBearerFailure(
      c,
      `AUTH OAUTHBEARER ${oauthbearer(await token({}, { key: stranger }))}`,
      'OAUTHBEARER',
    );
    c.close();
  });

  it('refuses to start a node whose JWKS file is not a JWKS, naming the field', async () => {
    await assert.rejects(
      startSecurityNode([], {
        top: { oauth: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'jwks.json' } },
        files: { 'jwks.json': '{"not": "keys"}' },
      }),
      /oauth\.jwksFile: .*is not a JWKS/,
    );
  });
});
