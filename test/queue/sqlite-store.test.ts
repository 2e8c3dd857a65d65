import assert from 'node:assert/strict';
import { readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SCHEMA_VERSION } from '../../src/queue/sqlite-schema.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import { QueueUnavailableError } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { commitBytes, newMessage, runQueueStoreContract } from './store-contract.ts';

async function openStore(dir: string, clock = new ManualClock(), inlineBodyLimit?: number) {
  const store = new SqliteQueueStore({
    dir,
    clock,
    ids: createIdGenerator(clock),
    messageExpiration: 2 * 86_400_000,
    ...(inlineBodyLimit === undefined ? {} : { inlineBodyLimit }),
  });
  await store.open();
  return store;
}

for (const [label, inline] of [
  ['small bodies inline', undefined],
  ['every body in a file', 0],
] as const) {
  runQueueStoreContract(`SqliteQueueStore (${label})`, async () => {
    const dir = await makeTempDir('ferrymail-queue-');
    const clock = new ManualClock(Date.UTC(2026, 10, 24));
    let store = await openStore(dir, clock, inline);
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await openStore(dir, clock, inline);
        return store;
      },
      async cleanup() {
        await store.close();
        await removeDir(dir);
      },
      now: () => clock.now(),
      advance: (ms) => clock.advance(ms),
    };
  });
}

/** The schema of version 1 (before notification state), as a database written by it has it. */
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

const mailbox = (address: string) => ({ address, nextHop: { type: 'mailbox' as const, mailbox: address } });

describe('SqliteQueueStore', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-queue-');
  });
  after(() => removeDir(dir));

  it('shares one transaction among commits that arrive together (group commit)', async () => {
    const store = await openStore(join(dir, 'group'));
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        commitBytes(store, newMessage([mailbox(`u${i}@example.test`)]), [Buffer.from(`m${i}`)]),
      ),
    );
    const stats = store.stats();
    assert.equal(stats.commits, 50);
    assert.ok(stats.commitBatches <= 5, `50 concurrent commits took ${stats.commitBatches} batches`);
    await store.close();
  });

  it('flushes outcomes recorded the moment the previous ones resolved (no lost wake-up)', async () => {
    const store = await openStore(join(dir, 'chain'));
    const clock = new ManualClock();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++)
      ids.push(
        (await commitBytes(store, newMessage([mailbox(`c${i}@example.test`)]), [Buffer.from('x')])).id,
      );
    const jobs = await store.claimDue({ now: clock.now() + 1, limit: 100 });
    assert.equal(jobs.length, 30);
    const deadline = setTimeout(() => assert.fail('an outcome was never written'), 5000);
    for (const job of jobs) {
      // A caller that does a little async work first (as the scheduler does) resumes after the
      // flush loop has looked for more work, but possibly before it has finished.
      for (let hop = 0; hop < jobs.indexOf(job) % 8; hop++) await null;
      await store.recordOutcomes([
        { ref: { messageId: job.message.id, index: 0 }, outcome: { kind: 'delivered', response: '250 ok' } },
      ]);
    }
    clearTimeout(deadline);
    for (const id of ids) assert.equal(await store.getMessage(id), undefined);
    await store.close();
  });

  it('spills a body over the inline limit to a file and removes unacknowledged files on open', async () => {
    const path = join(dir, 'spill');
    const store = await openStore(path, new ManualClock(), 1024);
    const q = await commitBytes(store, newMessage([mailbox('big@example.test')]), [Buffer.alloc(4096, 0x61)]);
    assert.deepEqual(await readdir(join(path, 'bodies')), [q.id]);
    const pending = await store.openBody();
    await pending.write(Buffer.alloc(4096, 0x62));
    assert.deepEqual(await readdir(join(path, 'incoming')), [pending.id]);
    await store.close();
    await writeFile(join(path, 'bodies', 'ORPHAN'), 'never committed');
    const reopened = await openStore(path, new ManualClock(), 1024);
    assert.deepEqual(await readdir(join(path, 'incoming')), []);
    assert.deepEqual(await readdir(join(path, 'bodies')), [q.id]);
    await reopened.close();
  });

  it('holds no file open for a body stream that is destroyed before its first read', async () => {
    const path = join(dir, 'unread');
    const store = await openStore(path, new ManualClock(), 0);
    const q = await commitBytes(store, newMessage([mailbox('u@example.test')]), [Buffer.alloc(8192, 0x61)]);
    const bodyFile = join(path, 'bodies', q.id);
    const openOnBody = async () => {
      let count = 0;
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
        if (target === bodyFile) count++;
      }
      return count;
    };
    try {
      // A consumer that gives up at once, such as an export whose HTTP client went away.
      for (let i = 0; i < 20; i++) store.readBody(q.id).destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await openOnBody(), 0, 'destroyed body streams left descriptors open');
      assert.deepEqual(
        await buffer(store.readBody(q.id)),
        Buffer.alloc(8192, 0x61),
        'a stream that is read still reads',
      );
    } finally {
      await store.close();
    }
  });

  it('fails the recipients of a message whose body file vanished, instead of crashing', async () => {
    const path = join(dir, 'vanished');
    const store = await openStore(path, new ManualClock(), 0);
    const q = await commitBytes(store, newMessage([mailbox('v@example.test')]), [Buffer.from('x')]);
    await store.close();
    const { unlink } = await import('node:fs/promises');
    await unlink(join(path, 'bodies', q.id));
    const reopened = await openStore(path, new ManualClock(), 0);
    const m = await reopened.getMessage(q.id);
    assert.equal(m?.recipients[0]?.status, 'failed');
    assert.match(m?.recipients[0]?.lastResponse ?? '', /^451 4\.3\.0 Queue file missing/);
    assert.equal(m?.recipients[0]?.pendingNotification, 'failure', 'the sender is not told of the loss');
    await reopened.close();
  });

  it('migrates a version 1 database in place, keeping its messages, and then records notifications', async () => {
    const path = join(dir, 'v1');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(path, 'bodies'), { recursive: true });
    const db = new DatabaseSync(join(path, 'queue.db'));
    db.exec(SCHEMA_V1);
    db.exec('PRAGMA user_version = 1');
    const at = Date.UTC(2026, 10, 20);
    db.prepare(
      `INSERT INTO messages VALUES ('OLD1', 'old@remote.test', ?, ?, 5, '7BIT', 0, NULL, NULL, ?, NULL, 'old', 0)`,
    ).run(
      at,
      at + 86_400_000,
      JSON.stringify({ connector: 'Default', clientIp: '192.0.2.9', clientHelo: 'old.test', tls: false }),
    );
    db.prepare(`INSERT INTO message_bodies VALUES ('OLD1', ?)`).run(Buffer.from('hello'));
    for (const [idx, address] of [
      [0, 'a@example.test'],
      [1, 'b@example.test'],
    ] as const) {
      db.prepare(
        `INSERT INTO recipients VALUES ('OLD1', ?, ?, NULL, NULL, 'mailbox', ?, 'pending', 1, ?, '451 4.3.0 busy', ?)`,
      ).run(idx, address, address, at, at);
    }
    db.close();

    const store = await openStore(path, new ManualClock(at + 60_000));
    const m = await store.getMessage('OLD1');
    assert.deepEqual(
      m?.recipients.map((r) => [r.address, r.status, r.attempts, r.lastResponse, r.pendingNotification]),
      [
        ['a@example.test', 'pending', 1, '451 4.3.0 busy', undefined],
        ['b@example.test', 'pending', 1, '451 4.3.0 busy', undefined],
      ],
    );
    assert.deepEqual(await buffer(store.readBody('OLD1')), Buffer.from('hello'));
    const jobs = await store.claimDue({ now: at + 60_000, limit: 10 });
    assert.equal(jobs.length, 1);
    await store.recordOutcomes([
      { ref: { messageId: 'OLD1', index: 0 }, outcome: { kind: 'failed', response: '550 5.1.1 gone' } },
    ]);
    assert.equal((await store.getMessage('OLD1'))?.recipients[0]?.pendingNotification, 'failure');
    await store.close();
    const check = new DatabaseSync(join(path, 'queue.db'));
    assert.equal(
      (check.prepare('PRAGMA user_version').get() as { user_version: number }).user_version,
      SCHEMA_VERSION,
    );
    check.close();
    // Opening the migrated database again changes nothing.
    const again = await openStore(path, new ManualClock(at + 60_000));
    assert.equal((await again.getMessage('OLD1'))?.recipients[0]?.pendingNotification, 'failure');
    await again.close();
  });

  it('refuses a database from a newer schema version, leaving it untouched', async () => {
    const path = join(dir, 'future');
    const store = await openStore(path);
    await store.close();
    const db = new DatabaseSync(join(path, 'queue.db'));
    db.exec('PRAGMA user_version = 99');
    db.close();
    await assert.rejects(openStore(path), /schema 99 is newer/);
  });

  it('refuses new messages with QueueUnavailableError once closed', async () => {
    const store = await openStore(join(dir, 'closed'));
    await store.close();
    await assert.rejects(store.openBody(), QueueUnavailableError);
  });

  it('finishes a commit made just before close, and refuses one made after close began', async () => {
    const store = await openStore(join(dir, 'closing'), new ManualClock(), 0);
    const early = await store.openBody();
    await early.write(Buffer.from('in time'));
    const late = await store.openBody();
    await late.write(Buffer.from('too late'));
    const committed = store.commit(early, newMessage([mailbox('e@example.test')]));
    const closed = store.close();
    await assert.rejects(store.commit(late, newMessage([mailbox('l@example.test')])), QueueUnavailableError);
    await late.abort();
    const queued = await committed;
    await closed;
    const reopened = await openStore(join(dir, 'closing'), new ManualClock(), 0);
    assert.deepEqual(await buffer(reopened.readBody(queued.id)), Buffer.from('in time'));
    assert.equal(await reopened.getMessage(late.id), undefined);
    assert.deepEqual(await readdir(join(dir, 'closing', 'incoming')), []);
    await reopened.close();
  });

  it('puts recipients a previous run left active back to pending on open', async () => {
    const path = join(dir, 'active');
    const store = await openStore(path);
    const q = await commitBytes(store, newMessage([mailbox('a@example.test')]), [Buffer.from('x')]);
    await store.close();
    const db = new DatabaseSync(join(path, 'queue.db'));
    db.exec(`UPDATE recipients SET status = 'active'`);
    db.close();
    const reopened = await openStore(path);
    assert.equal((await reopened.getMessage(q.id))?.recipients[0]?.status, 'pending');
    assert.equal((await reopened.claimDue({ now: Date.UTC(2030, 0, 1), limit: 10 })).length, 1);
    await reopened.close();
  });

  const diskError = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });

  for (const [what, code, fileOps] of [
    ['creating the body file', 'ENOSPC', { open: () => Promise.reject(diskError('ENOSPC')) }],
    ['moving the body into place', 'EDQUOT', { rename: () => Promise.reject(diskError('EDQUOT')) }],
    ['syncing the bodies folder', 'EIO', { fsyncDirectory: () => Promise.reject(diskError('EIO')) }],
  ] as const) {
    it(`answers ${code} while ${what} with QueueUnavailableError and keeps nothing`, async () => {
      const path = join(dir, `fault-${code}`);
      const clock = new ManualClock();
      const store = new SqliteQueueStore({
        dir: path,
        clock,
        ids: createIdGenerator(clock),
        messageExpiration: 86_400_000,
        inlineBodyLimit: 0,
        fileOps,
      });
      await store.open();
      try {
        const body = await store.openBody();
        await assert.rejects(
          (async () => {
            await body.write(Buffer.from('Subject: doomed\r\n\r\nx\r\n'));
            await store.commit(body, newMessage([mailbox('d@example.test')]));
          })(),
          (error: Error) => error instanceof QueueUnavailableError && error.message.includes(code),
        );
        await body.abort();
        assert.deepEqual(await store.listMessages(), []);
        assert.equal((await store.countRecipients()).pending, 0);
        assert.deepEqual(await readdir(join(path, 'incoming')), []);
        assert.deepEqual(await readdir(join(path, 'bodies')), []);
      } finally {
        await store.close();
      }
    });
  }

  it('refuses commits with QueueUnavailableError once the database reaches its size cap, keeping nothing of them', async () => {
    const path = join(dir, 'full');
    const clock = new ManualClock();
    const store = new SqliteQueueStore({
      dir: path,
      clock,
      ids: createIdGenerator(clock),
      messageExpiration: 86_400_000,
      inlineBodyLimit: 64 * 1024,
      maxDatabaseSize: 256 * 1024,
    });
    await store.open();
    try {
      const first = await commitBytes(store, newMessage([mailbox('a@example.test')]), [
        Buffer.alloc(1000, 1),
      ]);
      // Inline bodies fill the database; the spilled ones are in the same batches, so their
      // files must go too when a batch is refused.
      const refused = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          commitBytes(store, newMessage([mailbox(`m${i}@example.test`)]), [
            Buffer.alloc(i % 2 === 0 ? 60_000 : 100_000, i),
          ]),
        ),
      );
      const failures = refused.filter((r) => r.status === 'rejected');
      assert.ok(failures.length > 0, 'the cap refused nothing');
      for (const f of failures) assert.ok(f.reason instanceof QueueUnavailableError, String(f.reason));
      const stored = (await store.listMessages()).map((m) => m.id);
      assert.ok(stored.includes(first.id));
      assert.equal(stored.length, 1 + refused.length - failures.length);
      const bodyFiles = await readdir(join(path, 'bodies'));
      for (const id of bodyFiles) assert.ok(stored.includes(id), `body file ${id} has no message`);
      assert.deepEqual(await readdir(join(path, 'incoming')), []);
    } finally {
      await store.close();
    }
  });
});
