import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  TEST_PASSWORD,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { b64, EventLog, send } from './observe-fixture.ts';

type Base = Awaited<ReturnType<typeof demoLikeConfig>>;

async function observedNode(change: (base: Base) => Record<string, unknown> = (b) => b) {
  const dir = await makeTempDir('ferrymail-protocol-');
  const base = await demoLikeConfig(dir);
  const t = await startTestNode({ dir, config: change(base) });
  const log = new EventLog(t.node.events);
  return {
    t,
    log,
    async stop() {
      log.unsubscribe();
      await t.stop();
      await removeDir(dir);
    },
  };
}

/**
 * Receive sessions report what metrics count besides tracking: sessions opening and closing per
 * connector, TLS handshakes with their protocol version (or their failure), and AUTH attempts
 * with their mechanism and outcome.
 */
describe('protocol events of receive sessions', () => {
  let n: Awaited<ReturnType<typeof observedNode>>;
  before(async () => {
    n = await observedNode((base) => ({
      ...base,
      receiveConnectors: base.receiveConnectors.map((c) =>
        c.name === 'Client' ? { ...c, limits: { tarpitInterval: 0, maxLogonFailures: 10 } } : c,
      ),
    }));
  });
  after(() => n.stop());

  it('a session opens and closes on its connector, and STARTTLS reports its protocol', async () => {
    const c = await SmtpTestClient.connect(n.t.port('Default'));
    await c.greeting();
    await n.log.until(() => n.log.protocol('session')[0], 'session open');
    assert.deepEqual(n.log.protocol('session'), [{ kind: 'session', connector: 'Default', phase: 'open' }]);
    await c.command('EHLO client.example.test');
    assert.equal((await c.startTls()).code, 220);
    assert.equal((await c.command('EHLO client.example.test')).code, 250);
    const tls = await n.log.until(() => n.log.protocol('tls')[0], 'tls');
    assert.deepEqual(tls, {
      kind: 'tls',
      connector: 'Default',
      direction: 'receive',
      outcome: 'established',
      protocol: 'TLSv1.3',
    });
    await c.command('QUIT');
    c.close();
    const closed = await n.log.until(
      () => n.log.protocol('session').find((e) => e.phase === 'close'),
      'session close',
    );
    assert.equal(closed.connector, 'Default');
  });

  it('a handshake that fails is reported as failed', async () => {
    const before = n.log.protocol('tls').length;
    const c = await SmtpTestClient.connect(n.t.port('Default'));
    await c.greeting();
    await c.command('EHLO client.example.test');
    assert.equal((await c.command('STARTTLS')).code, 220);
    c.write('this is not a TLS ClientHello\r\n');
    await c.closed();
    const failed = await n.log.until(() => n.log.protocol('tls').slice(before)[0], 'tls failure');
    assert.deepEqual(failed, { kind: 'tls', connector: 'Default', direction: 'receive', outcome: 'failed' });
  });

  it('AUTH success and failure, with their mechanism; an authenticated message is Originating', async () => {
    const c = await SmtpTestClient.connect(n.t.port('Client'));
    try {
      await c.greeting();
      await c.command('EHLO client.example.test');
      assert.equal((await c.command('AUTH LOGIN')).code, 334);
      assert.equal((await c.command(b64('alice@example.test'))).code, 334);
      assert.equal((await c.command(b64('wrong password'))).code, 535);
      const ok = await c.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`);
      assert.equal(ok.code, 235);
    } finally {
      c.close();
    }
    await n.log.until(() => (n.log.protocol('auth').length >= 2 ? true : undefined), 'two auth');
    assert.deepEqual(n.log.protocol('auth'), [
      { kind: 'auth', mechanism: 'LOGIN', outcome: 'failure', connector: 'Client' },
      { kind: 'auth', mechanism: 'PLAIN', outcome: 'success', connector: 'Client' },
    ]);

    const id = await send(n.t.port('Client'), {
      from: 'alice@example.test',
      to: ['bob@example.test'],
      authUser: 'alice@example.test',
    });
    const received = await n.log.track('RECEIVE', id);
    assert.equal(received.directionality, 'Originating');
    assert.equal(received.connector, 'Client');
  });
});

/** THROTTLE: the agents made a session wait (the RCPT tarpit) or refused it for now (a rate limit). */
describe('throttling by the agents', () => {
  let n: Awaited<ReturnType<typeof observedNode>>;
  before(async () => {
    n = await observedNode((base) => ({
      ...base,
      receiveConnectors: base.receiveConnectors.map((c) =>
        c.name === 'Default' ? { ...c, limits: { tarpitInterval: 50 } } : c,
      ),
      agents: { rateLimits: { messagesPerMinutePerSource: 1 }, tarpit: { afterRejectedRecipients: 1 } },
    }));
  });
  after(() => n.stop());

  it('a tarpitted RCPT and a message rate limit give THROTTLE with the reason, client and connector', async () => {
    const c = await SmtpTestClient.connect(n.t.port('Default'));
    try {
      await c.greeting();
      await c.command('EHLO harvester.example.net');
      assert.equal((await c.command('MAIL FROM:<h@example.net>')).code, 250);
      assert.equal((await c.command('RCPT TO:<nobody1@example.test>')).code, 550);
      assert.equal((await c.command('RCPT TO:<nobody2@example.test>')).code, 550);
      const tarpitted = await n.log.track('THROTTLE');
      assert.equal(tarpitted.source, 'AGENT');
      assert.equal(tarpitted.detail, 'tarpit 50 ms (at rcpt)');
      assert.equal(tarpitted.clientIp, '127.0.0.1');
      assert.equal(tarpitted.clientHostname, 'harvester.example.net');
      assert.equal(tarpitted.connector, 'Default');
      assert.equal(tarpitted.sender, 'h@example.net');
      assert.deepEqual(tarpitted.recipients, ['nobody2@example.test']);

      assert.equal((await c.command('RSET')).code, 250);
      const limited = await c.command('MAIL FROM:<h@example.net>');
      assert.equal(limited.code, 421);
    } finally {
      c.close();
    }
    const throttles = await n.log.until(
      () =>
        n.log.tracking({ eventId: 'THROTTLE' }).length >= 2
          ? n.log.tracking({ eventId: 'THROTTLE' })
          : undefined,
      'second THROTTLE',
    );
    const limit = throttles[1]!;
    assert.match(limit.detail ?? '', /^421 4\.7\.0 .*Message rate limit exceeded.* \(at mail\)$/);
    assert.equal(limit.connector, 'Default');
    assert.equal(limit.clientIp, '127.0.0.1');
    assert.deepEqual(limit.recipients, []);
  });
});
