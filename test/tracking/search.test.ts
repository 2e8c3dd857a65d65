import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SqliteTrackingLog } from '../../src/tracking/sqlite-tracking-log.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { openLog, searchAll, T0, trackingEvent } from './helpers.ts';

const MIN = 60_000;

/** The tracking log answers Get-MessageTrackingLog's filters, each alone and together. */
describe('message tracking search', () => {
  let dir: string;
  let log: SqliteTrackingLog;

  before(async () => {
    dir = await makeTempDir('ferrymail-tracking-');
    log = await openLog(dir);
    // One message from someone@example.net to alice and bob: received, then delivered to each.
    log.record(
      trackingEvent({
        time: T0,
        recipients: ['alice@example.test', 'Bob@Example.Test'],
        recipientStatus: ['250 2.1.5', '250 2.1.5'],
      }),
    );
    log.record(
      trackingEvent({
        time: T0 + 1 * MIN,
        eventId: 'DELIVER',
        source: 'MAILBOX',
        recipients: ['alice@example.test'],
        recipientStatus: ['250 2.0.0 delivered'],
      }),
    );
    log.record(
      trackingEvent({
        time: T0 + 2 * MIN,
        eventId: 'DELIVER',
        source: 'MAILBOX',
        recipients: ['bob@example.test'],
        recipientStatus: ['250 2.0.0 delivered'],
      }),
    );
    // Another message, from Carol (mixed case as given), relayed out, with a subject in French.
    log.record(
      trackingEvent({
        time: T0 + 10 * MIN,
        internalId: 'q-0002',
        messageId: 'M-0002@Mail.Example.Test',
        sender: 'Carol@Example.Test',
        recipients: ['dave@example.org'],
        recipientStatus: ['250 2.1.5'],
        subject: 'RÉUNION de lundi',
        directionality: 'Originating',
      }),
    );
    log.record(
      trackingEvent({
        time: T0 + 11 * MIN,
        eventId: 'SEND',
        source: 'SMTP',
        internalId: 'q-0002',
        messageId: 'M-0002@Mail.Example.Test',
        sender: 'carol@example.test',
        connector: 'Internet',
        recipients: ['dave@example.org'],
        recipientStatus: ['250 2.0.0 Ok: queued as ABC'],
        subject: 'RÉUNION de lundi',
      }),
    );
    // A bounce: null sender, no subject.
    log.record(
      trackingEvent({
        time: T0 + 20 * MIN,
        eventId: 'DSN',
        source: 'DSN',
        internalId: 'q-0003',
        messageId: '<dsn-1@mx.example.test>',
        sender: '',
        recipients: ['carol@example.test'],
        recipientStatus: ['250 2.0.0'],
        subject: undefined,
        relatedRecipient: 'q-0002',
      }),
    );
    await log.flush();
  });

  after(async () => {
    await log.close();
    await removeDir(dir);
  });

  const times = async (query: Parameters<SqliteTrackingLog['search']>[0]) =>
    (await log.search(query)).events.map((e) => (e.time - T0) / MIN);

  it('returns every event oldest first, with every field as recorded', async () => {
    const page = await log.search({});
    assert.deepEqual(
      page.events.map((e) => (e.time - T0) / MIN),
      [0, 1, 2, 10, 11, 20],
    );
    assert.equal(page.nextCursor, undefined, 'one page holds all six');
    const { seq, ...first } = page.events[0]!;
    assert.equal(typeof seq, 'number');
    assert.deepEqual(first, {
      ...trackingEvent({
        recipients: ['alice@example.test', 'Bob@Example.Test'],
        recipientStatus: ['250 2.1.5', '250 2.1.5'],
      }),
    });
  });

  it('a time window: start inclusive, end exclusive', async () => {
    assert.deepEqual(await times({ start: T0 + 1 * MIN, end: T0 + 11 * MIN }), [1, 2, 10]);
    assert.deepEqual(await times({ start: T0 + 11 * MIN }), [11, 20]);
    assert.deepEqual(await times({ end: T0 + 1 * MIN }), [0]);
    assert.deepEqual(await times({ start: T0 + 3 * MIN, end: T0 + 3 * MIN }), []);
  });

  it('by event id (case-insensitive)', async () => {
    assert.deepEqual(await times({ eventId: 'DELIVER' }), [1, 2]);
    assert.deepEqual(await times({ eventId: 'send' as 'SEND' }), [11]);
    assert.deepEqual(await times({ eventId: 'FAIL' }), []);
  });

  it('by sender, whatever its case; <> or empty finds the null sender', async () => {
    assert.deepEqual(await times({ sender: 'CAROL@example.test' }), [10, 11]);
    assert.deepEqual(await times({ sender: '<carol@example.test>' }), [10, 11]);
    assert.deepEqual(await times({ sender: '<>' }), [20]);
    assert.deepEqual(await times({ sender: '' }), [20]);
    const [stored] = (await log.search({ sender: 'carol@example.test' })).events;
    assert.equal(stored!.sender, 'carol@example.test', 'stored lower-cased');
  });

  it('by recipient, among several, whatever its case', async () => {
    assert.deepEqual(await times({ recipient: 'bob@example.test' }), [0, 2]);
    assert.deepEqual(await times({ recipient: 'ALICE@example.test' }), [0, 1]);
    assert.deepEqual(await times({ recipient: 'nobody@example.test' }), []);
    const [first] = (await log.search({ recipient: 'bob@example.test' })).events;
    assert.deepEqual(first!.recipients, ['alice@example.test', 'Bob@Example.Test'], 'the list as recorded');
  });

  it('by Message-ID, with or without angle brackets, case as given', async () => {
    assert.deepEqual(await times({ messageId: '<m-0001@client.example.net>' }), [0, 1, 2]);
    assert.deepEqual(await times({ messageId: 'm-0001@client.example.net' }), [0, 1, 2]);
    assert.deepEqual(await times({ messageId: ' <M-0002@Mail.Example.Test> ' }), [10, 11]);
    assert.deepEqual(
      await times({ messageId: 'm-0002@mail.example.test' }),
      [],
      'the id part is case-sensitive',
    );
    const [event] = (await log.search({ messageId: 'M-0002@Mail.Example.Test' })).events;
    assert.equal(event!.messageId, '<M-0002@Mail.Example.Test>', 'returned in its header form');
  });

  it('by internal (queue) id', async () => {
    assert.deepEqual(await times({ internalId: 'q-0002' }), [10, 11]);
    assert.deepEqual(await times({ internalId: 'q-0003' }), [20]);
    assert.deepEqual(await times({ internalId: 'q-9999' }), []);
  });

  it('by subject substring, case-insensitive beyond ASCII; events without a subject never match', async () => {
    assert.deepEqual(await times({ subject: 'réunion' }), [10, 11]);
    assert.deepEqual(await times({ subject: 'QUARTERLY' }), [0, 1, 2]);
    assert.deepEqual(await times({ subject: 'report', start: T0 + 1 * MIN }), [1, 2]);
    assert.deepEqual(await times({ subject: 'nothing like it' }), []);
    assert.deepEqual(await times({ subject: '' }), [0, 1, 2, 10, 11, 20], 'empty: no filter');
  });

  it('filters combine (AND)', async () => {
    assert.deepEqual(await times({ eventId: 'DELIVER', recipient: 'bob@example.test' }), [2]);
    assert.deepEqual(await times({ sender: 'carol@example.test', eventId: 'SEND' }), [11]);
    assert.deepEqual(
      await times({ messageId: 'm-0001@client.example.net', recipient: 'alice@example.test' }),
      [0, 1],
    );
    assert.deepEqual(
      await times({
        internalId: 'q-0002',
        recipient: 'dave@example.org',
        eventId: 'RECEIVE',
        subject: 'lundi',
      }),
      [10],
    );
    assert.deepEqual(
      await times({
        recipient: 'alice@example.test',
        sender: 'someone@example.net',
        start: T0 + 1 * MIN,
        end: T0 + 2 * MIN,
      }),
      [1],
    );
    assert.deepEqual(await times({ sender: 'carol@example.test', recipient: 'alice@example.test' }), []);
  });
});

describe('message tracking pagination', () => {
  it('pages through every matching event exactly once, in order, for each kind of search', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const log = await openLog(dir);
    try {
      // 250 events; several share a millisecond, so the cursor must order within a time too.
      for (let i = 0; i < 250; i++) {
        log.record(
          trackingEvent({
            time: T0 + Math.floor(i / 3),
            eventId: i % 2 === 0 ? 'RECEIVE' : 'DELIVER',
            internalId: `q-${i % 5}`,
            sender: i % 2 === 0 ? 'even@example.net' : 'odd@example.net',
            recipients: [`r${i % 4}@example.test`],
            recipientStatus: ['250'],
            size: i,
          }),
        );
      }
      await log.flush();
      const cases = [
        { query: {}, expected: (i: number) => i >= 0 },
        { query: { start: T0 + 10, end: T0 + 60 }, expected: (i: number) => i >= 30 && i < 180 },
        { query: { eventId: 'DELIVER' as const }, expected: (i: number) => i % 2 === 1 },
        { query: { sender: 'even@example.net' }, expected: (i: number) => i % 2 === 0 },
        { query: { recipient: 'r1@example.test' }, expected: (i: number) => i % 4 === 1 },
        { query: { internalId: 'q-3' }, expected: (i: number) => i % 5 === 3 },
        { query: { messageId: 'm-0001@client.example.net', subject: 'report' }, expected: () => true },
      ];
      for (const { query, expected } of cases) {
        for (const limit of [1, 7, 100]) {
          const sizes = (await searchAll(log, { ...query, limit })).map((e) => e.size);
          const want = Array.from({ length: 250 }, (_, i) => i).filter(expected);
          assert.deepEqual(sizes, want, `${JSON.stringify(query)} in pages of ${limit}`);
        }
      }
      const first = await log.search({ limit: 250 });
      assert.equal(first.events.length, 250);
      assert.equal(first.nextCursor, undefined, 'no cursor when nothing more matches');
      const partial = await log.search({ limit: 249 });
      assert.ok(partial.nextCursor, 'a cursor when one more matches');
      assert.equal((await log.search({ limit: 249, cursor: partial.nextCursor })).events.length, 1);
    } finally {
      await log.close();
      await removeDir(dir);
    }
  });
});
