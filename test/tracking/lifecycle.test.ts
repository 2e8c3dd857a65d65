import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { TRACKING_SCHEMA_VERSION } from '../../src/tracking/tracking-db.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { capturingLogger, logPath, openLog, T0, trackingEvent } from './helpers.ts';

describe('message tracking log lifecycle', () => {
  it('events survive close and reopen, and new ones follow them', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    try {
      const first = await openLog(dir);
      first.record(trackingEvent({ time: T0, internalId: 'before' }));
      // Not flushed: close() must write what is still buffered.
      await first.close();
      const second = await openLog(dir);
      second.record(trackingEvent({ time: T0 + 1, internalId: 'after' }));
      await second.flush();
      const events = (await second.search({})).events;
      assert.deepEqual(
        events.map((e) => e.internalId),
        ['before', 'after'],
      );
      assert.ok(events[1]!.seq > events[0]!.seq, 'seq keeps growing across restarts');
      await second.close();
    } finally {
      await removeDir(dir);
    }
  });

  it('record() after close neither throws nor writes; search and purge then reject', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    try {
      const log = await openLog(dir);
      await log.close();
      assert.doesNotThrow(() => log.record(trackingEvent()));
      await log.flush();
      await log.close();
      await assert.rejects(log.search({}), /the message tracking log is closed/);
      await assert.rejects(log.purge(T0), /the message tracking log is closed/);
      const reopened = await openLog(dir);
      assert.deepEqual((await reopened.search({})).events, []);
      await reopened.close();
    } finally {
      await removeDir(dir);
    }
  });

  it('a malformed event is refused alone, not with the events around it', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const { logger, records } = capturingLogger();
    try {
      const log = await openLog(dir, { logger });
      log.record(trackingEvent({ internalId: 'one' }));
      log.record(trackingEvent({ time: Number.NaN }));
      log.record({ ...trackingEvent(), recipients: undefined } as never);
      log.record(trackingEvent({ internalId: 'two' }));
      await log.flush();
      assert.deepEqual(
        (await log.search({})).events.map((e) => e.internalId),
        ['one', 'two'],
      );
      assert.equal(records.filter((r) => r.msg === 'malformed tracking event not recorded').length, 2);
      await log.close();
    } finally {
      await removeDir(dir);
    }
  });

  it('the file carries its schema version; a newer one is refused, not misread', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    try {
      await (await openLog(dir)).close();
      const db = new DatabaseSync(logPath(dir));
      assert.equal(
        (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version,
        TRACKING_SCHEMA_VERSION,
      );
      assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
      db.exec(`PRAGMA user_version = ${TRACKING_SCHEMA_VERSION + 1}`);
      db.close();
      await assert.rejects(openLog(dir), /has tracking schema version 2, newer than this Ferrymail's 1$/);
      await writeFile(
        logPath(dir),
        'this is not a database, just text long enough to have a header...........',
      );
      await assert.rejects(openLog(dir), /file is not a database/);
    } finally {
      await removeDir(dir);
    }
  });

  it('while writes fail, events wait in memory up to the bound; then the oldest go, logged once', async () => {
    const dir = await makeTempDir('ferrymail-tracking-');
    const { logger, records } = capturingLogger();
    try {
      const log = await openLog(dir, { logger, busyTimeout: 20, retryInterval: 20, maxBuffered: 100 });
      // Another connection holds the write lock: every batch fails as on a failing disk.
      const blocker = new DatabaseSync(logPath(dir));
      blocker.exec('BEGIN IMMEDIATE');
      for (let i = 0; i < 300; i++) log.record(trackingEvent({ time: T0 + i, size: i }));
      await assert.rejects(log.flush(), /database is locked/);
      for (let i = 300; i < 400; i++) log.record(trackingEvent({ time: T0 + i, size: i }));
      blocker.exec('ROLLBACK');
      blocker.close();
      await log.flush();
      const sizes = (await log.search({ limit: 5000 })).events.map((e) => e.size!);
      assert.ok(sizes.length <= 100 + 10 && sizes.length >= 80, `about the bound kept, got ${sizes.length}`);
      assert.equal(sizes.at(-1), 399, 'the newest kept');
      assert.deepEqual(
        sizes,
        [...sizes].sort((a, b) => a - b),
        'in order',
      );
      assert.equal(
        records.filter((r) => r.msg.includes('dropping the oldest')).length,
        1,
        'dropping logged once',
      );
      assert.equal(
        records.filter((r) => r.msg.includes('write failed')).length,
        1,
        'the failure logged once',
      );
      assert.equal(records.filter((r) => r.msg === 'message tracking log writes again').length, 1);
      await log.close();
    } finally {
      await removeDir(dir);
    }
  });
});
