import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  TEST_PASSWORD,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** AUTH PLAIN and LOGIN against the directory, and what a connector requires before MAIL. */
describe('SMTP authentication', () => {
  let h: ReceiveHarness;
  /** Everything the server logged, at the most verbose level. */
  let logged = '';
  before(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logged += String(chunk);
        done();
      },
    });
    h = await startReceiveHarness(
      [
        connector({
          name: 'Plain',
          tls: { mode: 'starttls', required: false },
          permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
          auth: { mechanisms: ['PLAIN', 'LOGIN'], requireTls: false, required: true },
          limits: { maxLogonFailures: 3 },
        }),
        connector({
          name: 'TlsOnly',
          tls: { mode: 'starttls', required: false },
          permissionGroups: { authenticatedUsers: ['submit'] },
          auth: { mechanisms: ['PLAIN'], requireTls: true, required: true },
        }),
        connector({
          name: 'Tarpit',
          permissionGroups: { authenticatedUsers: ['submit'] },
          auth: { mechanisms: ['PLAIN'], requireTls: false, required: true },
          limits: { tarpitInterval: 300 },
        }),
        connector({ name: 'Anonymous', permissionGroups: { anonymous: ['submit'] } }),
        connector({
          name: 'MembersOnly',
          permissionGroups: { anonymous: [], authenticatedUsers: ['submit'] },
          auth: { mechanisms: ['PLAIN'], requireTls: false, required: false },
        }),
        connector({ name: 'Closed', permissionGroups: { anonymous: [] } }),
      ],
      { logger: pino({ level: 'trace' }, sink) },
    );
  });
  after(() => h.close());

  async function ehlo(name: string) {
    const c = await SmtpTestClient.connect(h.port(name));
    await c.greeting();
    const reply = await c.command('EHLO client.test');
    return { c, reply };
  }

  it('logs in with AUTH PLAIN (initial response) and then may relay', async () => {
    const { c, reply } = await ehlo('Plain');
    assert.ok(reply.lines.includes('AUTH PLAIN LOGIN'));
    const ok = await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`);
    assert.equal(ok.code, 235);
    assert.equal(ok.text, '2.7.0 Authentication successful');
    assert.equal((await c.command('AUTH PLAIN x')).code, 503);
    assert.equal((await c.command('MAIL FROM:<alice@example.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<x@elsewhere.test>')).code, 250);
    c.close();
  });

  it('logs in with AUTH PLAIN sent after an empty challenge, and with AUTH LOGIN', async () => {
    const { c } = await ehlo('Plain');
    assert.equal((await c.command('AUTH PLAIN')).code, 334);
    assert.equal((await c.command(b64(`\0bob@example.test\0${TEST_PASSWORD}`))).code, 235);
    c.close();
    const second = await ehlo('Plain');
    const user = await second.c.command('AUTH LOGIN');
    assert.equal(user.code, 334);
    assert.equal(user.text, 'VXNlcm5hbWU6');
    assert.equal((await second.c.command(b64('Bob@Example.test'))).text, 'UGFzc3dvcmQ6');
    assert.equal((await second.c.command(b64(TEST_PASSWORD))).code, 235);
    second.c.close();
  });

  it('answers a wrong password with 535 5.7.8 and disconnects after the connector maximum', async () => {
    const { c } = await ehlo('Plain');
    for (let i = 1; i <= 3; i++) {
      const r = await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0wrong${i}`)}`);
      assert.equal(r.code, 535);
      assert.equal(r.text, '5.7.8 Authentication credentials invalid');
    }
    const bye = await c.reply();
    assert.equal(bye.code, 421);
    await c.closed();
  });

  it('treats an unknown user like a wrong password', async () => {
    const { c } = await ehlo('Plain');
    assert.equal(
      (await c.command(`AUTH PLAIN ${b64(`\0mallory@example.test\0${TEST_PASSWORD}`)}`)).code,
      535,
    );
    c.close();
  });

  it('cancels on "*" and rejects undecodable responses', async () => {
    const { c } = await ehlo('Plain');
    await c.command('AUTH LOGIN');
    assert.equal((await c.command('*')).code, 501);
    assert.equal((await c.command('AUTH PLAIN !!!notbase64')).code, 501);
    assert.equal((await c.command('AUTH CRAM-MD5')).code, 504);
    c.close();
  });

  it('requires authentication before MAIL on a connector that says so', async () => {
    const { c } = await ehlo('Plain');
    const r = await c.command('MAIL FROM:<a@remote.test>');
    assert.equal(r.code, 530);
    assert.equal(r.text, '5.7.0 Authentication required');
    c.close();
  });

  it('neither offers nor accepts AUTH before TLS when the connector requires TLS for it', async () => {
    const { c, reply } = await ehlo('TlsOnly');
    assert.ok(!reply.lines.some((l) => l.startsWith('AUTH')));
    const r = await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`);
    assert.equal(r.code, 538);
    assert.match(r.text, /^5\.7\.11 /);
    assert.equal((await c.startTls()).code, 220);
    const again = await c.command('EHLO client.test');
    assert.ok(again.lines.includes('AUTH PLAIN'));
    assert.equal((await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`)).code, 235);
    c.close();
  });

  it('delays the answer to a failed login by the tarpit interval', async () => {
    const { c } = await ehlo('Tarpit');
    const started = Date.now();
    assert.equal((await c.command(`AUTH PLAIN ${b64('\0alice@example.test\0wrong')}`)).code, 535);
    assert.ok(Date.now() - started >= 290, `answered after ${Date.now() - started} ms`);
    c.close();
  });

  it('forgets the login when the session is upgraded with STARTTLS', async () => {
    const { c } = await ehlo('Plain');
    assert.equal((await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`)).code, 235);
    assert.equal((await c.startTls()).code, 220);
    await c.command('EHLO client.test');
    assert.equal((await c.command('MAIL FROM:<alice@example.test>')).text, '5.7.0 Authentication required');
    c.close();
  });

  it('refuses AUTH on a connector where no one can authenticate', async () => {
    const { c, reply } = await ehlo('Anonymous');
    assert.ok(!reply.lines.some((l) => l.startsWith('AUTH')));
    const r = await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`);
    assert.equal(r.code, 503);
    assert.match(r.text, /^5\.5\.1 /);
    c.close();
  });

  it('never writes a password or a credential token to the log', async () => {
    const secret = 'Sup3r-secret-pw';
    const { c } = await ehlo('Plain');
    await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${secret}`)}`);
    await c.command('AUTH LOGIN');
    await c.command(b64('bob@example.test'));
    await c.command(b64(secret));
    c.close();
    assert.ok(logged.includes('authentication failed'), 'the failures were not logged at all');
    for (const forbidden of [secret, b64(secret), b64(`\0alice@example.test\0${secret}`), TEST_PASSWORD]) {
      assert.ok(!logged.includes(forbidden), `the log contains ${forbidden}`);
    }
  });

  it('asks for authentication when only authenticated users may submit, and refuses when no one may', async () => {
    const members = await ehlo('MembersOnly');
    assert.equal(
      (await members.c.command('MAIL FROM:<a@remote.test>')).text,
      '5.7.0 Authentication required',
    );
    await members.c.command(`AUTH PLAIN ${b64(`\0bob@example.test\0${TEST_PASSWORD}`)}`);
    assert.equal((await members.c.command('MAIL FROM:<bob@example.test>')).code, 250);
    members.c.close();
    const closed = await ehlo('Closed');
    const r = await closed.c.command('MAIL FROM:<a@remote.test>');
    assert.equal(r.code, 550);
    assert.match(r.text, /^5\.7\.1 Not permitted/);
    closed.c.close();
  });
});
