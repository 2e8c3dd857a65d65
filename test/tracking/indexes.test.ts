import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { SqliteTrackingLog } from '../../src/tracking/sqlite-tracking-log.ts';
import { buildSearch, openTrackingDb, registerTrackingFunctions } from '../../src/tracking/tracking-db.ts';
import { encodeCursor, normalizeQuery } from '../../src/tracking/tracking-query.ts';
import type { TrackingQuery } from '../../src/tracking/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { logPath, openLog, T0 } from './helpers.ts';

const EVENTS = 200_000;
/** 13 s apart: 200,000 events span 30 days, the default retention. */
const STEP = 13_000;
const DAY = 86_400_000;
const IDS = ['RECEIVE', 'DELIVER', 'SEND', 'DEFER'] as const;

/**
 * The rows insert() would write for 200,000 events, generated inside SQLite so the test spends
 * seconds, not a minute, filling the table: four event ids in turn, a queue id and Message-ID per
 * four events, 2,000 senders, 5,000 recipients, and every tenth event also to a busy shared mailbox.
 */
const FILL = `
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${EVENTS - 1})
INSERT INTO events (seq, time, event_id, source, internal_id, message_id, sender, recipients, recipient_status, subject)
SELECT i + 1, ${T0} + i * ${STEP}, ${sqlCase(IDS)}, 'SMTP', 'q-' || (i / 4), 'm-' || (i / 4) || '@example.net',
  'sender' || (i % 2000) || '@example.net',
  CASE WHEN i % 10 = 0 THEN '["user' || (i % 5000) || '@example.test","shared@example.test"]'
    ELSE '["user' || (i % 5000) || '@example.test"]' END,
  CASE WHEN i % 10 = 0 THEN '["250","250"]' ELSE '["250"]' END,
  'Order ' || i || ' confirmation'
FROM n;
INSERT INTO event_recipients (address, time, seq)
  SELECT 'user' || ((seq - 1) % 5000) || '@example.test', time, seq FROM events;
INSERT INTO event_recipients (address, time, seq)
  SELECT 'shared@example.test', time, seq FROM events WHERE (seq - 1) % 10 = 0;
`;

function sqlCase(ids: ReadonlyArray<string>): string {
  return `CASE i % ${ids.length} ${ids.map((id, k) => `WHEN ${k} THEN '${id}'`).join(' ')} END`;
}

/** Every search filter is an index range scan, already in result order, at 200,000 events. */
describe('message tracking indexes', () => {
  let dir: string;
  let log: SqliteTrackingLog;
  let explain: DatabaseSync;

  before(
    async () => {
      dir = await makeTempDir('ferrymail-tracking-');
      await mkdir(dirname(logPath(dir)), { recursive: true });
      const started = performance.now();
      const db = openTrackingDb(logPath(dir));
      db.db.exec(`BEGIN; ${FILL} COMMIT;`);
      db.close();
      console.log(`inserted ${EVENTS} events in ${Math.round(performance.now() - started)} ms`);
      log = await openLog(dir);
      explain = new DatabaseSync(logPath(dir), { readOnly: true });
      registerTrackingFunctions(explain);
    },
    { timeout: 300_000 },
  );
  after(async () => {
    explain.close();
    await log.close();
    await removeDir(dir);
  });

  const week = { start: T0 + 10 * DAY, end: T0 + 17 * DAY };
  const filtered: Array<[string, TrackingQuery, RegExp]> = [
    ['time window', week, /SEARCH e USING INDEX events_time \(time>\? AND time<\?\)/],
    [
      'eventId',
      { ...week, eventId: 'SEND' },
      /USING INDEX events_event_id \(event_id=\? AND time>\? AND time<\?\)/,
    ],
    [
      'sender',
      { ...week, sender: 'sender7@example.net' },
      /USING INDEX events_sender \(sender=\? AND time>\? AND time<\?\)/,
    ],
    [
      'recipient',
      { ...week, recipient: 'user7@example.test' },
      /SEARCH r USING PRIMARY KEY \(address=\? AND time>\? AND time<\?\)/,
    ],
    ['messageId', { messageId: 'm-100@example.net' }, /USING INDEX events_message_id \(message_id=\?\)/],
    ['internalId', { internalId: 'q-100' }, /USING INDEX events_internal_id \(internal_id=\?\)/],
    [
      'subject in a window',
      { ...week, subject: 'order 5' },
      /USING INDEX events_time \(time>\? AND time<\?\)/,
    ],
    [
      'sender and recipient',
      { sender: 'sender7@example.net', recipient: 'user7@example.test' },
      /SEARCH r USING PRIMARY KEY \(address=\?\)/,
    ],
    [
      'internalId and recipient',
      { internalId: 'q-100', recipient: 'user400@example.test' },
      /USING INDEX events_internal_id/,
    ],
    [
      'a later page',
      { ...week, sender: 'sender7@example.net', cursor: encodeCursor({ time: week.start + DAY, seq: 1 }) },
      /USING INDEX events_sender \(sender=\? AND time>\? AND time<\?\)/,
    ],
  ];

  for (const [name, query, uses] of filtered) {
    it(`${name}: an index search, no full scan, no sort`, () => {
      const { sql, params } = buildSearch(normalizeQuery(query));
      const plan = (explain.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>)
        .map((row) => row.detail)
        .join('\n');
      assert.match(plan, uses, plan);
      assert.doesNotMatch(plan, /^SCAN /m, `a full scan:\n${plan}`);
      assert.doesNotMatch(plan, /TEMP B-TREE/, `a sort of every match:\n${plan}`);
    });
  }

  it('answers recipient, sender and Message-ID searches well under 100 ms', async () => {
    const timed: Array<[string, TrackingQuery, number]> = [
      ['recipient (40 matches)', { recipient: 'user7@example.test' }, 40],
      ['busy recipient, first page of 100 of 20,000', { recipient: 'shared@example.test' }, 100],
      ['busy recipient in a week', { ...week, recipient: 'shared@example.test' }, 100],
      ['sender (100 matches)', { sender: 'sender7@example.net' }, 100],
      ['Message-ID', { messageId: '<m-4242@example.net>' }, 4],
    ];
    for (const [name, query, count] of timed) {
      const runs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const page = await log.search(query);
        runs.push(performance.now() - started);
        assert.equal(page.events.length, count, name);
      }
      runs.sort((a, b) => a - b);
      console.log(
        `${name}: median ${runs[2]!.toFixed(1)} ms, max ${runs[4]!.toFixed(1)} ms (${EVENTS} events)`,
      );
      // Generous: this machine runs other test suites at the same time.
      assert.ok(runs[2]! < 500, `${name} took ${runs[2]!.toFixed(1)} ms`);
    }
  });
});
