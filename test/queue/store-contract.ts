import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import type { NewMessage, NewRecipient, QueueStore } from '../../src/queue/types.ts';

export interface StoreUnderTest {
  store: QueueStore;
  /** Closes the store and opens a new one on the same storage (a restart). */
  reopen(): Promise<QueueStore>;
  cleanup(): Promise<void>;
  /** The store's clock: `now` for claims is taken from it. */
  now(): number;
  /** Moves the store's clock forward. */
  advance(ms: number): void;
}

const mailbox = (address: string): NewRecipient => ({
  address,
  nextHop: { type: 'mailbox', mailbox: address },
});

export function newMessage(recipients: NewRecipient[], extra: Partial<NewMessage> = {}): NewMessage {
  return {
    sender: 'sender@remote.test',
    recipients,
    dsn: {},
    bodyType: '8BITMIME',
    smtpUtf8: false,
    origin: { connector: 'Default', clientIp: '192.0.2.1', clientHelo: 'client.test', tls: true },
    ...extra,
  };
}

export async function commitBytes(store: QueueStore, message: NewMessage, chunks: Buffer[]) {
  const body = await store.openBody();
  for (const chunk of chunks) await body.write(chunk);
  return store.commit(body, message);
}

/**
 * What every QueueStore must do: the embedded SQLite store now, the PostgreSQL store later.
 * `make` gives a fresh, opened, empty store per suite.
 */
export function runQueueStoreContract(name: string, make: () => Promise<StoreUnderTest>): void {
  describe(`QueueStore contract: ${name}`, () => {
    let t: StoreUnderTest;
    let store: QueueStore;
    before(async () => {
      t = await make();
      store = t.store;
    });
    after(() => t.cleanup());

    it('commits a message and returns it with one pending recipient row each, due now', async () => {
      const queued = await commitBytes(
        store,
        newMessage(
          [
            mailbox('a@example.test'),
            { ...mailbox('b@example.test'), orcpt: 'rfc822;B@example.test', notify: ['SUCCESS'] },
          ],
          {
            dsn: { ret: 'HDRS', envid: 'env-1' },
            messageId: '<m1@client.test>',
            subject: 'hello',
          },
        ),
        [Buffer.from('Subject: hello\r\n\r\nbody\r\n')],
      );
      const stored = await store.getMessage(queued.id);
      assert.ok(stored);
      assert.deepEqual(stored, queued, 'commit() returns the message as stored');
      assert.equal(stored.size, 24);
      assert.deepEqual(stored.dsn, { ret: 'HDRS', envid: 'env-1' });
      assert.equal(stored.messageId, '<m1@client.test>');
      assert.equal(stored.subject, 'hello');
      assert.equal(stored.origin.clientIp, '192.0.2.1');
      assert.deepEqual(
        stored.recipients.map((r) => [r.index, r.address, r.status, r.attempts, r.orcpt, r.notify]),
        [
          [0, 'a@example.test', 'pending', 0, undefined, undefined],
          [1, 'b@example.test', 'pending', 0, 'rfc822;B@example.test', ['SUCCESS']],
        ],
      );
      assert.ok(stored.expiresAt > stored.receivedAt);
    });

    it('returns the body bytes exactly, binary and multi-megabyte ones included', async () => {
      const small = Buffer.from('a\0b\rc\nd\r\n\xff', 'latin1');
      const big = Array.from({ length: 40 }, () => randomBytes(64 * 1024));
      const q1 = await commitBytes(store, newMessage([mailbox('a@example.test')]), [small]);
      const q2 = await commitBytes(store, newMessage([mailbox('a@example.test')]), big);
      assert.deepEqual(await buffer(store.readBody(q1.id)), small);
      assert.deepEqual(await buffer(store.readBody(q2.id)), Buffer.concat(big));
      assert.equal((await store.getMessage(q2.id))?.size, 40 * 64 * 1024);
    });

    it('keeps nothing of an aborted body', async () => {
      const before = (await store.listMessages({ limit: 10_000 })).length;
      const body = await store.openBody();
      await body.write(randomBytes(300 * 1024));
      await body.abort();
      await body.abort();
      assert.equal((await store.listMessages({ limit: 10_000 })).length, before);
      assert.equal(await store.getMessage(body.id), undefined);
    });

    it('hands each due recipient to one job only, grouped per message and next hop, within the limit', async () => {
      const a = await commitBytes(
        store,
        newMessage([
          mailbox('x@example.test'),
          mailbox('y@example.test'),
          { address: 'r@remote.test', nextHop: { type: 'smtp', domain: 'remote.test' } },
        ]),
        [Buffer.from('x')],
      );
      const jobs = await store.claimDue({ now: t.now(), limit: 1000, hopType: 'mailbox' });
      const mine = jobs.filter((j) => j.message.id === a.id);
      assert.equal(mine.length, 1);
      assert.deepEqual(
        mine[0]!.recipients.map((r) => r.address),
        ['x@example.test', 'y@example.test'],
      );
      const again = await store.claimDue({ now: t.now(), limit: 1000, hopType: 'mailbox' });
      assert.equal(again.filter((j) => j.message.id === a.id).length, 0, 'claimed twice');
      const smtp = await store.claimDue({ now: t.now(), limit: 1000, hopType: 'smtp' });
      assert.deepEqual(
        smtp.find((j) => j.message.id === a.id)?.recipients.map((r) => r.address),
        ['r@remote.test'],
      );
      const counts = await store.countRecipients();
      assert.ok(counts.active >= 3);
      const limited = await store.claimDue({ now: t.now(), limit: 0 });
      assert.equal(limited.length, 0);
      // Give everything claimed so far an outcome, so later tests start clean.
      const all = [...jobs, ...smtp];
      await store.recordOutcomes(
        all.flatMap((j) =>
          j.recipients.map((r) => ({
            ref: { messageId: j.message.id, index: r.index },
            outcome: { kind: 'delivered' as const, response: '250 ok' },
          })),
        ),
      );
    });

    it('claims no more jobs than the limit, in due order, and reports the next due time of unclaimed ones only', async () => {
      const smtp = (domain: string): NewRecipient => ({
        address: `u@${domain}`,
        nextHop: { type: 'smtp', domain },
      });
      const ids: string[] = [];
      for (const domain of ['one.test', 'two.test', 'three.test'])
        ids.push((await commitBytes(store, newMessage([smtp(domain)]), [Buffer.from('x')])).id);
      assert.equal(await store.nextDueAt('smtp'), t.now());
      const first = await store.claimDue({ now: t.now(), limit: 2, hopType: 'smtp' });
      assert.deepEqual(
        first.map((j) => j.message.id),
        ids.slice(0, 2),
      );
      const rest = await store.claimDue({ now: t.now(), limit: 5, hopType: 'smtp' });
      assert.deepEqual(
        rest.map((j) => j.message.id),
        [ids[2]],
      );
      assert.equal(await store.nextDueAt('smtp'), undefined, 'claimed recipients are not waiting');
      const later = t.now() + 30_000;
      await store.recordOutcomes(
        [...first, ...rest].map((j, n) => ({
          ref: { messageId: j.message.id, index: 0 },
          outcome:
            n === 0
              ? { kind: 'deferred' as const, response: '421 4.4.2 later', nextAttemptAt: later }
              : { kind: 'delivered' as const, response: '250 ok' },
        })),
      );
      assert.equal(await store.nextDueAt('smtp'), later);
      assert.deepEqual(await store.claimDue({ now: later - 1, limit: 5, hopType: 'smtp' }), []);
      const retry = await store.claimDue({ now: later, limit: 5, hopType: 'smtp' });
      assert.deepEqual(
        retry.map((j) => [j.message.id, j.recipients[0]?.attempts]),
        [[ids[0], 1]],
      );
      await store.recordOutcomes([
        { ref: { messageId: ids[0]!, index: 0 }, outcome: { kind: 'failed', response: '550 5.1.1 no' } },
      ]);
      for (const id of ids.slice(1)) assert.equal(await store.getMessage(id), undefined);
      // The failed one is kept (body included) until its sender has been told.
      assert.equal((await store.getMessage(ids[0]!))?.recipients[0]?.pendingNotification, 'failure');
      await store.completeNotifications([{ messageId: ids[0]!, index: 0, kind: 'failure' }]);
      assert.equal(await store.getMessage(ids[0]!), undefined);
    });

    it('records an outcome per recipient: delivered, deferred with its next attempt, failed', async () => {
      const q = await commitBytes(
        store,
        newMessage([mailbox('d@example.test'), mailbox('e@example.test'), mailbox('f@example.test')]),
        [Buffer.from('x')],
      );
      const [job] = (await store.claimDue({ now: t.now(), limit: 1000 })).filter(
        (j) => j.message.id === q.id,
      );
      assert.ok(job);
      const later = t.now() + 60_000;
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'delivered', response: '250 2.0.0 ok' } },
        {
          ref: { messageId: q.id, index: 1 },
          outcome: { kind: 'deferred', response: '451 4.3.0 later', nextAttemptAt: later },
        },
        { ref: { messageId: q.id, index: 2 }, outcome: { kind: 'failed', response: '550 5.1.1 no' } },
      ]);
      const m = (await store.getMessage(q.id))!;
      assert.deepEqual(
        m.recipients.map((r) => [r.status, r.attempts, r.lastResponse]),
        [
          ['delivered', 1, '250 2.0.0 ok'],
          ['pending', 1, '451 4.3.0 later'],
          ['failed', 1, '550 5.1.1 no'],
        ],
      );
      assert.equal(m.recipients[1]!.nextAttemptAt, later);
      assert.ok(((await store.nextDueAt('mailbox')) ?? Infinity) <= later);
      assert.equal(
        (await store.claimDue({ now: t.now(), limit: 1000 })).filter((j) => j.message.id === q.id).length,
        0,
        'not due yet',
      );
      const due = (await store.claimDue({ now: later, limit: 1000 })).filter((j) => j.message.id === q.id);
      assert.deepEqual(
        due[0]?.recipients.map((r) => r.index),
        [1],
      );
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 1 }, outcome: { kind: 'delivered', response: '250 ok' } },
      ]);
    });

    it('removes a message and its body once every recipient is final', async () => {
      const q = await commitBytes(store, newMessage([mailbox('g@example.test')]), [Buffer.from('gone')]);
      const [job] = (await store.claimDue({ now: t.now(), limit: 1000 })).filter(
        (j) => j.message.id === q.id,
      );
      await store.recordOutcomes([
        {
          ref: { messageId: q.id, index: job!.recipients[0]!.index },
          outcome: { kind: 'delivered', response: '250 ok' },
        },
      ]);
      assert.equal(await store.getMessage(q.id), undefined);
      await assert.rejects(buffer(store.readBody(q.id)));
    });

    it('lists messages with pending recipients in pages', async () => {
      const ids = [];
      for (let i = 0; i < 5; i++)
        ids.push(
          (await commitBytes(store, newMessage([mailbox(`p${i}@example.test`)]), [Buffer.from('p')])).id,
        );
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await store.listMessages({ limit: 2, ...(after ? { after } : {}) });
        if (page.length === 0) break;
        assert.ok(page.length <= 2);
        seen.push(...page.map((m) => m.id));
        after = page.at(-1)!.id;
      }
      for (const id of ids) assert.ok(seen.includes(id));
      assert.deepEqual(seen, [...seen].sort(), 'pages come in id order');
    });

    it('after a restart, keeps every pending recipient and frees the ones that were being delivered', async () => {
      const q = await commitBytes(store, newMessage([mailbox('h@example.test'), mailbox('i@example.test')]), [
        Buffer.from('restart me'),
      ]);
      const claimed = (await store.claimDue({ now: t.now(), limit: 1000 })).filter(
        (j) => j.message.id === q.id,
      );
      assert.equal(claimed.length, 1);
      store = await t.reopen();
      const m = await store.getMessage(q.id);
      assert.deepEqual(
        m?.recipients.map((r) => r.status),
        ['pending', 'pending'],
      );
      assert.deepEqual(await buffer(store.readBody(q.id)), Buffer.from('restart me'));
      const again = (await store.claimDue({ now: t.now(), limit: 1000 })).filter(
        (j) => j.message.id === q.id,
      );
      assert.equal(again[0]?.recipients.length, 2);
    });

    it('counts recipients by status, every status present', async () => {
      const before = await store.countRecipients();
      assert.deepEqual(Object.keys(before).sort(), [
        'active',
        'delivered',
        'failed',
        'pending',
        'poison',
        'suspended',
      ]);
      const q = await commitBytes(
        store,
        newMessage([mailbox('n1@example.test'), mailbox('n2@example.test'), mailbox('n3@example.test')]),
        [Buffer.from('count me')],
      );
      const committed = await store.countRecipients();
      assert.deepEqual(committed, { ...before, pending: before.pending + 3 });
      const jobs = await store.claimDue({ now: t.now(), limit: 1000, hopType: 'mailbox' });
      const claimed = jobs.reduce((n, j) => n + j.recipients.length, 0);
      assert.ok(jobs.some((j) => j.message.id === q.id));
      assert.deepEqual(await store.countRecipients(), {
        ...committed,
        pending: committed.pending - claimed,
        active: committed.active + claimed,
      });
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'delivered', response: '250 ok' } },
        {
          ref: { messageId: q.id, index: 1 },
          outcome: { kind: 'deferred', response: '451 later', nextAttemptAt: t.now() + 1000 },
        },
        { ref: { messageId: q.id, index: 2 }, outcome: { kind: 'failed', response: '550 no' } },
      ]);
      assert.deepEqual(await store.countRecipients(), {
        ...committed,
        pending: committed.pending - claimed + 1,
        active: committed.active + claimed - 3,
        delivered: committed.delivered + 1,
        failed: committed.failed + 1,
      });
    });

    // ---- Notifications. The expiry test comes last: it expires whatever earlier tests left.

    const smtp = (address: string, extra: Partial<NewRecipient> = {}): NewRecipient => ({
      address,
      nextHop: { type: 'smtp', domain: address.slice(address.indexOf('@') + 1) },
      ...extra,
    });
    async function claimOf(messageId: string) {
      const jobs = await store.claimDue({ now: t.now(), limit: 10_000 });
      return jobs.filter((j) => j.message.id === messageId).flatMap((j) => j.recipients.map((r) => r.index));
    }
    async function pendingOf(messageId: string) {
      return (await store.getMessage(messageId))?.recipients.map((r) => r.pendingNotification);
    }
    async function notificationsOf(messageId: string) {
      const mine = (await store.claimNotifications(10_000)).filter((b) => b.message.id === messageId);
      return mine.map((b) => [b.kind, b.recipients.map((r) => r.index)] as const);
    }

    it('writes the notification a final outcome calls for with the outcome, and keeps it over a restart', async () => {
      const q = await commitBytes(
        store,
        newMessage([
          mailbox('n-default@example.test'),
          { ...mailbox('n-success@example.test'), notify: ['SUCCESS'] },
          { ...mailbox('n-never@example.test'), notify: 'NEVER' },
          { ...mailbox('n-delay-only@example.test'), notify: ['DELAY'] },
          mailbox('n-delivered@example.test'),
        ]),
        [Buffer.from('Subject: tell me\r\n\r\nx\r\n')],
      );
      assert.deepEqual(await claimOf(q.id), [0, 1, 2, 3, 4]);
      const failed = { kind: 'failed' as const, response: '550 5.1.1 no such user' };
      const delivered = { kind: 'delivered' as const, response: '250 2.0.0 ok' };
      await store.recordOutcomes(
        [failed, delivered, failed, failed, delivered].map((outcome, index) => ({
          ref: { messageId: q.id, index },
          outcome,
        })),
      );
      const expected = ['failure', 'success', undefined, undefined, undefined];
      assert.deepEqual(await pendingOf(q.id), expected, 'written in the outcome transaction');
      store = await t.reopen();
      assert.deepEqual(await pendingOf(q.id), expected, 'a crash before the report lost the notification');
      assert.deepEqual(
        await buffer(store.readBody(q.id)),
        Buffer.from('Subject: tell me\r\n\r\nx\r\n'),
        'the body stays for the report',
      );
      assert.deepEqual(
        await store.listMessages({ limit: 10_000 }).then((ms) => ms.some((m) => m.id === q.id)),
        false,
        'a message with only final recipients is not listed as queued',
      );
      const claimed = (await store.claimNotifications(10_000)).filter((b) => b.message.id === q.id);
      assert.deepEqual(
        claimed.map((b) => [b.kind, b.recipients.map((r) => r.address)]),
        [
          ['failure', ['n-default@example.test']],
          ['success', ['n-success@example.test']],
        ],
      );
      assert.equal(claimed[0]!.recipients[0]!.lastResponse, '550 5.1.1 no such user');
      assert.deepEqual(await notificationsOf(q.id), [], 'claimed notifications were handed out twice');
      await store.releaseNotifications([{ messageId: q.id, index: 0, kind: 'failure' }]);
      assert.deepEqual(await notificationsOf(q.id), [['failure', [0]]], 'a released one is claimable again');
      await store.completeNotifications([
        { messageId: q.id, index: 0, kind: 'failure' },
        { messageId: q.id, index: 1, kind: 'success' },
      ]);
      assert.equal(await store.getMessage(q.id), undefined, 'removed once nothing is owed');
      await assert.rejects(buffer(store.readBody(q.id)));
    });

    it('puts every failure of one message that is owed a report into one batch', async () => {
      const q = await commitBytes(
        store,
        newMessage([mailbox('g1@example.test'), mailbox('g2@example.test'), mailbox('g3@example.test')]),
        [Buffer.from('x')],
      );
      await claimOf(q.id);
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'failed', response: '550 5.1.1 a' } },
        { ref: { messageId: q.id, index: 2 }, outcome: { kind: 'failed', response: '552 5.2.2 full' } },
        {
          ref: { messageId: q.id, index: 1 },
          outcome: { kind: 'deferred', response: '451 4.3.0 later', nextAttemptAt: t.now() + 60_000 },
        },
      ]);
      assert.deepEqual(await notificationsOf(q.id), [['failure', [0, 2]]]);
      await store.completeNotifications([
        { messageId: q.id, index: 0, kind: 'failure' },
        { messageId: q.id, index: 2, kind: 'failure' },
      ]);
      const m = await store.getMessage(q.id);
      assert.deepEqual(
        m?.recipients.map((r) => [r.status, r.pendingNotification]),
        [
          ['failed', undefined],
          ['pending', undefined],
          ['failed', undefined],
        ],
        'kept for its pending recipient, nothing owed',
      );
    });

    it('owes nothing for a message from the null sender, and removes it once final', async () => {
      const q = await commitBytes(store, newMessage([mailbox('bounce@example.test')], { sender: '' }), [
        Buffer.from('x'),
      ]);
      await claimOf(q.id);
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'failed', response: '550 5.1.1 no' } },
      ]);
      assert.equal(await store.getMessage(q.id), undefined);
    });

    it('requests one delay notice per recipient not final, once the message is old enough, as NOTIFY allows', async () => {
      const delayAfter = 4 * 3_600_000;
      const q = await commitBytes(
        store,
        newMessage([
          smtp('d-default@remote.test'),
          smtp('d-delay@remote.test', { notify: ['DELAY', 'FAILURE'] }),
          smtp('d-failure-only@remote.test', { notify: ['FAILURE'] }),
          smtp('d-never@remote.test', { notify: 'NEVER' }),
          smtp('d-delivered@remote.test'),
        ]),
        [Buffer.from('x')],
      );
      const bounce = await commitBytes(store, newMessage([smtp('d-null@remote.test')], { sender: '' }), [
        Buffer.from('x'),
      ]);
      await claimOf(q.id);
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 4 }, outcome: { kind: 'delivered', response: '250 ok' } },
      ]);
      // Recipients still claimed (being attempted) are not final either: they get a notice too.
      t.advance(delayAfter - 1);
      await store.requestDelayNotices(t.now(), delayAfter, 2);
      assert.deepEqual(
        await pendingOf(q.id),
        [undefined, undefined, undefined, undefined, undefined],
        'too early',
      );
      t.advance(1);
      await store.requestDelayNotices(t.now(), delayAfter, 2);
      assert.deepEqual(await pendingOf(q.id), ['delay', 'delay', undefined, undefined, undefined]);
      assert.deepEqual(await pendingOf(bounce.id), [undefined], 'a null sender never gets a notice');
      assert.deepEqual(await notificationsOf(q.id), [['delay', [0, 1]]]);
      await store.completeNotifications([
        { messageId: q.id, index: 0, kind: 'delay' },
        { messageId: q.id, index: 1, kind: 'delay' },
      ]);
      const m = await store.getMessage(q.id);
      assert.deepEqual(
        m?.recipients.map((r) => [r.status, r.pendingNotification, r.delayNotified]),
        [
          ['active', undefined, true],
          ['active', undefined, true],
          ['active', undefined, undefined],
          ['active', undefined, undefined],
          ['delivered', undefined, undefined],
        ],
      );
      store = await t.reopen();
      t.advance(10 * delayAfter);
      await store.requestDelayNotices(t.now(), delayAfter, 2);
      assert.deepEqual(
        await pendingOf(q.id),
        [undefined, undefined, undefined, undefined, undefined],
        'a recipient got a second delay notice',
      );
      // A failure after the delay notice is still reported.
      await claimOf(q.id);
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'failed', response: '550 5.1.1 gone' } },
      ]);
      assert.deepEqual(await notificationsOf(q.id), [['failure', [0]]]);
      await store.completeNotifications([{ messageId: q.id, index: 0, kind: 'failure' }]);
    });

    it('lets a failure replace a delay notice not yet sent, and a delivery cancel it', async () => {
      const delayAfter = 60_000;
      const q = await commitBytes(
        store,
        newMessage([smtp('r-fails@remote.test'), smtp('r-delivered@remote.test')]),
        [Buffer.from('x')],
      );
      t.advance(delayAfter);
      await store.requestDelayNotices(t.now(), delayAfter, 100);
      assert.deepEqual(await pendingOf(q.id), ['delay', 'delay']);
      await claimOf(q.id);
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'failed', response: '550 5.1.1 gone' } },
        { ref: { messageId: q.id, index: 1 }, outcome: { kind: 'delivered', response: '250 ok' } },
      ]);
      assert.deepEqual(await pendingOf(q.id), ['failure', undefined]);
      assert.deepEqual(await notificationsOf(q.id), [['failure', [0]]]);
      await store.completeNotifications([{ messageId: q.id, index: 0, kind: 'failure' }]);
      assert.equal(await store.getMessage(q.id), undefined);
    });

    it('expires pending recipients of messages past their expiry with 4.4.7 and a failure notification, not claimed ones', async () => {
      const q = await commitBytes(
        store,
        newMessage([
          smtp('e-deferred@remote.test'),
          { address: 'e-waiting@remote.test', nextHop: { type: 'unreachable', domain: 'remote.test' } },
          mailbox('e-claimed@example.test'),
          { ...smtp('e-never@remote.test'), notify: 'NEVER' },
        ]),
        [Buffer.from('x')],
      );
      const [deferredJob] = (await store.claimDue({ now: t.now(), limit: 10_000, hopType: 'smtp' })).filter(
        (j) => j.message.id === q.id,
      );
      assert.deepEqual(
        deferredJob?.recipients.map((r) => r.index),
        [0, 3],
      );
      await store.recordOutcomes(
        [0, 3].map((index) => ({
          ref: { messageId: q.id, index },
          outcome: {
            kind: 'deferred' as const,
            response: '451 4.4.1 timed out',
            nextAttemptAt: q.expiresAt + 1,
          },
        })),
      );
      const claimed = (await store.claimDue({ now: t.now(), limit: 10_000, hopType: 'mailbox' })).filter(
        (j) => j.message.id === q.id,
      );
      assert.deepEqual(
        claimed.flatMap((j) => j.recipients.map((r) => r.index)),
        [2],
      );
      await store.expireDue(q.expiresAt - 1, 100);
      assert.deepEqual(
        (await store.getMessage(q.id))?.recipients.map((r) => r.status),
        ['pending', 'pending', 'active', 'pending'],
        'expired early',
      );
      await store.expireDue(q.expiresAt, 1);
      const m = await store.getMessage(q.id);
      assert.deepEqual(
        m?.recipients.map((r) => [r.status, r.lastResponse, r.pendingNotification]),
        [
          ['failed', '550 4.4.7 Message expired: 451 4.4.1 timed out', 'failure'],
          ['failed', '550 4.4.7 Message expired: no delivery attempt succeeded', 'failure'],
          ['active', undefined, undefined],
          ['failed', '550 4.4.7 Message expired: 451 4.4.1 timed out', undefined],
        ],
      );
      assert.deepEqual(await notificationsOf(q.id), [['failure', [0, 1]]]);
    });

    it('moves Unreachable recipients to the hop a new send connector gives, due at once, leaving the rest', async () => {
      const unreachable = (address: string): NewRecipient => ({
        address,
        nextHop: { type: 'unreachable', domain: address.slice(address.indexOf('@') + 1) },
      });
      const q = await commitBytes(
        store,
        newMessage([unreachable('a@served.test'), unreachable('b@still-nowhere.test')]),
        [Buffer.from('x')],
      );
      t.advance(1000);
      const seen: Array<[string, number]> = [];
      const moved = await store.rerouteUnreachable((r, m) => {
        if (m.id === q.id) seen.push([r.address, m.size]);
        return r.address.endsWith('@served.test')
          ? { type: 'smtp', domain: 'served.test', connector: 'Internet' }
          : { type: 'unreachable', domain: 'still-nowhere.test' };
      }, t.now());
      assert.ok(moved >= 1);
      assert.deepEqual(seen, [
        ['a@served.test', q.size],
        ['b@still-nowhere.test', q.size],
      ]);
      const m = await store.getMessage(q.id);
      assert.deepEqual(
        m?.recipients.map((r) => [r.nextHop, r.nextAttemptAt]),
        [
          [{ type: 'smtp', domain: 'served.test', connector: 'Internet' }, t.now()],
          [{ type: 'unreachable', domain: 'still-nowhere.test' }, q.recipients[1]!.nextAttemptAt],
        ],
      );
      const jobs = (await store.claimDue({ now: t.now(), limit: 100, hopType: 'smtp' })).filter(
        (j) => j.message.id === q.id,
      );
      assert.deepEqual(
        jobs.flatMap((j) => j.recipients.map((r) => r.address)),
        ['a@served.test'],
      );
      await store.recordOutcomes([
        { ref: { messageId: q.id, index: 0 }, outcome: { kind: 'delivered', response: '250 ok' } },
      ]);
      // A second pass finds nothing new to move for this message.
      const again: string[] = [];
      await store.rerouteUnreachable((r, msg) => {
        if (msg.id === q.id) again.push(r.address);
        return { type: 'unreachable', domain: 'still-nowhere.test' };
      }, t.now());
      assert.deepEqual(again, ['b@still-nowhere.test']);
    });
  });
}
