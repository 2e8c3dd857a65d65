import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { AuthLockout } from '../../src/receive/auth/lockout.ts';
import {
  connector,
  type ReceiveHarness,
  startReceiveHarness,
  TEST_PASSWORD,
} from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { hello, startSecurityNode } from './auth-fixture.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const plain = (user: string, password: string) => `AUTH PLAIN ${b64(`\0${user}\0${password}`)}`;
const MINUTE = 60_000;

/**
 * The failed-login lockout: per source IP and per account, shared by every session and every
 * connector of the server, in memory with a bounded size. A locked IP or account gets 454 4.7.0
 * without its credentials being checked, until the lock expires.
 */
describe('AUTH lockout', () => {
  let h: ReceiveHarness | undefined;
  let clock: ManualClock;
  afterEach(() => h?.close());

  async function start(settings: { ip: number; account: number; maxEntries?: number }) {
    clock = new ManualClock(Date.now());
    const lockout = new AuthLockout(
      {
        perIp: { failures: settings.ip, window: 10 * MINUTE, duration: 30 * MINUTE },
        perAccount: { failures: settings.account, window: 10 * MINUTE, duration: 15 * MINUTE },
        maxEntries: settings.maxEntries ?? 1000,
      },
      clock,
    );
    const submission = (name: string) =>
      connector({
        name,
        permissionGroups: { authenticatedUsers: ['submit'] },
        auth: { mechanisms: ['PLAIN', 'LOGIN'], requireTls: false, required: true },
        limits: { maxLogonFailures: 0 },
      });
    h = await startReceiveHarness([submission('A'), submission('B')], { auth: { lockout } });
    return lockout;
  }

  async function session(name: string): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(h!.port(name));
    await c.greeting();
    await c.command('EHLO client.test');
    return c;
  }

  it('locks an account after its failures, across sessions and connectors, even for the right password', async () => {
    await start({ ip: 100, account: 3 });
    for (const name of ['A', 'B', 'A']) {
      const c = await session(name);
      assert.equal((await c.command(plain('alice@example.test', 'guess'))).code, 535);
      c.close();
    }
    const c = await session('B');
    const locked = await c.command(plain('Alice@Example.test', TEST_PASSWORD));
    assert.equal(locked.code, 454);
    assert.equal(locked.text, '4.7.0 Too many failed logins; try again later');
    // LOGIN names the account in its first step: the lock applies there too.
    await c.command('AUTH LOGIN');
    await c.command(b64('alice@example.test'));
    assert.equal((await c.command(b64(TEST_PASSWORD))).code, 454);
    assert.equal((await c.command('MAIL FROM:<alice@example.test>')).text, '5.7.0 Authentication required');
    // Other accounts from the same IP are not affected.
    assert.equal((await c.command(plain('bob@example.test', TEST_PASSWORD))).code, 235);
    c.close();
    assert.deepEqual(await h!.messages(), []);
  });

  it('unlocks an account when the lock duration has passed', async () => {
    await start({ ip: 100, account: 2 });
    const c = await session('A');
    await c.command(plain('alice@example.test', 'guess1'));
    await c.command(plain('alice@example.test', 'guess2'));
    assert.equal((await c.command(plain('alice@example.test', TEST_PASSWORD))).code, 454);
    clock.advance(15 * MINUTE - 1);
    assert.equal((await c.command(plain('alice@example.test', TEST_PASSWORD))).code, 454);
    clock.advance(2);
    assert.equal((await c.command(plain('alice@example.test', TEST_PASSWORD))).code, 235);
    c.close();
  });

  it('forgets failures older than the window', async () => {
    await start({ ip: 100, account: 2 });
    const c = await session('A');
    await c.command(plain('alice@example.test', 'guess1'));
    clock.advance(10 * MINUTE + 1);
    await c.command(plain('alice@example.test', 'guess2'));
    assert.equal((await c.command(plain('alice@example.test', TEST_PASSWORD))).code, 235);
    c.close();
  });

  it('locks a source IP that tries many accounts, refusing AUTH before any credentials', async () => {
    await start({ ip: 4, account: 100 });
    const c = await session('A');
    for (const user of ['bob@example.test', 'carol@example.test', 'dave@example.test']) {
      assert.equal((await c.command(plain(user, 'guess'))).code, 535);
    }
    // A success in between does not clear the IP: it is still the same attacker.
    assert.equal((await c.command(plain('bob@example.test', TEST_PASSWORD))).code, 235);
    c.close();
    const d = await session('B');
    assert.equal((await d.command(plain('erin@example.test', 'guess'))).code, 535);
    const locked = await d.command('AUTH LOGIN');
    assert.equal(locked.code, 454, 'no 334 challenge: the IP is locked');
    assert.equal((await d.command(plain('alice@example.test', TEST_PASSWORD))).code, 454);
    d.close();
    clock.advance(30 * MINUTE + 1);
    const e = await session('A');
    assert.equal((await e.command(plain('alice@example.test', TEST_PASSWORD))).code, 235);
    e.close();
  });

  it('still disconnects at maxLogonFailures, counting lockout refusals', async () => {
    clock = new ManualClock(Date.now());
    const lockout = new AuthLockout(
      {
        perIp: { failures: 0, window: MINUTE, duration: MINUTE },
        perAccount: { failures: 1, window: MINUTE, duration: MINUTE },
        maxEntries: 10,
      },
      clock,
    );
    h = await startReceiveHarness(
      [
        connector({
          name: 'Limited',
          permissionGroups: { authenticatedUsers: ['submit'] },
          auth: { mechanisms: ['PLAIN'], requireTls: false, required: true },
          limits: { maxLogonFailures: 2 },
        }),
      ],
      { auth: { lockout } },
    );
    const d = await session('Limited');
    assert.equal((await d.command(plain('alice@example.test', 'guess'))).code, 535);
    assert.equal((await d.command(plain('alice@example.test', TEST_PASSWORD))).code, 454);
    assert.equal((await d.reply()).code, 421);
    await d.closed();
  });

  it('keeps at most maxEntries IPs and accounts, forgetting the least recently failed first', async () => {
    const lockout = await start({ ip: 100, account: 2, maxEntries: 3 });
    const c = await session('A');
    await c.command(plain('alice@example.test', 'guess'));
    await c.command(plain('bob@example.test', 'guess'));
    await c.command(plain('carol@example.test', 'guess'));
    await c.command(plain('dave@example.test', 'guess'));
    assert.equal(lockout.size, 3);
    // alice's first failure was forgotten: one more does not lock her.
    await c.command(plain('alice@example.test', 'guess'));
    assert.equal((await c.command(plain('alice@example.test', TEST_PASSWORD))).code, 235);
    c.close();
  });

  it('applies a node’s configured authLockout to every connector', async () => {
    const connector = (name: string) => ({
      name,
      bindings: ['127.0.0.1:0'],
      permissionGroups: { authenticatedUsers: ['submit'] },
      auth: { requireTls: false, required: true },
      limits: { tarpitInterval: 0 },
    });
    const n = await startSecurityNode([connector('One'), connector('Two')], {
      top: { authLockout: { perAccount: { failures: 2, window: '1h', duration: '1h' } } },
    });
    try {
      for (const name of ['One', 'Two']) {
        const { c } = await hello(n.port(name));
        assert.equal((await c.command(plain('carol@example.test', 'guess'))).code, 535);
        c.close();
      }
      const { c } = await hello(n.port('One'));
      assert.equal((await c.command(plain('carol@example.test', TEST_PASSWORD))).code, 454);
      c.close();
    } finally {
      await n.close();
    }
  });
});
