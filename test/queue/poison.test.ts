import assert from 'node:assert/strict';
import { lstat, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { InflightJournal } from '../../src/queue/inflight-journal.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { mailbox, openAdminStore } from './admin-fixture.ts';
import { commitBytes, newMessage } from './store-contract.ts';

/**
 * Poison messages (Exchange's PoisonThreshold): a message that was being delivered when the
 * process died twice goes to the Poison queue and is not delivered until released. A crash is
 * simulated by claiming the message (which writes the in-flight journal), then reopening the
 * store with the journal as the dead process left it.
 */
describe('the Poison queue', () => {
  let dir: string;
  let t: Awaited<ReturnType<typeof openAdminStore>>;
  const journal = () => join(dir, 'inflight.journal');

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-poison-');
    t = await openAdminStore(dir);
  });
  afterEach(async () => {
    await t.store.close();
    await removeDir(dir);
  });

  /** Claims the message for delivery, then "crashes": the store reopens on the journal as it was. */
  async function crashWhileDelivering(id: string) {
    const jobs = await t.store.claimDue({ now: t.clock.now() + 86_400_000, limit: 100 });
    assert.ok(
      jobs.some((j) => j.message.id === id),
      'the message is claimed for delivery',
    );
    const leftBehind = await readFile(journal());
    assert.match(leftBehind.toString(), new RegExp(`^\\+${id}$`, 'm'));
    await t.store.close();
    await writeFile(journal(), leftBehind);
    t = await openAdminStore(dir, { clock: t.clock });
  }

  it('moves a message to Poison after two crashes during its delivery, keeps other mail flowing, and delivers it once released', async () => {
    const bad = await commitBytes(t.store, newMessage([mailbox('alice@example.test')], { subject: 'boom' }), [
      Buffer.from('x'),
    ]);
    await crashWhileDelivering(bad.id);
    let view = await t.admin.getMessage(bad.id);
    assert.deepEqual([view?.status, view?.crashCount], ['Ready', 1], 'one crash: still delivered');

    await crashWhileDelivering(bad.id);
    view = await t.admin.getMessage(bad.id);
    assert.deepEqual([view?.status, view?.crashCount, view?.queues], ['Poison', 2, ['poison']]);
    const poison = await t.admin.getQueue('poison');
    assert.deepEqual([poison?.messageCount, poison?.recipientCount], [1, 1]);
    assert.equal((await t.admin.listMessages({ queue: 'poison' }))[0]?.id, bad.id);
    assert.equal((await t.admin.listMessages({ status: 'Poison' }))[0]?.id, bad.id);
    const event = t.events.find((e) => e.eventId === 'POISONMESSAGE');
    assert.deepEqual(
      [event?.internalId, event?.subject, event?.recipients],
      [bad.id, 'boom', ['alice@example.test']],
    );

    // Never claimed, never expired while in Poison; other mail goes on.
    const good = await commitBytes(t.store, newMessage([mailbox('bob@example.test')]), [Buffer.from('y')]);
    const jobs = await t.store.claimDue({ now: t.clock.now() + 86_400_000, limit: 10 });
    assert.deepEqual(
      jobs.map((j) => j.message.id),
      [good.id],
    );
    assert.equal(await t.store.expireDue(t.clock.now() + 10 * 86_400_000, 100), 0);
    await assert.rejects(t.admin.suspendMessage(bad.id), { code: 'conflict' });
    await assert.rejects(t.admin.releasePoisonMessage(good.id), { code: 'conflict' });

    await t.admin.releasePoisonMessage(bad.id);
    view = await t.admin.getMessage(bad.id);
    assert.deepEqual([view?.status, view?.crashCount], ['Ready', 0]);
    const released = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    assert.deepEqual(
      released.map((j) => j.message.id),
      [bad.id],
    );
  });

  it('counts no crash after a clean stop, and keeps the journal empty when nothing is in flight', async () => {
    const m = await commitBytes(t.store, newMessage([mailbox('alice@example.test')]), [Buffer.from('x')]);
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    assert.ok((await stat(journal())).size > 0);
    await t.store.recordOutcomes([
      {
        ref: { messageId: m.id, index: job!.recipients[0]!.index },
        outcome: { kind: 'deferred', response: '451 x', nextAttemptAt: t.clock.now() },
      },
    ]);
    assert.equal((await stat(journal())).size, 0, 'truncated once nothing is in flight');
    await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    await t.store.close();
    assert.equal((await stat(journal())).size, 0, 'a clean stop leaves no message in processing');
    t = await openAdminStore(dir, { clock: t.clock });
    assert.equal((await t.admin.getMessage(m.id))?.crashCount, 0);
  });

  it('honours a configured threshold, and ignores a torn last line', async () => {
    await t.store.close();
    t = await openAdminStore(dir, { clock: t.clock, poisonThreshold: 1 });
    const m = await commitBytes(t.store, newMessage([mailbox('alice@example.test')]), [Buffer.from('x')]);
    await t.store.close();
    // A crash mid-write leaves a line without its newline: not counted.
    await writeFile(journal(), `+${m.id}`);
    t = await openAdminStore(dir, { clock: t.clock, poisonThreshold: 1 });
    assert.equal((await t.admin.getMessage(m.id))?.crashCount, 0);
    await t.store.close();
    await writeFile(journal(), `+${m.id}\n+0000000000GONE\n`);
    t = await openAdminStore(dir, { clock: t.clock, poisonThreshold: 1 });
    assert.equal((await t.admin.getMessage(m.id))?.status, 'Poison');
  });

  it('deletes a poison message when the administrator removes it, with a DROP event', async () => {
    const bad = await commitBytes(t.store, newMessage([mailbox('alice@example.test')], { subject: 'boom' }), [
      Buffer.from('x'),
    ]);
    await crashWhileDelivering(bad.id);
    await crashWhileDelivering(bad.id);
    assert.equal((await t.admin.getMessage(bad.id))?.status, 'Poison');
    await t.admin.removeMessage(bad.id, { ndr: false });
    assert.equal(await t.admin.getMessage(bad.id), undefined, 'the poison message is still queued');
    assert.equal((await t.admin.getQueue('poison'))?.messageCount, 0);
    assert.ok(
      t.events.some((e) => e.eventId === 'DROP' && e.internalId === bad.id),
      'no DROP event for the deleted poison message',
    );
  });

  it('forgets the crashes of a message whose delivery then ended normally', async () => {
    const m = await commitBytes(t.store, newMessage([mailbox('alice@example.test')]), [Buffer.from('x')]);
    await crashWhileDelivering(m.id);
    assert.equal((await t.admin.getMessage(m.id))?.crashCount, 1);
    const [job] = await t.store.claimDue({ now: t.clock.now() + 86_400_000, limit: 10 });
    assert.equal(job?.message.id, m.id);
    await t.store.recordOutcomes([
      {
        ref: { messageId: m.id, index: 0 },
        outcome: { kind: 'deferred', response: '451 4.3.0 try later', nextAttemptAt: t.clock.now() },
      },
    ]);
    assert.equal((await t.admin.getMessage(m.id))?.crashCount, 0, 'a normal attempt left the crash counted');
    // A later kill during its delivery is its first crash again, not its second: not Poison.
    await crashWhileDelivering(m.id);
    assert.deepEqual(
      [(await t.admin.getMessage(m.id))?.status, (await t.admin.getMessage(m.id))?.crashCount],
      ['Ready', 1],
    );
  });
});

describe('the in-flight journal on a failing disk', () => {
  it('stops journaling and removes its file instead of failing the delivery', async () => {
    const dir = await makeTempDir('ferrymail-journal-');
    try {
      // /dev/full answers every write with ENOSPC; the link (not the device) is what gets removed.
      const path = join(dir, 'inflight.journal');
      await symlink('/dev/full', path);
      const errors: Error[] = [];
      const j = new InflightJournal(path, (error) => errors.push(error));
      j.open();
      j.begin(['0000000000AAAA']);
      j.begin(['0000000000BBBB']);
      j.end('0000000000AAAA');
      j.close();
      assert.equal(errors.length, 1, 'the failure was not reported once');
      assert.equal((errors[0] as NodeJS.ErrnoException).code, 'ENOSPC');
      await assert.rejects(lstat(path), { code: 'ENOENT' }, 'the broken journal was left behind');
    } finally {
      await removeDir(dir);
    }
  });
});
