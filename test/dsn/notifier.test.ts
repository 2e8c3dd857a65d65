import assert from 'node:assert/strict';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import type { AttemptResult, DeliveryAgent } from '../../src/delivery/types.ts';
import { DsnNotifier, enhancedStatus } from '../../src/dsn/notifier.ts';
import { fixedIntervalPolicy } from '../../src/queue/retry-policy.ts';
import { DeliveryScheduler } from '../../src/queue/scheduler.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { NewRecipient, QueuedMessage, RecipientOutcome } from '../../src/queue/types.ts';
import type { GeneratedEnvelope, GeneratedMessageSubmitter } from '../../src/routing/generated.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { commitBytes, newMessage } from '../queue/store-contract.ts';
import { ORIGINAL, parseReport, statusGroups, topHeaders } from './dsn-fixtures.ts';

const HOUR = 3_600_000;
const EXPIRATION = 48 * HOUR;
const DELAY_AFTER = 4 * HOUR;
const RETRY = 60_000;

const smtp = (address: string, extra: Partial<NewRecipient> = {}): NewRecipient => ({
  address,
  nextHop: { type: 'smtp', domain: address.slice(address.indexOf('@') + 1) },
  ...extra,
});

/** Keeps every report it is given, as bytes; can be told to fail or to hold the next ones. */
class RecordingSubmitter implements GeneratedMessageSubmitter {
  readonly sent: Array<{ envelope: GeneratedEnvelope; raw: Buffer }> = [];
  failures = 0;
  gate: Promise<void> | undefined;

  async submit(envelope: GeneratedEnvelope, body: Readable): Promise<{ queueId: string }> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('queue unavailable (simulated)');
    }
    const raw = await buffer(body);
    this.sent.push({ envelope, raw });
    if (this.gate) await this.gate;
    return { queueId: `DSN${this.sent.length}` };
  }
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the DSN notifier', () => {
  let dir: string;
  let clock: ManualClock;
  let store: SqliteQueueStore;
  let submitter: RecordingSubmitter;
  let notifier: DsnNotifier;

  const openStore = async () => {
    const s = new SqliteQueueStore({
      dir,
      clock,
      ids: createIdGenerator(clock),
      messageExpiration: EXPIRATION,
    });
    await s.open();
    return s;
  };
  const makeNotifier = (s: SqliteQueueStore, submit: GeneratedMessageSubmitter) =>
    new DsnNotifier({
      store: s,
      submit,
      clock,
      reportingMta: 'mx.example.test',
      postmaster: 'postmaster@example.test',
      delayNotification: DELAY_AFTER,
      maxFullReturnSize: 10 * 1024 * 1024,
      retryInterval: RETRY,
      // Long enough that every pass in these tests is one they asked for (wake or flush).
      pollInterval: 60_000,
    });

  beforeEach(async () => {
    dir = await makeTempDir('ferrymail-notifier-');
    clock = new ManualClock(Date.UTC(2026, 0, 5, 9, 30));
    store = await openStore();
    submitter = new RecordingSubmitter();
    notifier = makeNotifier(store, submitter);
    notifier.start();
  });
  afterEach(async () => {
    await notifier?.stop();
    await store?.close();
    if (dir) await removeDir(dir);
  });

  async function queue(recipients: NewRecipient[], extra: Parameters<typeof newMessage>[1] = {}) {
    return commitBytes(
      store,
      newMessage(recipients, {
        sender: 'alice@example.test',
        messageId: '<orig-1@example.test>',
        subject: 'Quarterly figures',
        bodyType: '7BIT',
        ...extra,
      }),
      [ORIGINAL],
    );
  }

  /** One delivery attempt of the given recipients, recorded as one batch (as the scheduler does). */
  async function attempt(q: QueuedMessage, outcomes: Record<number, RecipientOutcome>) {
    const jobs = (await store.claimDue({ now: clock.now(), limit: 100 })).filter(
      (j) => j.message.id === q.id,
    );
    const claimed = jobs.flatMap((j) => j.recipients.map((r) => r.index));
    for (const index of Object.keys(outcomes)) assert.ok(claimed.includes(Number(index)), `${index} not due`);
    await store.recordOutcomes(
      Object.entries(outcomes).map(([index, outcome]) => ({
        ref: { messageId: q.id, index: Number(index) },
        outcome,
      })),
    );
    notifier.wake();
  }

  const failed = (response: string): RecipientOutcome => ({ kind: 'failed', response });
  const deferred = (response: string): RecipientOutcome => ({
    kind: 'deferred',
    response,
    nextAttemptAt: clock.now() + HOUR,
  });

  async function report(n: number) {
    const sent = submitter.sent[n];
    assert.ok(sent, `report ${n} was sent`);
    const parsed = await parseReport(sent.raw);
    const [perMessage, ...recipients] = statusGroups(parsed.status.content);
    return { ...sent, parsed, headers: topHeaders(sent.raw), perMessage: perMessage!, recipients };
  }

  it('sends exactly one NDR to the sender for a permanent failure, and then lets the message go', async () => {
    const agent: DeliveryAgent = {
      hopType: 'smtp',
      async deliver(job) {
        return new Map<number, AttemptResult>(
          job.recipients.map((r) => [
            r.index,
            { kind: 'permanent', response: '550 5.1.1 <bob@remote.test>: user unknown' },
          ]),
        );
      },
    };
    const scheduler = new DeliveryScheduler({
      store,
      agents: [agent],
      clock,
      retryPolicy: () => fixedIntervalPolicy(60_000),
      concurrency: 1,
      onRecorded: () => notifier.wake(),
    });
    const q = await queue([smtp('bob@remote.test', { orcpt: 'rfc822;Bob@remote.test' })]);
    scheduler.start();
    try {
      await until(() => submitter.sent.length === 1, 'the NDR');
      await until(async () => (await store.getMessage(q.id)) === undefined, 'the message to go');
    } finally {
      await scheduler.stop();
    }
    await notifier.flush();
    assert.equal(submitter.sent.length, 1, 'more than one NDR');
    const r = await report(0);
    assert.deepEqual(r.envelope, {
      sender: '',
      recipient: 'alice@example.test',
      bodyType: '7BIT',
      smtpUtf8: false,
      messageId: r.headers.get('message-id'),
      subject: 'Undeliverable: Quarterly figures',
    });
    assert.equal(r.headers.get('from'), '"Mail Delivery System" <postmaster@example.test>');
    assert.equal(r.headers.get('to'), '<alice@example.test>');
    assert.equal(r.headers.get('subject'), 'Undeliverable: Quarterly figures');
    assert.equal(r.headers.get('in-reply-to'), '<orig-1@example.test>');
    assert.match(r.headers.get('message-id') ?? '', /^<dsn\.[0-9a-f]+@mx\.example\.test>$/);
    assert.equal(r.perMessage.get('reporting-mta'), 'dns; mx.example.test');
    assert.equal(r.recipients.length, 1);
    assert.deepEqual(Object.fromEntries(r.recipients[0]!), {
      'original-recipient': 'rfc822; Bob@remote.test',
      'final-recipient': 'rfc822; bob@remote.test',
      action: 'failed',
      status: '5.1.1',
      'diagnostic-code': 'smtp; 550 5.1.1 <bob@remote.test>: user unknown',
      'last-attempt-date': 'Mon, 5 Jan 2026 09:30:00 +0000',
    });
    assert.equal(r.parsed.returned?.contentType, 'text/rfc822-headers', 'no RET: headers come back');
    assert.match(r.parsed.returned!.content.toString(), /^Received: .*Subject: Quarterly figures\r\n/s);
  });

  it('reports every recipient that failed in one attempt in one NDR', async () => {
    const q = await queue([smtp('bob@remote.test'), smtp('carol@remote.test'), smtp('dave@remote.test')], {
      dsn: { ret: 'FULL', envid: 'ENV-7' },
    });
    await attempt(q, {
      0: failed('550 5.1.1 <bob@remote.test>: user unknown'),
      1: deferred('451 4.4.1 timed out'),
      2: failed('554 transaction failed'),
    });
    await until(() => submitter.sent.length === 1, 'the NDR');
    await notifier.flush();
    assert.equal(submitter.sent.length, 1, 'one NDR per message, not per recipient');
    const r = await report(0);
    assert.equal(r.perMessage.get('original-envelope-id'), 'ENV-7');
    assert.deepEqual(
      r.recipients.map((g) => [
        g.get('final-recipient'),
        g.get('action'),
        g.get('status'),
        g.get('diagnostic-code'),
      ]),
      [
        ['rfc822; bob@remote.test', 'failed', '5.1.1', 'smtp; 550 5.1.1 <bob@remote.test>: user unknown'],
        ['rfc822; dave@remote.test', 'failed', '5.0.0', 'smtp; 554 transaction failed'],
      ],
    );
    assert.equal(r.parsed.returned?.contentType, 'message/rfc822', 'RET=FULL returns the whole message');
    const m = await store.getMessage(q.id);
    assert.deepEqual(
      m?.recipients.map((x) => [x.status, x.pendingNotification]),
      [
        ['failed', undefined],
        ['pending', undefined],
        ['failed', undefined],
      ],
    );
  });

  for (const [label, extra, recipient] of [
    ['a message from the null sender', { sender: '' }, smtp('bob@remote.test')],
    ['a recipient with NOTIFY=NEVER', {}, smtp('bob@remote.test', { notify: 'NEVER' })],
    ['a recipient with NOTIFY=SUCCESS only', {}, smtp('bob@remote.test', { notify: ['SUCCESS'] })],
  ] as const) {
    it(`sends no NDR for ${label}`, async () => {
      const q = await queue([recipient], extra);
      await attempt(q, { 0: failed('550 5.1.1 no') });
      await notifier.flush();
      assert.equal(submitter.sent.length, 0);
      assert.equal(await store.getMessage(q.id), undefined, 'the message was kept');
    });
  }

  it('sends a success DSN for a delivery with NOTIFY=SUCCESS, and none for a plain one', async () => {
    const q = await queue([
      smtp('bob@remote.test', { notify: ['SUCCESS', 'FAILURE'] }),
      smtp('carol@remote.test'),
    ]);
    await attempt(q, {
      0: { kind: 'delivered', response: '250 2.0.0 Ok: queued as 4ABC' },
      1: { kind: 'delivered', response: '250 ok' },
    });
    await until(() => submitter.sent.length === 1, 'the success DSN');
    await notifier.flush();
    const r = await report(0);
    assert.equal(submitter.sent.length, 1);
    assert.equal(r.headers.get('subject'), 'Delivered: Quarterly figures');
    assert.deepEqual(
      r.recipients.map((g) => [g.get('final-recipient'), g.get('action'), g.get('status')]),
      [['rfc822; bob@remote.test', 'delivered', '2.0.0']],
    );
    assert.equal(await store.getMessage(q.id), undefined);
  });

  it('sends one delay notice per recipient once the threshold has passed, not before and not twice', async () => {
    const q = await queue([smtp('bob@remote.test'), smtp('carol@remote.test', { notify: ['FAILURE'] })]);
    await attempt(q, { 0: deferred('451 4.4.1 Connection timed out'), 1: deferred('451 4.4.1 timed out') });
    clock.advance(DELAY_AFTER - 1);
    await notifier.flush();
    assert.equal(submitter.sent.length, 0, 'a delay notice before the threshold');
    clock.advance(1);
    await notifier.flush();
    assert.equal(submitter.sent.length, 1);
    const r = await report(0);
    assert.equal(r.headers.get('subject'), 'Delivery delayed: Quarterly figures');
    assert.deepEqual(Object.fromEntries(r.recipients[0]!), {
      'final-recipient': 'rfc822; bob@remote.test',
      action: 'delayed',
      status: '4.4.1',
      'diagnostic-code': 'smtp; 451 4.4.1 Connection timed out',
      'last-attempt-date': 'Mon, 5 Jan 2026 09:30:00 +0000',
      'will-retry-until': 'Wed, 7 Jan 2026 09:30:00 +0000',
    });
    assert.equal(r.recipients.length, 1, 'NOTIFY=FAILURE asked for no delay notice');
    clock.advance(6 * HOUR);
    await notifier.flush();
    await notifier.flush();
    assert.equal(submitter.sent.length, 1, 'a second delay notice');
    assert.deepEqual(
      (await store.getMessage(q.id))?.recipients.map((x) => [x.status, x.delayNotified]),
      [
        ['pending', true],
        ['pending', undefined],
      ],
    );
  });

  it('fails the recipients of an expired message with 4.4.7 and sends the NDR', async () => {
    const q = await queue([
      { address: 'x@nowhere.test', nextHop: { type: 'unreachable', domain: 'nowhere.test' } },
    ]);
    clock.advance(EXPIRATION - 1);
    await notifier.flush();
    assert.equal(submitter.sent.filter((s) => s.envelope.subject.startsWith('Undeliverable')).length, 0);
    clock.advance(1);
    await notifier.flush();
    const ndrs = submitter.sent.filter((s) => s.envelope.subject.startsWith('Undeliverable'));
    assert.equal(ndrs.length, 1);
    const r = await report(submitter.sent.indexOf(ndrs[0]!));
    assert.deepEqual(
      [
        r.recipients[0]!.get('action'),
        r.recipients[0]!.get('status'),
        r.recipients[0]!.get('diagnostic-code'),
      ],
      ['failed', '4.4.7', 'smtp; 550 4.4.7 Message expired: no delivery attempt succeeded'],
    );
    assert.equal(await store.getMessage(q.id), undefined);
  });

  it('sends the NDR again after a crash between queuing it and clearing the notification', async () => {
    let release!: () => void;
    submitter.gate = new Promise((resolve) => {
      release = resolve;
    });
    const q = await queue([smtp('bob@remote.test')]);
    await attempt(q, { 0: failed('550 5.1.1 no') });
    await until(() => submitter.sent.length === 1, 'the first NDR');
    // The process dies here: the report is queued, the notification not yet cleared.
    const crashed = notifier;
    await store.close();
    store = await openStore();
    const after = new RecordingSubmitter();
    notifier = makeNotifier(store, after);
    notifier.start();
    await until(() => after.sent.length === 1, 'the NDR after the restart');
    await until(async () => (await store.getMessage(q.id)) === undefined, 'the message to go');
    assert.equal(after.sent[0]!.envelope.recipient, 'alice@example.test');
    release();
    await crashed.stop();
  });

  it('sends on a wake without sweeping the queue each time; sweeps wait for the sweep interval', async () => {
    await notifier.flush();
    let sweeps = 0;
    const expireDue = store.expireDue.bind(store);
    store.expireDue = (now, limit) => {
      sweeps++;
      return expireDue(now, limit);
    };
    for (const address of ['bob@remote.test', 'carol@remote.test', 'dave@remote.test']) {
      const q = await queue([smtp(address)]);
      await attempt(q, { 0: failed('550 5.1.1 no') });
      await until(() => submitter.sent.some((x) => x.raw.includes(address)), `the NDR for ${address}`);
    }
    assert.equal(sweeps, 0, 'a wake after outcomes swept the queue');
    clock.advance(60_000);
    const q = await queue([smtp('erin@remote.test')]);
    await attempt(q, { 0: failed('550 5.1.1 no') });
    await until(() => submitter.sent.length === 4, 'the fourth NDR');
    assert.equal(sweeps, 1, 'no sweep once the sweep interval had passed');
  });

  it('still sends the NDR when the original was lost, without the original', async () => {
    await notifier.stop();
    await store.close();
    const files = new SqliteQueueStore({
      dir,
      clock,
      ids: createIdGenerator(clock),
      messageExpiration: EXPIRATION,
      inlineBodyLimit: 0,
    });
    await files.open();
    const q = await commitBytes(
      files,
      newMessage([smtp('bob@remote.test')], { sender: 'alice@example.test' }),
      [ORIGINAL],
    );
    await files.close();
    await unlink(join(dir, 'bodies', q.id));
    store = await openStore();
    notifier = makeNotifier(store, submitter);
    notifier.start();
    await until(() => submitter.sent.length === 1, 'the NDR');
    const r = await report(0);
    assert.deepEqual(
      [
        r.recipients[0]!.get('action'),
        r.recipients[0]!.get('status'),
        r.recipients[0]!.get('diagnostic-code'),
      ],
      ['failed', '4.3.0', 'smtp; 451 4.3.0 Queue file missing'],
    );
    await until(async () => (await store.getMessage(q.id)) === undefined, 'the message to go');
  });

  it('keeps going when the store fails, sending the report again rather than never', async () => {
    const q = await queue([smtp('bob@remote.test')]);
    const complete = store.completeNotifications.bind(store);
    const claim = store.claimNotifications.bind(store);
    let completeFailures = 1;
    let claimFailures = 1;
    store.completeNotifications = (refs) =>
      completeFailures-- > 0 ? Promise.reject(new Error('disk I/O error (simulated)')) : complete(refs);
    store.claimNotifications = (limit) =>
      claimFailures-- > 0 ? Promise.reject(new Error('database locked (simulated)')) : claim(limit);
    await attempt(q, { 0: failed('550 5.1.1 no') });
    await notifier.flush();
    await notifier.flush();
    // Pass 1: the claim fails. Pass 2: the report is queued, clearing it fails. Pass 3 (the next
    // poll): queued again, and cleared.
    assert.equal(submitter.sent.length, 1);
    await notifier.flush();
    await until(async () => (await store.getMessage(q.id)) === undefined, 'the notification to be cleared');
    assert.equal(submitter.sent.length, 2, 'the report whose clearing failed was not sent again');
    assert.equal(submitter.sent[0]!.envelope.recipient, 'alice@example.test');
  });

  it('tries again later when the report cannot be queued, and not in a tight loop', async () => {
    submitter.failures = 1;
    const q = await queue([smtp('bob@remote.test')]);
    await attempt(q, { 0: failed('550 5.1.1 no') });
    await notifier.flush();
    assert.equal(submitter.sent.length, 0);
    assert.equal((await store.getMessage(q.id))?.recipients[0]?.pendingNotification, 'failure');
    await notifier.flush();
    assert.equal(submitter.sent.length, 0, 'retried before the retry interval');
    clock.advance(RETRY);
    await notifier.flush();
    assert.equal(submitter.sent.length, 1);
    assert.equal(submitter.sent[0]!.envelope.recipient, 'alice@example.test');
    assert.equal(await store.getMessage(q.id), undefined);
  });
});

describe('the enhanced status of a reply', () => {
  it('is read from the reply, with a fallback per kind', () => {
    assert.equal(enhancedStatus('550 5.1.1 <x>: unknown', 'failure'), '5.1.1');
    assert.equal(enhancedStatus('550-5.7.1 policy', 'failure'), '5.7.1');
    assert.equal(enhancedStatus('550 4.4.7 Message expired: 451 4.4.1 x', 'failure'), '4.4.7');
    assert.equal(enhancedStatus('554 transaction failed', 'failure'), '5.0.0');
    assert.equal(enhancedStatus(undefined, 'failure'), '5.0.0');
    assert.equal(enhancedStatus('451 4.3.0 busy', 'delay'), '4.3.0');
    assert.equal(enhancedStatus('550 5.1.1 odd', 'delay'), '4.0.0');
    assert.equal(enhancedStatus(undefined, 'delay'), '4.0.0');
    assert.equal(enhancedStatus('250 2.0.0 ok', 'success'), '2.0.0');
    assert.equal(enhancedStatus('250 ok', 'success'), '2.0.0');
    assert.equal(enhancedStatus('550 5.1.12345 too long', 'failure'), '5.0.0');
  });
});
