import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import type { AttemptResult, DeliveryAgent } from '../../src/delivery/types.ts';
import { fixedIntervalPolicy } from '../../src/queue/retry-policy.ts';
import { DeliveryScheduler } from '../../src/queue/scheduler.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { DeliveryJob, NewRecipient, RecipientOutcome } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { commitBytes, newMessage } from './store-contract.ts';

const HOUR = 3_600_000;
const mailbox = (address: string): NewRecipient => ({
  address,
  nextHop: { type: 'mailbox', mailbox: address },
});

/** A delivery agent that answers from a script and remembers what it was given. */
class ScriptedAgent implements DeliveryAgent {
  readonly hopType = 'mailbox' as const;
  readonly jobs: DeliveryJob[] = [];
  running = 0;
  maxRunning = 0;
  /** The result for one recipient; `undefined` leaves it out of the result map. */
  answer: (address: string) => AttemptResult | Error | undefined = () => ({
    kind: 'delivered',
    response: '250 ok',
  });
  hold: Promise<void> = Promise.resolve();

  async deliver(job: DeliveryJob): Promise<ReadonlyMap<number, AttemptResult>> {
    this.jobs.push(job);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await this.hold;
      const results = new Map<number, AttemptResult>();
      for (const r of job.recipients) {
        const a = this.answer(r.address);
        if (a instanceof Error) throw a;
        if (a) results.set(r.index, a);
      }
      return results;
    } finally {
      this.running--;
    }
  }
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the delivery scheduler', () => {
  let dir: string;
  let clock: ManualClock;
  let store: SqliteQueueStore;
  let agent: ScriptedAgent;
  let scheduler: DeliveryScheduler;
  let outcomes: Array<[string, RecipientOutcome]>;

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-sched-');
    clock = new ManualClock(Date.UTC(2026, 10, 24));
    store = new SqliteQueueStore({ dir, clock, ids: createIdGenerator(clock), messageExpiration: 48 * HOUR });
    await store.open();
    agent = new ScriptedAgent();
    outcomes = [];
    scheduler = new DeliveryScheduler({
      store,
      agents: [agent],
      clock,
      retryPolicy: () => fixedIntervalPolicy(5 * 60_000),
      concurrency: 2,
      pollInterval: 20,
      onJobOutcomes: (_message, results) => {
        for (const { recipient, outcome } of results) outcomes.push([recipient.address, outcome]);
      },
    });
  });
  afterEach(async () => {
    await scheduler?.stop();
    await store?.close();
    if (dir) await removeDir(dir);
  });

  async function recipientStatus(id: string) {
    return (await store.getMessage(id))?.recipients.map((r) => [r.status, r.attempts, r.lastResponse]);
  }

  it('delivers a due message and removes it from the queue', async () => {
    const q = await commitBytes(store, newMessage([mailbox('a@example.test')]), [Buffer.from('x')]);
    scheduler.start();
    await until(async () => (await store.getMessage(q.id)) === undefined, 'delivery');
    assert.equal(agent.jobs.length, 1);
    assert.deepEqual(outcomes, [['a@example.test', { kind: 'delivered', response: '250 ok' }]]);
    await scheduler.stop();
  });

  it('retries a transient failure after the retry interval, and not before', async () => {
    let failures = 1;
    agent.answer = () =>
      failures-- > 0
        ? { kind: 'transient', response: '451 4.3.0 busy' }
        : { kind: 'delivered', response: '250 ok' };
    const q = await commitBytes(store, newMessage([mailbox('a@example.test')]), [Buffer.from('x')]);
    scheduler.start();
    // Pending again once the outcome is recorded (it shows as active until then).
    await until(
      async () => (await recipientStatus(q.id))?.[0]?.[0] === 'pending' && agent.jobs.length === 1,
      'first attempt',
    );
    assert.deepEqual(await recipientStatus(q.id), [['pending', 1, '451 4.3.0 busy']]);
    clock.advance(4 * 60_000);
    scheduler.wake();
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(agent.jobs.length, 1, 'retried before the interval');
    clock.advance(60_000);
    scheduler.wake();
    await until(async () => (await store.getMessage(q.id)) === undefined, 'retry');
    assert.equal(agent.jobs.length, 2);
    await scheduler.stop();
  });

  it('fails a recipient on a permanent error', async () => {
    agent.answer = (address) =>
      address.startsWith('bad')
        ? { kind: 'permanent', response: '550 5.1.1 gone' }
        : { kind: 'transient', response: '451 later' };
    const q = await commitBytes(
      store,
      newMessage([mailbox('bad@example.test'), mailbox('slow@example.test')]),
      [Buffer.from('x')],
    );
    scheduler.start();
    await until(
      async () => (await recipientStatus(q.id))?.[1]?.[0] === 'pending' && agent.jobs.length === 1,
      'outcomes',
    );
    assert.deepEqual(await recipientStatus(q.id), [
      ['failed', 1, '550 5.1.1 gone'],
      ['pending', 1, '451 later'],
    ]);
    await scheduler.stop();
  });

  it('fails with 4.4.7 a transient recipient whose message has expired, owing its sender an NDR', async () => {
    agent.answer = () => ({ kind: 'transient', response: '451 4.3.0 busy' });
    const q = await commitBytes(store, newMessage([mailbox('a@example.test'), mailbox('b@example.test')]), [
      Buffer.from('x'),
    ]);
    clock.advance(49 * HOUR);
    scheduler.start();
    await until(
      async () => (await recipientStatus(q.id))?.every(([status]) => status === 'failed') ?? false,
      'expiry',
    );
    const expired = { kind: 'failed', response: '550 4.4.7 Message expired: 451 4.3.0 busy' };
    assert.deepEqual(outcomes, [
      ['a@example.test', expired],
      ['b@example.test', expired],
    ]);
    assert.deepEqual(
      (await store.getMessage(q.id))?.recipients.map((r) => r.pendingNotification),
      ['failure', 'failure'],
      'the failure notification is written with the outcome',
    );
    await scheduler.stop();
  });

  it('calls onRecorded once the outcomes of a job are durable', async () => {
    agent.answer = () => ({ kind: 'permanent', response: '550 5.1.1 gone' });
    const recorded: Array<{ pending: unknown }> = [];
    const hooked = new DeliveryScheduler({
      store,
      agents: [agent],
      clock,
      retryPolicy: () => fixedIntervalPolicy(60_000),
      concurrency: 1,
      pollInterval: 20,
      // What the hook sees must already be in the store: that is what lets a notifier woken here find it.
      onRecorded: (done) => {
        for (const { ref } of done)
          recorded.push({
            pending: store
              .getMessage(ref.messageId)
              .then((m) => m?.recipients[ref.index]?.pendingNotification),
          });
      },
    });
    const q = await commitBytes(store, newMessage([mailbox('a@example.test')]), [Buffer.from('x')]);
    hooked.start();
    await until(() => recorded.length === 1, 'the hook');
    assert.equal(await recorded[0]!.pending, 'failure');
    assert.equal((await store.getMessage(q.id))?.recipients[0]?.status, 'failed');
    await hooked.stop();
  });

  it('treats an agent that throws as a transient failure for every recipient of the job', async () => {
    agent.answer = () => new Error('mailbox server exploded');
    const q = await commitBytes(store, newMessage([mailbox('a@example.test')]), [Buffer.from('x')]);
    scheduler.start();
    await until(
      async () =>
        (await recipientStatus(q.id))?.[0]?.join() === 'pending,1,451 4.3.0 mailbox server exploded',
      'attempt',
    );
    await scheduler.stop();
  });

  it('treats a recipient the agent gave no result for as a transient failure', async () => {
    agent.answer = (address) =>
      address.startsWith('a') ? { kind: 'delivered', response: '250 ok' } : undefined;
    const q = await commitBytes(store, newMessage([mailbox('a@example.test'), mailbox('b@example.test')]), [
      Buffer.from('x'),
    ]);
    scheduler.start();
    await until(
      async () => (await recipientStatus(q.id))?.[1]?.[0] === 'pending' && outcomes.length === 2,
      'outcomes',
    );
    assert.deepEqual(await recipientStatus(q.id), [
      ['delivered', 1, '250 ok'],
      ['pending', 1, '451 4.3.0 No result from the delivery agent'],
    ]);
    assert.equal((await store.getMessage(q.id))?.recipients[1]?.nextAttemptAt, clock.now() + 5 * 60_000);
    await scheduler.stop();
  });

  it('does not spin while a due recipient has no agent and a long delivery runs', async () => {
    let release!: () => void;
    agent.hold = new Promise((r) => {
      release = r;
    });
    let claims = 0;
    const claimDue = store.claimDue.bind(store);
    store.claimDue = (options) => {
      claims++;
      return claimDue(options);
    };
    await commitBytes(store, newMessage([mailbox('slow@example.test')]), [Buffer.from('x')]);
    await commitBytes(
      store,
      newMessage([{ address: 'x@remote.test', nextHop: { type: 'smtp', domain: 'remote.test' } }]),
      [Buffer.from('x')],
    );
    const slow = new DeliveryScheduler({
      store,
      agents: [agent],
      clock,
      retryPolicy: () => fixedIntervalPolicy(60_000),
      concurrency: 2,
      pollInterval: 1000,
    });
    slow.start();
    await until(() => agent.running === 1, 'the long delivery');
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(claims <= 2, `${claims} claims in 150 ms while nothing could be done`);
    release();
    await slow.stop();
  });

  it('leaves recipients without an agent (the Unreachable queue) alone', async () => {
    const q = await commitBytes(
      store,
      newMessage([{ address: 'x@remote.test', nextHop: { type: 'unreachable', domain: 'remote.test' } }]),
      [Buffer.from('x')],
    );
    scheduler.start();
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(agent.jobs.length, 0);
    assert.deepEqual(await recipientStatus(q.id), [['pending', 0, undefined]]);
    await scheduler.stop();
  });

  it('runs at most `concurrency` jobs at once and waits for them on stop', async () => {
    let release!: () => void;
    agent.hold = new Promise((r) => {
      release = r;
    });
    const ids = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        (await commitBytes(store, newMessage([mailbox(`c${i}@example.test`)]), [Buffer.from('x')])).id,
      );
    scheduler.start();
    await until(() => agent.running === 2, 'two running jobs');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(agent.maxRunning, 2);
    let stopped = false;
    const stopping = scheduler.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(stopped, false, 'stop() returned while jobs were running');
    release();
    await stopping;
    assert.equal(agent.running, 0);
    assert.equal(agent.jobs.length, 2, 'no job started after stop()');
    for (const id of ids.slice(0, 2)) assert.equal(await store.getMessage(id), undefined, 'outcome recorded');
  });
});
