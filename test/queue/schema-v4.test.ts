import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { MIGRATE_V1_TO_V2, MIGRATE_V2_TO_V3, SCHEMA_VERSION } from '../../src/queue/sqlite-schema.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { openAdminStore } from './admin-fixture.ts';

/** Tables as schema version 1 made them; versions 2 and 3 are reached by their own migrations. */
const SCHEMA_V1 = `
CREATE TABLE messages (
  id TEXT PRIMARY KEY, sender TEXT NOT NULL, received_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  size INTEGER NOT NULL, body_type TEXT NOT NULL, smtputf8 INTEGER NOT NULL, dsn_ret TEXT, dsn_envid TEXT,
  origin TEXT NOT NULL, message_id TEXT, subject TEXT, body_file INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE message_bodies (id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE recipients (
  message_id TEXT NOT NULL, idx INTEGER NOT NULL, address TEXT NOT NULL, orcpt TEXT, notify TEXT,
  hop_type TEXT NOT NULL, hop_target TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL, last_response TEXT, updated_at INTEGER NOT NULL,
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX recipients_due ON recipients (status, next_attempt_at, message_id, idx);
CREATE INDEX recipients_hop_due ON recipients (status, hop_type, next_attempt_at, message_id, idx);
`;

describe('schema version 4', () => {
  it('migrates a version 3 queue in place: its recipients are in their viewer queues, with no crash counted', async () => {
    const dir = await makeTempDir('ferrymail-v4-');
    try {
      await mkdir(dir, { recursive: true });
      const db = new DatabaseSync(join(dir, 'queue.db'));
      db.exec(SCHEMA_V1 + MIGRATE_V1_TO_V2 + MIGRATE_V2_TO_V3);
      db.exec('PRAGMA user_version = 3');
      const now = Date.UTC(2026, 10, 24);
      db.prepare(
        `INSERT INTO messages (id, sender, received_at, expires_at, size, body_type, smtputf8, origin, body_file)
          VALUES ('01OLDMESSAGE', 'a@remote.test', ?, ?, 1, '7BIT', 0, '{}', 0)`,
      ).run(now, now + 86_400_000);
      db.prepare(`INSERT INTO message_bodies (id, data) VALUES ('01OLDMESSAGE', x'41')`).run();
      const recipient = db.prepare(
        `INSERT INTO recipients (message_id, idx, address, hop_type, hop_target, status, attempts, next_attempt_at, updated_at)
          VALUES ('01OLDMESSAGE', ?, ?, ?, ?, 'pending', 0, ?, ?)`,
      );
      recipient.run(0, 'x@remote.test', 'smtp', 'remote.test\tOutbound', now, now);
      recipient.run(1, 'bob@example.test', 'mailbox', 'bob@example.test', now, now);
      recipient.run(2, 'z@nowhere.test', 'unreachable', 'nowhere.test', now, now);
      db.close();

      const t = await openAdminStore(dir);
      try {
        const view = await t.admin.getMessage('01OLDMESSAGE');
        assert.deepEqual(view?.queues, ['mailbox', 'smtp:remote.test', 'unreachable']);
        assert.equal(view?.crashCount, 0);
        assert.deepEqual(
          (await t.admin.listQueues()).map((q) => [q.name, q.recipientCount]),
          [
            ['mailbox', 1],
            ['poison', 0],
            ['smtp:remote.test', 1],
            ['unreachable', 1],
          ],
        );
      } finally {
        await t.store.close();
      }
      const check = new DatabaseSync(join(dir, 'queue.db'));
      assert.equal(
        (check.prepare('PRAGMA user_version').get() as { user_version: number }).user_version,
        SCHEMA_VERSION,
      );
      check.close();
    } finally {
      await removeDir(dir);
    }
  });
});
