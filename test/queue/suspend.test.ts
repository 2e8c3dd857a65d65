import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { AttemptResult, DeliveryAgent } from '../../src/delivery/types.ts';
import { fixedIntervalPolicy } from '../../src/queue/retry-policy.ts';
import { DeliveryScheduler } from '../../src/queue/scheduler.ts';
import type { DeliveryJob } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { mailbox, openAdminStore, remote } from './admin-fixture.ts';
import { commitBytes, newMessage } from './store-contract.ts';

/** Delivers every recipient at once and remembers which. */
class RecordingAgent implements DeliveryAgent {
  readonly delivered: string[] = [];
  readonly hopType: DeliveryAgent['hopType'];
  constructor(hopType: DeliveryAgent['hopType']) {
    this.hopType = hopType;
  }
  async deliver(job: DeliveryJob): Promise<ReadonlyMap<number, AttemptResult>> {
    for (const r of job.recipients) this.delivered.push(r.address);
    return new Map(job.recipients.map((r) => [r.index, { kind: 'delivered', response: '250 ok' } as const]));
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('a suspended queue', () => {
  let dir: string;
  let t: Awaited<ReturnType<typeof openAdminStore>>;
  let agents: RecordingAgent[];
  let scheduler: DeliveryScheduler;

  function startScheduler() {
    agents = [new RecordingAgent('mailbox'), new RecordingAgent('smtp')];
    scheduler = new DeliveryScheduler({
      store: t.store,
      agents,
      clock: t.clock,
      retryPolicy: () => fixedIntervalPolicy(60_000),
      concurrency: 4,
      pollInterval: 10,
    });
    scheduler.start();
  }

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-suspend-');
    t = await openAdminStore(dir);
  });
  afterEach(async () => {
    await scheduler?.stop();
    await t.store.close();
    await removeDir(dir);
  });

  it('delivers nothing from it while suspended, still after a reopen, and everything once resumed', async () => {
    await commitBytes(t.store, newMessage([remote('x@remote.test')]), [Buffer.from('1')]);
    await t.admin.suspendQueue('smtp:remote.test');
    // Committed after the suspension: held as well.
    await commitBytes(t.store, newMessage([remote('y@remote.test'), mailbox('bob@example.test')]), [
      Buffer.from('2'),
    ]);
    assert.equal((await t.admin.getQueue('smtp:remote.test'))?.status, 'Suspended');

    startScheduler();
    // Other queues still flow.
    await until(() => agents[0]!.delivered.length === 1, 'the mailbox delivery');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(agents[1]!.delivered, [], 'nothing leaves a suspended queue');

    // Durable: the store reopened (a restart) still holds the queue.
    await scheduler.stop();
    await t.store.close();
    t = await openAdminStore(dir, { clock: t.clock });
    const queue = await t.admin.getQueue('smtp:remote.test');
    assert.equal(queue?.status, 'Suspended');
    assert.equal(queue?.recipientCount, 2);
    assert.deepEqual(await t.store.claimDue({ now: t.clock.now() + 86_400_000, limit: 10 }), []);

    startScheduler();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(agents[1]!.delivered, []);
    await t.admin.resumeQueue('smtp:remote.test');
    scheduler.wake();
    await until(() => agents[1]!.delivered.length === 2, 'the resumed queue to be delivered');
    assert.deepEqual(agents[1]!.delivered.sort(), ['x@remote.test', 'y@remote.test']);
  });

  it('stays listed when it empties, so it can be resumed, and is gone once resumed', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')]), [Buffer.from('1')]);
    await t.admin.suspendQueue('smtp:remote.test');
    await t.admin.removeMessage(m.id, { ndr: false });
    const queue = await t.admin.getQueue('smtp:remote.test');
    assert.deepEqual([queue?.status, queue?.recipientCount], ['Suspended', 0]);
    await t.admin.resumeQueue('smtp:remote.test');
    assert.equal(await t.admin.getQueue('smtp:remote.test'), undefined);
    await assert.rejects(t.admin.resumeQueue('smtp:remote.test'), { code: 'not-found' });
  });

  it('a recipient being delivered when its queue is suspended is held if the attempt is deferred', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')]), [Buffer.from('1')]);
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    await t.admin.suspendQueue('smtp:remote.test');
    await t.store.recordOutcomes([
      {
        ref: { messageId: m.id, index: job!.recipients[0]!.index },
        outcome: { kind: 'deferred', response: '451 later', nextAttemptAt: t.clock.now() },
      },
    ]);
    assert.equal((await t.admin.getMessage(m.id))?.status, 'Suspended');
    assert.deepEqual(await t.store.claimDue({ now: t.clock.now(), limit: 10 }), []);
  });
});
