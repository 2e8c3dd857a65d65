import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import type { AttemptResult, DeliveryAgent } from '../../src/delivery/types.ts';
import { fixedIntervalPolicy } from '../../src/queue/retry-policy.ts';
import { DeliveryScheduler } from '../../src/queue/scheduler.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { ClaimOptions, DeliveryJob, NewRecipient, NextHop } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { commitBytes, newMessage } from './store-contract.ts';

const HOUR = 3_600_000;
const remote = (address: string): NewRecipient => ({
  address,
  nextHop: { type: 'smtp', domain: address.split('@')[1]! },
});
const domainOf = (job: DeliveryJob) => job.recipients[0]!.address.split('@')[1]!;

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Per-queue limits at claim time: a claim passes over the due rows of a queue that has no room
 * (they stay pending, for a later claim), and the scheduler gives a queue no more jobs than its
 * agent's maxConcurrentJobs, without re-reading the queue in a loop while that queue is full.
 */
describe('claims with per-queue room', () => {
  let dir: string;
  let clock: ManualClock;
  let store: SqliteQueueStore;

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-room-');
    clock = new ManualClock(Date.UTC(2026, 11, 1));
    store = new SqliteQueueStore({ dir, clock, ids: createIdGenerator(clock), messageExpiration: 48 * HOUR });
    await store.open();
  });
  afterEach(async () => {
    await store.close();
    await removeDir(dir);
  });

  async function queueFor(domain: string, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      ids.push((await commitBytes(store, newMessage([remote(`r${i}@${domain}`)]), [Buffer.from('x')])).id);
    }
    return ids;
  }

  it('hands out at most the room of each queue and passes over the rest, asking once per queue', async () => {
    await queueFor('busy.test', 5);
    await queueFor('quiet.test', 1);
    const asked: Array<[string, NextHop]> = [];
    const room: ClaimOptions['queueRoom'] = (queue, hop) => {
      asked.push([queue, hop]);
      return queue === 'smtp:busy.test' ? 2 : 10;
    };
    const jobs = await store.claimDue({ now: clock.now(), limit: 10, hopType: 'smtp', queueRoom: room });
    assert.deepEqual(jobs.map(domainOf), ['busy.test', 'busy.test', 'quiet.test']);
    assert.deepEqual(asked, [
      ['smtp:busy.test', { type: 'smtp', domain: 'busy.test' }],
      ['smtp:quiet.test', { type: 'smtp', domain: 'quiet.test' }],
    ]);
    // Passed over, not claimed: the next claim with room takes them, in due order.
    const rest = await store.claimDue({ now: clock.now(), limit: 10, hopType: 'smtp', queueRoom: () => 10 });
    assert.equal(rest.length, 3);
    assert.ok(rest.every((j) => domainOf(j) === 'busy.test'));
  });

  it('claims nothing of a queue without room, and its rows stay due', async () => {
    await queueFor('busy.test', 3);
    const none = await store.claimDue({ now: clock.now(), limit: 10, hopType: 'smtp', queueRoom: () => 0 });
    assert.deepEqual(none, []);
    assert.equal(await store.nextDueAt('smtp'), clock.now());
    assert.equal((await store.countRecipients()).active, 0);
  });

  it('tells the next due time after a given time, leaving claimed rows out', async () => {
    await queueFor('busy.test', 1);
    const queuedAt = clock.now();
    clock.advance(10_000);
    await queueFor('later.test', 2);
    assert.equal(await store.nextDueAt('smtp', { after: queuedAt }), queuedAt + 10_000);
    assert.equal(await store.nextDueAt('smtp', { after: queuedAt + 10_000 }), undefined);
    await store.claimDue({ now: clock.now(), limit: 2, hopType: 'smtp' });
    // The first later.test row is claimed now; the second one is still waiting.
    assert.equal(await store.nextDueAt('smtp', { after: queuedAt }), queuedAt + 10_000);
    await store.claimDue({ now: clock.now(), limit: 1, hopType: 'smtp' });
    assert.equal(await store.nextDueAt('smtp', { after: queuedAt }), undefined);
  });
});

/** An SMTP-like agent that holds every job until released and allows `limit` per queue. */
class HoldingAgent implements DeliveryAgent {
  readonly hopType = 'smtp' as const;
  readonly running = new Map<string, number>();
  readonly peak = new Map<string, number>();
  readonly started: string[] = [];
  readonly #waiting: Array<() => void> = [];
  readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }

  maxConcurrentJobs(hop: NextHop): number {
    return hop.type === 'smtp' ? this.limit : Number.POSITIVE_INFINITY;
  }

  async deliver(job: DeliveryJob): Promise<ReadonlyMap<number, AttemptResult>> {
    const domain = domainOf(job);
    this.started.push(domain);
    const n = (this.running.get(domain) ?? 0) + 1;
    this.running.set(domain, n);
    this.peak.set(domain, Math.max(this.peak.get(domain) ?? 0, n));
    if (!this.#done) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.running.set(domain, (this.running.get(domain) ?? 1) - 1);
    return new Map(job.recipients.map((r) => [r.index, { kind: 'delivered', response: '250 ok' } as const]));
  }

  #done = false;
  /** Lets every job finish, now and from now on (so the scheduler can stop). */
  releaseAll(): void {
    this.#done = true;
    for (const release of this.#waiting.splice(0)) release();
  }

  /** Lets the oldest held job finish. */
  releaseOne(): void {
    this.#waiting.shift()?.();
  }
  get held(): number {
    return this.#waiting.length;
  }
}

describe('the scheduler with per-queue limits', () => {
  let dir: string;
  let clock: ManualClock;
  let store: SqliteQueueStore;
  let scheduler: DeliveryScheduler | undefined;
  let claims: number;
  let agents: HoldingAgent[];

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-room-sched-');
    clock = new ManualClock(Date.UTC(2026, 11, 1));
    store = new SqliteQueueStore({ dir, clock, ids: createIdGenerator(clock), messageExpiration: 48 * HOUR });
    await store.open();
    claims = 0;
    agents = [];
    const claimDue = store.claimDue.bind(store);
    store.claimDue = (options) => {
      claims++;
      return claimDue(options);
    };
  });
  afterEach(async () => {
    for (const agent of agents) agent.releaseAll();
    await scheduler?.stop();
    await store.close();
    await removeDir(dir);
  });

  function start(agent: HoldingAgent, concurrency: number): DeliveryScheduler {
    agents.push(agent);
    scheduler = new DeliveryScheduler({
      store,
      agents: [agent],
      clock,
      retryPolicy: () => fixedIntervalPolicy(5 * 60_000),
      concurrency,
      pollInterval: 50,
    });
    scheduler.start();
    return scheduler;
  }

  it('runs no more than the limit of one queue and gives the other slots to other queues', async () => {
    for (let i = 0; i < 6; i++)
      await commitBytes(store, newMessage([remote(`a${i}@busy.test`)]), [Buffer.from('x')]);
    const agent = new HoldingAgent(2);
    const s = start(agent, 4);
    await until(() => agent.held === 2, 'two busy.test jobs');
    await commitBytes(store, newMessage([remote('b@quiet.test')]), [Buffer.from('x')]);
    s.wake();
    await until(() => agent.started.includes('quiet.test'), 'the quiet.test job');
    assert.equal(agent.running.get('busy.test'), 2);

    // Each busy.test job that finishes makes room for exactly one more of them.
    while (agent.started.filter((d) => d === 'busy.test').length < 6) {
      agent.releaseOne();
      await until(() => agent.held >= 2 || agent.started.length === 7, 'the next job');
    }
    while (agent.held > 0) agent.releaseOne();
    await until(async () => (await store.countRecipients()).pending === 0, 'all delivered');
    assert.equal(agent.peak.get('busy.test'), 2);
  });

  it('does not keep re-reading the queue while its only due rows are in a full queue', async () => {
    for (let i = 0; i < 5; i++)
      await commitBytes(store, newMessage([remote(`a${i}@busy.test`)]), [Buffer.from('x')]);
    const agent = new HoldingAgent(1);
    start(agent, 4);
    await until(() => agent.held === 1, 'the one busy.test job');
    const before = claims;
    await new Promise((r) => setTimeout(r, 300));
    // The poll (every 50 ms) looks again; a sleep of zero would claim thousands of times.
    assert.ok(claims - before <= 10, `${claims - before} claims in 300 ms with nothing claimable`);
    assert.equal(agent.started.length, 1);
    agent.releaseOne();
    await until(() => agent.started.length === 2, 'the next busy.test job after one finished');
  });
});
