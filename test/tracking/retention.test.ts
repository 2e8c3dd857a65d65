import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { describe, it, mock } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createEventBus, track } from '../../src/observe/events.ts';
import { PURGE_INTERVAL, startTracking, trackingDbPath } from '../../src/tracking/index.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { openLog, T0, trackingEvent } from './helpers.ts';

const DAY = 86_400_000;
const config = { enabled: true, retention: 30 * DAY, logSubject: true };

describe('message tracking retention', () => {
  it('purge(before) removes exactly the events older than before, recipients included', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const log = await openLog(dir);
    try {
      for (let i = 0; i < 12_000; i++) {
        log.record(
          trackingEvent({
            time: T0 + i,
            recipients: ['alice@example.test', `r${i}@example.test`],
            recipientStatus: ['250', '250'],
          }),
        );
      }
      await log.flush();
      // More than one purge transaction's worth (5000), to cross its chunks.
      assert.equal(await log.purge(T0 + 11_000), 11_000);
      const left = await log.search({ limit: 5000 });
      assert.equal(left.events.length, 1000);
      assert.equal(left.events[0]!.time, T0 + 11_000, 'the event at `before` stays');
      assert.equal((await log.search({ recipient: 'alice@example.test', limit: 5000 })).events.length, 1000);
      assert.deepEqual((await log.search({ recipient: 'r5@example.test' })).events, []);
      assert.equal(await log.purge(T0 + 11_000), 0, 'nothing more to remove');
    } finally {
      await log.close();
      await removeDir(dir);
    }
  });

  it('startTracking removes events past the retention at start, then every hour', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    try {
      const seed = await openLog(dir, {});
      seed.record(trackingEvent({ time: T0 - 31 * DAY, internalId: 'too-old' }));
      seed.record(trackingEvent({ time: T0 - 29 * DAY, internalId: 'kept-at-start' }));
      seed.record(trackingEvent({ time: T0, internalId: 'recent' }));
      await seed.close();

      mock.timers.enable({ apis: ['setInterval'] });
      const clock = new ManualClock(T0);
      const tracking = await startTracking(config, `${dir}`, createEventBus(), silentLogger, clock);
      try {
        const ids = async () => (await tracking.log.search({})).events.map((e) => e.internalId);
        await waitFor(async () => !(await ids()).includes('too-old'), 'the purge at start');
        assert.deepEqual(await ids(), ['kept-at-start', 'recent']);

        clock.advance(2 * DAY);
        mock.timers.tick(PURGE_INTERVAL - 1);
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual(await ids(), ['kept-at-start', 'recent'], 'no purge before the hour is up');
        mock.timers.tick(1);
        await waitFor(async () => !(await ids()).includes('kept-at-start'), 'the hourly purge');
        assert.deepEqual(await ids(), ['recent']);
      } finally {
        mock.timers.reset();
        await tracking.stop();
      }
    } finally {
      await removeDir(dir);
    }
  });
});

describe('startTracking', () => {
  it("records the bus's track events and nothing else", async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const bus = createEventBus();
    const tracking = await startTracking(config, dir, bus, silentLogger, new ManualClock(T0));
    try {
      track(bus, trackingEvent({ internalId: 'via-bus' }));
      bus.emit({ kind: 'session', connector: 'Default', phase: 'open' });
      await tracking.log.flush();
      const [event, ...rest] = (await tracking.log.search({})).events;
      assert.equal(event?.internalId, 'via-bus');
      assert.equal(event?.subject, 'Quarterly report');
      assert.deepEqual(rest, []);
      await tracking.stop();
      track(bus, trackingEvent({ internalId: 'after-stop' }));
      const reopened = await openLog(dir);
      assert.deepEqual(
        (await reopened.search({})).events.map((e) => e.internalId),
        ['via-bus'],
        'unsubscribed on stop',
      );
      await reopened.close();
    } finally {
      await tracking.stop();
      await removeDir(dir);
    }
  });

  it('logSubject: false stores no subject, and the subject filter finds nothing', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const bus = createEventBus();
    const tracking = await startTracking(
      { ...config, logSubject: false },
      dir,
      bus,
      silentLogger,
      new ManualClock(T0),
    );
    try {
      track(bus, trackingEvent({ subject: 'Salary review — confidential' }));
      await tracking.log.flush();
      const [event] = (await tracking.log.search({})).events;
      assert.ok(event, 'the event is recorded');
      assert.equal('subject' in event, false, 'without its subject');
      assert.deepEqual((await tracking.log.search({ subject: 'salary' })).events, []);
    } finally {
      await tracking.stop();
    }
    // Not in the file either.
    const db = new DatabaseSync(trackingDbPath(dir), { readOnly: true });
    assert.deepEqual(
      db
        .prepare('SELECT subject FROM events')
        .all()
        .map((row) => row.subject),
      [null],
    );
    db.close();
    await removeDir(dir);
  });

  it('enabled: false records nothing, finds nothing, and creates no file', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const bus = createEventBus();
    const tracking = await startTracking(
      { ...config, enabled: false },
      dir,
      bus,
      silentLogger,
      new ManualClock(T0),
    );
    track(bus, trackingEvent());
    tracking.log.record(trackingEvent());
    await tracking.log.flush();
    assert.deepEqual(await tracking.log.search({}), { events: [] });
    await tracking.stop();
    await assert.rejects(access(trackingDbPath(dir)), { code: 'ENOENT' });
    await removeDir(dir);
  });
});

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
