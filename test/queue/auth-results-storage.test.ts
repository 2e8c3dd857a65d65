import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SCHEMA_VERSION } from '../../src/queue/sqlite-schema.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { AuthResults } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { newMessage } from './store-contract.ts';

// Email authentication leaves two things in the queue: the results on the message (for rules
// and tracking) and the Authentication-Results header, known only at the end of data, in front
// of a body already written (a file, for a large one). Both must survive a restart, and a
// version 2 database must take them after an in-place migration.

const RESULTS: AuthResults = {
  spf: 'pass',
  spfHelo: 'none',
  dkim: 'pass',
  dmarc: 'fail',
  arc: 'none',
  dmarcPolicy: 'quarantine',
  fromDomain: 'example.com',
  action: 'quarantine',
};
const mailbox = {
  address: 'a@example.test',
  nextHop: { type: 'mailbox' as const, mailbox: 'a@example.test' },
};

let dir: string;
before(async () => {
  dir = await makeTempDir('ferrymail-auth-queue-');
});
after(() => removeDir(dir));

async function openStore(path: string, inlineBodyLimit?: number) {
  const clock = new ManualClock(Date.UTC(2026, 11, 1));
  const store = new SqliteQueueStore({
    dir: path,
    clock,
    ids: createIdGenerator(clock),
    messageExpiration: 86_400_000,
    ...(inlineBodyLimit === undefined ? {} : { inlineBodyLimit }),
  });
  await store.open();
  return store;
}

for (const [label, inline] of [
  ['an inline body', undefined],
  ['a body in a file', 0],
] as const) {
  describe(`auth results and a prepended header, ${label}`, () => {
    it('keeps the results on the message and the header in front of the body, over a restart', async () => {
      const path = join(dir, label.replace(/ /g, '-'));
      let store = await openStore(path, inline);
      const body = await store.openBody();
      await body.write(Buffer.from('Received: x\r\n'));
      await body.write(Buffer.from('Subject: s\r\n\r\nbody\r\n'));
      body.prepend!(Buffer.from('X-Second: 2\r\n'));
      body.prepend!(Buffer.from('Authentication-Results: mx; spf=pass\r\n'));
      const expected =
        'Authentication-Results: mx; spf=pass\r\nX-Second: 2\r\nReceived: x\r\nSubject: s\r\n\r\nbody\r\n';
      assert.equal(body.size, Buffer.byteLength(expected));
      const queued = await store.commit(body, newMessage([mailbox], { authResults: RESULTS }));
      assert.equal(queued.size, Buffer.byteLength(expected));
      assert.deepEqual(queued.authResults, RESULTS);
      await store.close();
      store = await openStore(path, inline);
      const m = await store.getMessage(queued.id);
      assert.deepEqual(m?.authResults, RESULTS);
      assert.equal((await buffer(store.readBody(queued.id))).toString(), expected);
      await store.close();
    });

    it('a message committed without results has none, and its body nothing in front', async () => {
      const path = join(dir, `${label.replace(/ /g, '-')}-plain`);
      const store = await openStore(path, inline);
      const body = await store.openBody();
      await body.write(Buffer.from('Subject: s\r\n\r\nbody\r\n'));
      const queued = await store.commit(body, newMessage([mailbox]));
      assert.equal((await store.getMessage(queued.id))?.authResults, undefined);
      assert.equal((await buffer(store.readBody(queued.id))).toString(), 'Subject: s\r\n\r\nbody\r\n');
      await store.close();
    });
  });
}

/** The messages table of version 2, as a database written by it has it. */
const SCHEMA_V2 = `
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
  notify_pending TEXT, delay_notified INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
`;

describe('schema version 3', () => {
  it('migrates a version 2 database in place: old messages keep their bodies, new ones store results', async () => {
    const path = join(dir, 'v2');
    await mkdir(join(path, 'bodies'), { recursive: true });
    const db = new DatabaseSync(join(path, 'queue.db'));
    db.exec(SCHEMA_V2);
    db.exec('PRAGMA user_version = 2');
    const at = Date.UTC(2026, 11, 1);
    db.prepare(
      `INSERT INTO messages VALUES ('OLD2', 'old@remote.test', ?, ?, 5, '7BIT', 0, NULL, NULL, ?, NULL, 'old', 0)`,
    ).run(
      at,
      at + 86_400_000,
      JSON.stringify({ connector: 'Default', clientIp: '192.0.2.9', clientHelo: 'h', tls: false }),
    );
    db.prepare(`INSERT INTO message_bodies VALUES ('OLD2', ?)`).run(Buffer.from('hello'));
    db.prepare(
      `INSERT INTO recipients VALUES ('OLD2', 0, 'a@example.test', NULL, NULL, 'mailbox', 'a@example.test', 'pending', 0, ?, NULL, ?, NULL, 0)`,
    ).run(at, at);
    db.close();

    const store = await openStore(path, 0);
    const old = await store.getMessage('OLD2');
    assert.equal(old?.subject, 'old');
    assert.equal(old?.authResults, undefined);
    assert.equal((await buffer(store.readBody('OLD2'))).toString(), 'hello');
    const body = await store.openBody();
    await body.write(Buffer.from('\r\nnew\r\n'));
    body.prepend!(Buffer.from('Authentication-Results: mx; dmarc=pass\r\n'));
    const queued = await store.commit(body, newMessage([mailbox], { authResults: RESULTS }));
    assert.deepEqual((await store.getMessage(queued.id))?.authResults, RESULTS);
    assert.equal(
      (await buffer(store.readBody(queued.id))).toString(),
      'Authentication-Results: mx; dmarc=pass\r\n\r\nnew\r\n',
    );
    await store.close();
    const check = new DatabaseSync(join(path, 'queue.db'));
    assert.equal(
      (check.prepare('PRAGMA user_version').get() as { user_version: number }).user_version,
      SCHEMA_VERSION,
    );
    check.close();
    const again = await openStore(path, 0);
    assert.deepEqual((await again.getMessage(queued.id))?.authResults, RESULTS);
    await again.close();
  });
});
