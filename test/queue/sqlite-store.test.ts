import assert from 'node:assert/strict';
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import { QueueUnavailableError } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { commitBytes, newMessage, runQueueStoreContract } from './store-contract.ts';

async function openStore(dir: string, clock = new ManualClock(), inlineBodyLimit?: number) {
  const store = new SqliteQueueStore({
    dir,
    clock,
    ids: createIdGenerator(clock),
    messageExpiration: 2 * 86_400_000,
    ...(inlineBodyLimit === undefined ? {} : { inlineBodyLimit }),
  });
  await store.open();
  return store;
}

for (const [label, inline] of [
  ['small bodies inline', undefined],
  ['every body in a file', 0],
] as const) {
  runQueueStoreContract(`SqliteQueueStore (${label})`, async () => {
    const dir = await makeTempDir('ferrymail-queue-');
    const clock = new ManualClock(Date.UTC(2026, 10, 24));
    let store = await openStore(dir, clock, inline);
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await openStore(dir, clock, inline);
        return store;
      },
      async cleanup() {
        await store.close();
        await removeDir(dir);
      },
      now: () => clock.now(),
    };
  });
}

const mailbox = (address: string) => ({ address, nextHop: { type: 'mailbox' as const, mailbox: address } });

describe('SqliteQueueStore', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-queue-');
  });
  after(() => removeDir(dir));

  it('shares one transaction among commits that arrive together (group commit)', async () => {
    const store = await openStore(join(dir, 'group'));
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        commitBytes(store, newMessage([mailbox(`u${i}@example.test`)]), [Buffer.from(`m${i}`)]),
      ),
    );
    const stats = store.stats();
    assert.equal(stats.commits, 50);
    assert.ok(stats.commitBatches <= 5, `50 concurrent commits took ${stats.commitBatches} batches`);
    await store.close();
  });

  it('flushes outcomes recorded the moment the previous ones resolved (no lost wake-up)', async () => {
    const store = await openStore(join(dir, 'chain'));
    const clock = new ManualClock();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++)
      ids.push(
        (await commitBytes(store, newMessage([mailbox(`c${i}@example.test`)]), [Buffer.from('x')])).id,
      );
    const jobs = await store.claimDue({ now: clock.now() + 1, limit: 100 });
    assert.equal(jobs.length, 30);
    const deadline = setTimeout(() => assert.fail('an outcome was never written'), 5000);
    for (const job of jobs) {
      // A caller that does a little async work first (as the scheduler does) resumes after the
      // flush loop has looked for more work, but possibly before it has finished.
      for (let hop = 0; hop < jobs.indexOf(job) % 8; hop++) await null;
      await store.recordOutcomes([
        { ref: { messageId: job.message.id, index: 0 }, outcome: { kind: 'delivered', response: '250 ok' } },
      ]);
    }
    clearTimeout(deadline);
    for (const id of ids) assert.equal(await store.getMessage(id), undefined);
    await store.close();
  });

  it('spills a body over the inline limit to a file and removes unacknowledged files on open', async () => {
    const path = join(dir, 'spill');
    const store = await openStore(path, new ManualClock(), 1024);
    const q = await commitBytes(store, newMessage([mailbox('big@example.test')]), [Buffer.alloc(4096, 0x61)]);
    assert.deepEqual(await readdir(join(path, 'bodies')), [q.id]);
    const pending = await store.openBody();
    await pending.write(Buffer.alloc(4096, 0x62));
    assert.deepEqual(await readdir(join(path, 'incoming')), [pending.id]);
    await store.close();
    await writeFile(join(path, 'bodies', 'ORPHAN'), 'never committed');
    const reopened = await openStore(path, new ManualClock(), 1024);
    assert.deepEqual(await readdir(join(path, 'incoming')), []);
    assert.deepEqual(await readdir(join(path, 'bodies')), [q.id]);
    await reopened.close();
  });

  it('fails the recipients of a message whose body file vanished, instead of crashing', async () => {
    const path = join(dir, 'vanished');
    const store = await openStore(path, new ManualClock(), 0);
    const q = await commitBytes(store, newMessage([mailbox('v@example.test')]), [Buffer.from('x')]);
    await store.close();
    const { unlink } = await import('node:fs/promises');
    await unlink(join(path, 'bodies', q.id));
    const reopened = await openStore(path, new ManualClock(), 0);
    const m = await reopened.getMessage(q.id);
    assert.equal(m?.recipients[0]?.status, 'failed');
    assert.match(m?.recipients[0]?.lastResponse ?? '', /^451 4\.3\.0 Queue file missing/);
    await reopened.close();
  });

  it('refuses new messages with QueueUnavailableError once closed', async () => {
    const store = await openStore(join(dir, 'closed'));
    await store.close();
    await assert.rejects(store.openBody(), QueueUnavailableError);
  });

  it('rejects a commit whose body cannot be written, leaving nothing behind', async () => {
    const path = join(dir, 'readonly');
    const store = await openStore(path, new ManualClock(), 0);
    await chmod(join(path, 'incoming'), 0o500);
    try {
      const body = await store.openBody();
      const failed = await body
        .write(Buffer.from('x'))
        .then(() => store.commit(body, newMessage([mailbox('r@example.test')])))
        .then(
          () => false,
          () => true,
        );
      // root ignores folder permissions; only assert when the write really failed.
      if (failed) assert.equal((await store.listMessages()).length, 0);
      else assert.equal(process.getuid?.(), 0, 'a read-only folder accepted a body for a non-root user');
    } finally {
      await chmod(join(path, 'incoming'), 0o700);
      await store.close();
    }
  });
});
