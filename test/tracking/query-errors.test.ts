import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { disabledTrackingLog } from '../../src/tracking/index.ts';
import type { SqliteTrackingLog } from '../../src/tracking/sqlite-tracking-log.ts';
import { encodeCursor } from '../../src/tracking/tracking-query.ts';
import { type TrackingQuery, TrackingQueryError } from '../../src/tracking/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { openLog, T0, trackingEvent } from './helpers.ts';

/** A malformed search is a TrackingQueryError whose message names the mistake (the API's 400). */
describe('message tracking query errors', () => {
  let dir: string;
  let log: SqliteTrackingLog;

  before(async () => {
    dir = await makeTempDir('ferrymail-tracking-');
    log = await openLog(dir);
    for (let i = 0; i < 3; i++) log.record(trackingEvent({ time: T0 + i }));
    await log.flush();
  });
  after(async () => {
    await log.close();
    await removeDir(dir);
  });

  const rejects = (query: TrackingQuery, message: RegExp) =>
    assert.rejects(log.search(query), (error: unknown) => {
      assert.ok(error instanceof TrackingQueryError, `a TrackingQueryError, got ${String(error)}`);
      assert.match(error.message, message);
      return true;
    });

  it('limit outside 1..5000 or not whole', async () => {
    await rejects({ limit: 0 }, /^limit must be a whole number from 1 to 5000, got 0$/);
    await rejects({ limit: 5001 }, /got 5001$/);
    await rejects({ limit: 2.5 }, /got 2\.5$/);
    await rejects({ limit: Number.NaN }, /got NaN$/);
    assert.equal((await log.search({ limit: 5000 })).events.length, 3, '5000 itself is allowed');
    assert.equal((await log.search({ limit: 1 })).events.length, 1, '1 itself is allowed');
  });

  it('start after end, naming both times', async () => {
    await rejects(
      { start: T0 + 1, end: T0 },
      /^start \(2026-11-01T12:00:00\.001Z\) is after end \(2026-11-01T12:00:00\.000Z\)$/,
    );
    await rejects(
      { start: Number.POSITIVE_INFINITY },
      /^start must be a time in ms since the epoch, got Infinity$/,
    );
    await rejects({ end: '2026-11-01' as unknown as number }, /^end must be a time in ms since the epoch/);
  });

  it('a cursor this log did not hand out', async () => {
    for (const cursor of [
      '',
      'not-a-cursor',
      'MTIzOmFiYw',
      Buffer.from('1:2:3').toString('base64url'),
      `${encodeCursor({ time: T0, seq: 1 })}!`,
    ]) {
      await rejects({ cursor }, /is not one this log returned; pass the nextCursor of the previous page$/);
    }
    const page = await log.search({ limit: 1 });
    assert.equal(
      (await log.search({ limit: 1, cursor: page.nextCursor })).events.length,
      1,
      'a real one works',
    );
  });

  it('an unknown event id, listing the known ones', async () => {
    await rejects(
      { eventId: 'BOUNCE' as 'FAIL' },
      /^eventId must be one of RECEIVE, RESOLVE, .*, ADMIN, got "BOUNCE"$/,
    );
  });

  it('empty or mistyped id and address filters', async () => {
    await rejects({ recipient: '  ' }, /^recipient is empty$/);
    await rejects({ messageId: '<>' }, /^messageId is empty$/);
    await rejects({ internalId: '' }, /^internalId is empty$/);
    await rejects({ sender: ['a@b'] as unknown as string }, /^sender must be text, got object$/);
  });

  it('the same errors with tracking disabled', async () => {
    await assert.rejects(disabledTrackingLog.search({ limit: 0 }), TrackingQueryError);
    assert.deepEqual(await disabledTrackingLog.search({}), { events: [] });
  });
});
