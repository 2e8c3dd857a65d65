/**
 * The queue viewer at depth: fills a queue store with N deferred messages (default 1,000,000,
 * written straight into the database, not through SMTP) and times what an administrator does:
 * the queue list, a page of messages with each filter, one message, and a delivery claim.
 *
 *   npx node bench/queue-viewer.ts [messages]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ManualClock } from '../src/core/clock.ts';
import { createIdGenerator } from '../src/core/ids.ts';
import { StoreQueueAdmin } from '../src/queue/admin.ts';
import { SqliteQueueStore } from '../src/queue/sqlite-store.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const DOMAINS = 10;
const dir = process.env.VIEWER_BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'ferrymail-viewer-bench-'));
const base = Date.UTC(2026, 10, 1);
const clock = new ManualClock(base + N + 60_000);
const open = async () => {
  const store = new SqliteQueueStore({
    dir,
    clock,
    ids: createIdGenerator(clock),
    messageExpiration: 2 * 86_400_000,
  });
  await store.open();
  return store;
};
try {
  await (await open()).close();
  const db = new DatabaseSync(join(dir, 'queue.db'));
  db.exec('PRAGMA synchronous = OFF');
  const im = db.prepare(
    `INSERT INTO messages (id, sender, received_at, expires_at, size, body_type, smtputf8, origin, subject, body_file)
      VALUES (?, ?, ?, ?, 40, '8BITMIME', 0, '{}', ?, 0)`,
  );
  const ib = db.prepare('INSERT INTO message_bodies (id, data) VALUES (?, ?)');
  const ir = db.prepare(
    `INSERT INTO recipients (message_id, idx, address, hop_type, hop_target, status, attempts, next_attempt_at,
      last_response, updated_at, queue) VALUES (?, 0, ?, 'smtp', ?, 'pending', 3, ?, '451 4.4.1 Connection refused', ?, ?)`,
  );
  const started = performance.now();
  const body = Buffer.from('Subject: x\r\n\r\nbody\r\n');
  db.exec('BEGIN');
  for (let i = 0; i < N; i++) {
    // Ids sort by time, as the store's do.
    const id = `M${String(base + i).padStart(14, '0')}`;
    const d = i % DOMAINS;
    im.run(id, `sender${i % 1000}@remote.test`, base + i, base + i + 2 * 86_400_000, `report ${i}`);
    ib.run(id, body);
    ir.run(
      id,
      `user${i}@dest${d}.test`,
      `dest${d}.test\tOutbound`,
      base + 86_400_000 + (i % 3_600_000),
      base + i,
      `smtp:dest${d}.test`,
    );
    if (i % 100_000 === 99_999) {
      db.exec('COMMIT');
      db.exec('BEGIN');
    }
  }
  db.exec('COMMIT');
  db.exec('ANALYZE');
  db.close();
  console.log(`filled ${N} deferred messages in ${((performance.now() - started) / 1000).toFixed(0)} s`);

  const store = await open();
  const admin = new StoreQueueAdmin({ store, clock, summaryCacheMs: 0 });
  const time = async (label: string, f: () => Promise<unknown>, runs = 5) => {
    await f();
    const samples: number[] = [];
    let result: unknown;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      result = await f();
      samples.push(performance.now() - t);
    }
    samples.sort((a, b) => a - b);
    const shown = Array.isArray(result) ? `${result.length} rows` : JSON.stringify(result)?.slice(0, 60);
    console.log(
      `${label.padEnd(48)} median ${samples[Math.floor(runs / 2)]!.toFixed(1).padStart(7)} ms  (${shown})`,
    );
  };
  const mid = `M${String(base + Math.floor(N / 2)).padStart(14, '0')}`;
  await time('listQueues (counts every waiting recipient)', () => admin.listQueues());
  await time('listMessages first page (100)', () => admin.listMessages());
  await time('listMessages page after the middle', () => admin.listMessages({ after: mid }));
  await time('listMessages queue=smtp:dest3.test', () =>
    admin.listMessages({ queue: 'smtp:dest3.test', after: mid }),
  );
  await time('listMessages sender', () => admin.listMessages({ sender: 'SENDER7@remote.test' }));
  await time('listMessages recipient', () =>
    admin.listMessages({ recipient: `user${N - 1}@dest${(N - 1) % DOMAINS}.test` }),
  );
  await time('listMessages status=Retry', () => admin.listMessages({ status: 'Retry' }));
  await time('listMessages subject (common)', () => admin.listMessages({ subject: 'report' }));
  await time(
    'listMessages subject (no match: whole scan)',
    () => admin.listMessages({ subject: 'nomatch' }),
    3,
  );
  await time(
    'listMessages status=Suspended (none: whole scan)',
    () => admin.listMessages({ status: 'Suspended' }),
    3,
  );
  await time('listMessages status=Poison', () => admin.listMessages({ status: 'Poison' }));
  await time('getMessage', () => admin.getMessage(mid));
  await time('claimDue (nothing due)', () =>
    store.claimDue({ now: clock.now(), limit: 100, hopType: 'smtp' }),
  );
  await time('countRecipients', () => store.countRecipients(), 3);
  await store.close();
} finally {
  if (!process.env.VIEWER_BENCH_DIR) rmSync(dir, { recursive: true, force: true });
}
