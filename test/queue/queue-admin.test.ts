import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { QueueAdminError } from '../../src/queue/admin-types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { HOUR, mailbox, openAdminStore, remote, toSmtp, unreachable } from './admin-fixture.ts';
import { commitBytes, newMessage } from './store-contract.ts';

type Fixture = Awaited<ReturnType<typeof openAdminStore>>;

/** Rejects with a QueueAdminError of this code. */
async function rejectsWith(promise: Promise<unknown>, code: QueueAdminError['code'], message?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof QueueAdminError, `expected a QueueAdminError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('the queue viewer over the SQLite store', () => {
  let dir: string;
  let t: Fixture;
  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-qadmin-');
    t = await openAdminStore(dir, {
      route: (recipient) =>
        recipient.address.endsWith('@nowhere.test')
          ? toSmtp('nowhere.test', 'Added')
          : recipient.nextHop.type === 'mailbox'
            ? recipient.nextHop
            : toSmtp(recipient.address.slice(recipient.address.indexOf('@') + 1), 'Outbound'),
    });
  });
  afterEach(async () => {
    await t.store.close();
    await removeDir(dir);
  });

  it('lists each queue with its type, status, counts, next retry and last error', async () => {
    await commitBytes(t.store, newMessage([mailbox('alice@example.test'), mailbox('bob@example.test')]), [
      Buffer.from('a'),
    ]);
    const outbound = await commitBytes(
      t.store,
      newMessage([remote('x@remote.test'), remote('y@remote.test')]),
      [Buffer.from('b')],
    );
    await commitBytes(t.store, newMessage([unreachable('z@nowhere.test')]), [Buffer.from('c')]);

    let queues = await t.admin.listQueues();
    assert.deepEqual(
      queues.map((q) => [q.name, q.deliveryType, q.status, q.messageCount, q.recipientCount]),
      [
        ['mailbox', 'MailboxDelivery', 'Ready', 1, 2],
        ['poison', 'Poison', 'Ready', 0, 0],
        ['smtp:remote.test', 'DnsConnectorDelivery', 'Ready', 1, 2],
        ['unreachable', 'Unreachable', 'Ready', 1, 1],
      ],
    );
    const smtp = queues.find((q) => q.name === 'smtp:remote.test')!;
    assert.equal(smtp.nextHop, 'remote.test');
    assert.equal(smtp.connector, 'Outbound');

    // In delivery: Active. Deferred: Retry, with the next attempt and the reply that deferred it.
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10, hopType: 'smtp' });
    assert.equal(job?.message.id, outbound.id);
    assert.equal((await t.admin.getQueue('smtp:remote.test'))?.status, 'Active');
    const retryAt = t.clock.now() + HOUR;
    await t.store.recordOutcomes(
      job!.recipients.map((r) => ({
        ref: { messageId: outbound.id, index: r.index },
        outcome: { kind: 'deferred', response: '451 4.4.1 Connection refused', nextAttemptAt: retryAt },
      })),
    );
    queues = await t.admin.listQueues();
    const retrying = queues.find((q) => q.name === 'smtp:remote.test')!;
    assert.equal(retrying.status, 'Retry');
    assert.equal(retrying.nextRetryAt, retryAt);
    assert.equal(retrying.lastError, '451 4.4.1 Connection refused');
    assert.equal(await t.admin.getQueue('smtp:elsewhere.test'), undefined);
    await rejectsWith(t.admin.getQueue('nonsense'), 'invalid');
  });

  it('shows every queue its own last error when more queues were deferred than it keeps in memory', async () => {
    const smallDir = await makeTempDir('ferrymail-qadmin-lasterror-');
    const small = await openAdminStore(smallDir, {
      lastErrorQueues: 2,
      route: (recipient) => toSmtp(recipient.address.slice(recipient.address.indexOf('@') + 1), 'Outbound'),
    });
    try {
      const domains = ['a.test', 'b.test', 'c.test', 'd.test'];
      for (const domain of domains) {
        const m = await commitBytes(small.store, newMessage([remote(`x@${domain}`)]), [Buffer.from(domain)]);
        const [job] = await small.store.claimDue({ now: small.clock.now(), limit: 10, hopType: 'smtp' });
        assert.equal(job?.message.id, m.id);
        await small.store.recordOutcomes([
          {
            ref: { messageId: m.id, index: 0 },
            outcome: {
              kind: 'deferred',
              response: `451 4.4.1 ${domain} refused`,
              nextAttemptAt: small.clock.now() + HOUR,
            },
          },
        ]);
      }
      // Only the two most recent fit in memory; a.test and b.test come from their rows again.
      for (const domain of domains) {
        assert.equal(
          (await small.admin.getQueue(`smtp:${domain}`))?.lastError,
          `451 4.4.1 ${domain} refused`,
          `smtp:${domain} shows another queue's error or none`,
        );
      }
    } finally {
      await small.store.close();
      await removeDir(smallDir);
    }
  });

  it('shows a message with its status, queues and recipients, and answers undefined for an unknown id', async () => {
    const m = await commitBytes(
      t.store,
      newMessage([mailbox('alice@example.test'), remote('x@remote.test')]),
      [Buffer.from('hello')],
    );
    const view = await t.admin.getMessage(m.id);
    assert.equal(view?.status, 'Ready');
    assert.deepEqual(view?.queues, ['mailbox', 'smtp:remote.test']);
    assert.equal(view?.crashCount, 0);
    assert.deepEqual(
      view?.recipients.map((r) => [r.address, r.status]),
      [
        ['alice@example.test', 'pending'],
        ['x@remote.test', 'pending'],
      ],
    );
    assert.equal(await t.admin.getMessage('0000000000NOSUCHID'), undefined);
    assert.equal(await t.admin.getMessage('../../etc/passwd'), undefined);
  });

  it('filters messages by queue, sender, recipient, subject, received time and status, a page at a time', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      t.clock.advance(1000);
      const m = await commitBytes(
        t.store,
        newMessage([i % 2 === 0 ? mailbox(`u${i}@example.test`) : remote(`u${i}@remote.test`)], {
          sender: i < 3 ? 'Boss@Corp.test' : 'other@corp.test',
          subject: i === 4 ? 'Invoice 100% due' : `note ${i}`,
        }),
        [Buffer.from(`m${i}`)],
      );
      ids.push(m.id);
    }
    const list = async (filter: Parameters<typeof t.admin.listMessages>[0]) =>
      (await t.admin.listMessages(filter)).map((m) => ids.indexOf(m.id));

    assert.deepEqual(await list({}), [0, 1, 2, 3, 4, 5, 6]);
    // Keyset pagination: each page starts after the last id of the previous one.
    const first = await t.admin.listMessages({ limit: 3 });
    assert.deepEqual(
      first.map((m) => ids.indexOf(m.id)),
      [0, 1, 2],
    );
    assert.deepEqual(await list({ limit: 3, after: first[2]!.id }), [3, 4, 5]);
    assert.deepEqual(await list({ limit: 3, after: ids[5]! }), [6]);

    assert.deepEqual(await list({ queue: 'mailbox' }), [0, 2, 4, 6]);
    assert.deepEqual(await list({ queue: 'smtp:remote.test', limit: 2 }), [1, 3]);
    assert.deepEqual(await list({ sender: 'boss@corp.TEST' }), [0, 1, 2]);
    assert.deepEqual(await list({ sender: 'boss@corp.test', queue: 'mailbox' }), [0, 2]);
    assert.deepEqual(await list({ recipient: 'U3@remote.test' }), [3]);
    assert.deepEqual(await list({ subject: '100%' }), [4]);
    assert.deepEqual(await list({ subject: 'NOTE' }), [0, 1, 2, 3, 5, 6]);
    const received = (await t.admin.getMessage(ids[2]!))!.receivedAt;
    assert.deepEqual(await list({ receivedAfter: received, receivedBefore: received + 2000 }), [2, 3]);

    await t.admin.suspendMessage(ids[5]!);
    t.clock.advance(10);
    assert.deepEqual(await list({ status: 'Suspended' }), [5]);
    assert.deepEqual(await list({ status: 'Ready', queue: 'smtp:remote.test' }), [1, 3]);
    assert.deepEqual(await list({ status: 'Poison' }), []);
    await t.store.claimDue({ now: t.clock.now(), limit: 1, hopType: 'mailbox' });
    assert.deepEqual(await list({ status: 'Active' }), [0]);
    assert.deepEqual(await list({ status: 'Active', queue: 'smtp:remote.test' }), []);
  });

  it('refuses a malformed filter with a precise invalid error', async () => {
    await rejectsWith(t.admin.listMessages({ limit: 0 }), 'invalid', /limit/);
    await rejectsWith(t.admin.listMessages({ limit: 1001 }), 'invalid', /limit/);
    await rejectsWith(t.admin.listMessages({ limit: 2.5 }), 'invalid', /limit/);
    await rejectsWith(t.admin.listMessages({ status: 'Lost' as 'Ready' }), 'invalid', /status/);
    await rejectsWith(t.admin.listMessages({ queue: 'smtp:' }), 'invalid', /queue/);
    await rejectsWith(t.admin.listMessages({ after: "x' OR 1=1" }), 'invalid', /after/);
    await rejectsWith(t.admin.listMessages({ sender: '' }), 'invalid', /sender/);
    await rejectsWith(t.admin.listMessages({ receivedAfter: Number.NaN }), 'invalid', /receivedAfter/);
  });

  it('suspends and resumes a message: suspended recipients are not claimed', async () => {
    const m = await commitBytes(t.store, newMessage([mailbox('alice@example.test')]), [Buffer.from('x')]);
    await t.admin.suspendMessage(m.id);
    assert.equal((await t.admin.getMessage(m.id))?.status, 'Suspended');
    assert.deepEqual(await t.store.claimDue({ now: t.clock.now() + HOUR, limit: 10 }), []);
    await t.admin.resumeMessage(m.id);
    assert.equal((await t.admin.getMessage(m.id))?.status, 'Ready');
    assert.ok(t.wakes.scheduler > 0, 'resume wakes the scheduler');
    const jobs = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    assert.equal(jobs[0]?.message.id, m.id);
    await rejectsWith(t.admin.resumeMessage(m.id), 'conflict', /not suspended/);
    await rejectsWith(t.admin.suspendMessage('0000000000NOSUCHID'), 'not-found');
  });

  it('suspending a message in delivery applies when the attempt is deferred', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')]), [Buffer.from('x')]);
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    await t.admin.suspendMessage(m.id);
    assert.equal((await t.admin.getMessage(m.id))?.status, 'Active');
    await t.store.recordOutcomes([
      {
        ref: { messageId: m.id, index: job!.recipients[0]!.index },
        outcome: { kind: 'deferred', response: '451 4.4.1 try later', nextAttemptAt: t.clock.now() },
      },
    ]);
    assert.equal((await t.admin.getMessage(m.id))?.status, 'Suspended');
    assert.deepEqual(await t.store.claimDue({ now: t.clock.now(), limit: 10 }), []);
  });

  it('removes a message without NDR: rows and body gone, a DROP event, no report owed', async () => {
    const big = Buffer.alloc(200_000, 'b');
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')], { subject: 'bye' }), [big]);
    assert.equal((await readdir(join(dir, 'bodies'))).length, 1);
    await t.admin.removeMessage(m.id, { ndr: false });
    assert.equal(await t.admin.getMessage(m.id), undefined);
    assert.equal(await t.store.getMessage(m.id), undefined);
    assert.deepEqual(await readdir(join(dir, 'bodies')), []);
    assert.deepEqual(await t.store.claimNotifications(10), []);
    const drop = t.events.find((e) => e.eventId === 'DROP');
    assert.equal(drop?.internalId, m.id);
    assert.deepEqual(drop?.recipients, ['x@remote.test']);
    assert.equal(drop?.subject, 'bye');
    assert.equal(drop?.size, big.length);
    await rejectsWith(t.admin.removeMessage(m.id, { ndr: false }), 'not-found');
  });

  it('removes a message with NDR: each undelivered recipient fails with 5.7.1 and the failure report is owed', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test'), mailbox('bob@example.test')]), [
      Buffer.from('x'),
    ]);
    // bob is delivered first: only x is undelivered.
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10, hopType: 'mailbox' });
    await t.store.recordOutcomes([
      {
        ref: { messageId: m.id, index: job!.recipients[0]!.index },
        outcome: { kind: 'delivered', response: '250 ok' },
      },
    ]);
    await t.admin.removeMessage(m.id, { ndr: true });
    assert.equal(await t.admin.getMessage(m.id), undefined, 'no longer in any queue');
    const [batch] = await t.store.claimNotifications(10);
    assert.equal(batch?.kind, 'failure');
    assert.deepEqual(
      batch?.recipients.map((r) => [r.address, r.status, r.lastResponse]),
      [['x@remote.test', 'failed', '550 5.7.1 Message deleted by an administrator']],
    );
    assert.equal(t.wakes.notifier, 1, 'the notifier is woken to send the NDR');
    const fail = t.events.find((e) => e.eventId === 'FAIL');
    assert.deepEqual(fail?.recipients, ['x@remote.test']);
    assert.deepEqual(fail?.recipientStatus, ['550 5.7.1 Message deleted by an administrator']);
    await rejectsWith(t.admin.removeMessage(m.id, { ndr: 'yes' as unknown as boolean }), 'invalid');
  });

  it('answers conflict to removing or resubmitting a message while it is being delivered', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')]), [Buffer.from('x')]);
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    await rejectsWith(t.admin.removeMessage(m.id, { ndr: true }), 'conflict', /being delivered/);
    await rejectsWith(t.admin.resubmitMessage(m.id), 'conflict', /being delivered/);
    await t.store.recordOutcomes([
      {
        ref: { messageId: m.id, index: job!.recipients[0]!.index },
        outcome: { kind: 'delivered', response: '250 ok' },
      },
    ]);
    // Delivered meanwhile: nothing is left to remove.
    await rejectsWith(t.admin.removeMessage(m.id, { ndr: true }), 'not-found');
  });

  it('emits FAIL with 4.4.7 for the recipients the expiry sweep fails', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')], { subject: 'late' }), [
      Buffer.from('x'),
    ]);
    t.clock.advance(49 * HOUR);
    assert.equal(await t.store.expireDue(t.clock.now(), 100), 1);
    const fail = t.events.find((e) => e.eventId === 'FAIL');
    assert.deepEqual(
      [fail?.internalId, fail?.subject, fail?.recipients, fail?.source],
      [m.id, 'late', ['x@remote.test'], 'QUEUE'],
    );
    assert.match(fail!.recipientStatus[0]!, /^550 4\.4\.7 Message expired/);
  });

  it('exports the stored message byte for byte', async () => {
    const body = [
      Buffer.from('Subject: export\r\n\r\n'),
      Buffer.alloc(300_000, 'z'),
      Buffer.from('\r\nend\r\n'),
    ];
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test')]), body);
    const exported = await buffer(await t.admin.exportMessage(m.id));
    assert.ok(exported.equals(Buffer.concat(body)));
    await rejectsWith(t.admin.exportMessage('0000000000NOSUCHID'), 'not-found');
  });

  it('resubmits a message: its recipients are routed again and due now', async () => {
    const m = await commitBytes(t.store, newMessage([unreachable('z@nowhere.test')]), [Buffer.from('x')]);
    await t.admin.resubmitMessage(m.id);
    const view = await t.admin.getMessage(m.id);
    assert.deepEqual(view?.queues, ['smtp:nowhere.test']);
    assert.deepEqual(view?.recipients[0]?.nextHop, {
      type: 'smtp',
      domain: 'nowhere.test',
      connector: 'Added',
    });
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10, hopType: 'smtp' });
    assert.equal(job?.message.id, m.id);
    assert.ok(t.wakes.scheduler > 0);
  });

  it('retries a queue: its waiting recipients become due now', async () => {
    const m = await commitBytes(t.store, newMessage([remote('x@remote.test'), remote('y@remote.test')]), [
      Buffer.from('x'),
    ]);
    const [job] = await t.store.claimDue({ now: t.clock.now(), limit: 10 });
    await t.store.recordOutcomes(
      job!.recipients.map((r) => ({
        ref: { messageId: m.id, index: r.index },
        outcome: { kind: 'deferred', response: '451 later', nextAttemptAt: t.clock.now() + HOUR },
      })),
    );
    assert.deepEqual(await t.store.claimDue({ now: t.clock.now(), limit: 10 }), []);
    assert.equal(await t.admin.retryQueue('smtp:remote.test'), 2);
    assert.equal((await t.store.claimDue({ now: t.clock.now(), limit: 10 }))[0]?.recipients.length, 2);
    await rejectsWith(t.admin.retryQueue('smtp:nowhere.test'), 'not-found');
    await rejectsWith(t.admin.retryQueue('poison'), 'conflict');
    await rejectsWith(t.admin.suspendQueue('smtp:nowhere.test'), 'not-found');
  });
});
