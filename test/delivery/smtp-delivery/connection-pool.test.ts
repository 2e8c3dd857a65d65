import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SmtpClientConnection } from '../../../src/delivery/smtp/client/index.ts';
import { ConnectionPool, type Lease, type SlotLimits } from '../../../src/delivery/smtp/connection-pool.ts';

/** Just what the pool looks at: whether the connection can go on, and how often it was used. */
function fakeConnection(): SmtpClientConnection & { quits: number; sent(n: number): void } {
  const state = { usable: true, messagesSent: 0, quits: 0 };
  return {
    get usable() {
      return state.usable;
    },
    get messagesSent() {
      return state.messagesSent;
    },
    get quits() {
      return state.quits;
    },
    sent(n: number) {
      state.messagesSent += n;
    },
    quit: async () => {
      state.quits++;
      state.usable = false;
    },
    close: () => {
      state.usable = false;
    },
  } as unknown as SmtpClientConnection & { quits: number; sent(n: number): void };
}

const limits = (over: Partial<SlotLimits> = {}): SlotLimits => ({
  connector: 'Internet',
  maxPerConnector: 100,
  maxPerDestination: 2,
  maxMessagesPerConnection: 3,
  idleTimeout: 10_000,
  ...over,
});

const tick = () => new Promise((r) => setImmediate(r));

describe('the outbound connection pool', () => {
  it('never has more connections to one destination than its limit; the next job waits for a slot', async () => {
    const pool = new ConnectionPool({ maxTotal: 100 });
    const a = await pool.lease('d1', limits());
    const b = await pool.lease('d1', limits());
    const third: { lease?: Lease } = {};
    void pool.lease('d1', limits()).then((l) => {
      third.lease = l;
    });
    await tick();
    const leased = (): Lease | undefined => third.lease;
    assert.equal(leased(), undefined, 'a third connection to d1 had to wait');
    assert.equal(pool.openConnections().get('d1'), 2);
    const other = await pool.lease('d2', limits());
    assert.ok(other, 'another destination is not held up');
    a.release(undefined);
    await tick();
    const granted = leased();
    assert.ok(granted, 'the waiting job got the freed slot');
    assert.equal(pool.openConnections().get('d1'), 2);
    b.release(undefined);
    granted.release(undefined);
    other.release(undefined);
    assert.equal(pool.openConnections().size, 0);
  });

  it('hands an idle connection to the next job for the same destination, up to the transaction limit', async () => {
    const pool = new ConnectionPool({ maxTotal: 100 });
    const conn = fakeConnection();
    const first = await pool.lease('d1', limits());
    assert.equal(first.reused, undefined);
    conn.sent(1);
    first.release(conn);
    const second = await pool.lease('d1', limits());
    assert.equal(second.reused, conn, 'the parked connection is reused');
    conn.sent(2); // now 3 = maxMessagesPerConnection
    second.release(conn);
    assert.equal(conn.quits, 1, 'a connection at its transaction limit is closed with QUIT');
    const third = await pool.lease('d1', limits());
    assert.equal(third.reused, undefined);
    third.release(undefined);
    await pool.close();
  });

  it('passes a finished connection straight to a job waiting for the same destination', async () => {
    const pool = new ConnectionPool({ maxTotal: 100 });
    const one = await pool.lease('d1', limits({ maxPerDestination: 1 }));
    const waiting = pool.lease('d1', limits({ maxPerDestination: 1 }));
    const conn = fakeConnection();
    one.release(conn);
    const next = await waiting;
    assert.equal(next.reused, conn);
    assert.equal(pool.openConnections().get('d1'), 1, 'the slot moved with the connection');
    next.release(undefined);
  });

  it('closes an idle connection elsewhere when only the node-wide limit is in the way', async () => {
    const pool = new ConnectionPool({ maxTotal: 1 });
    const idle = fakeConnection();
    const first = await pool.lease('d1', limits());
    first.release(idle);
    assert.equal(pool.openConnections().get('d1'), 1, 'the idle connection keeps its slot');
    const other = await pool.lease('d2', limits());
    assert.equal(idle.quits, 1, 'the idle connection to d1 made room');
    assert.equal(pool.openConnections().get('d1'), undefined);
    other.release(undefined);
  });

  it('counts the per-connector limit across destinations', async () => {
    const pool = new ConnectionPool({ maxTotal: 100 });
    const l = limits({ maxPerConnector: 1 });
    const a = await pool.lease('d1', l);
    let b: unknown;
    void pool.lease('d2', l).then((x) => {
      b = x;
    });
    await tick();
    assert.equal(b, undefined, 'd2 waits: the connector has one connection in use');
    a.release(undefined);
    await tick();
    assert.ok(b);
  });

  it('drops an idle connection that died while parked instead of handing it out', async () => {
    const pool = new ConnectionPool({ maxTotal: 100 });
    const conn = fakeConnection();
    const first = await pool.lease('d1', limits());
    first.release(conn);
    conn.close();
    const next = await pool.lease('d1', limits());
    assert.equal(next.reused, undefined);
    assert.equal(pool.openConnections().get('d1'), 1, 'the dead one gave its slot back');
    next.release(undefined);
  });
});
