/**
 * Queue commit micro-benchmark: how many messages per second the SQLite queue store makes
 * durable (fsync on: WAL with synchronous=FULL, body files and their folder fsynced).
 *
 *   node bench/queue-commit.ts [--messages 5000] [--writers 1,20,200] [--size 4096] [--dir <folder>]
 *
 * Each writer opens a body, writes it in 16 KB chunks and awaits commit(), in a loop, like an
 * SMTP session does. `--size` above the store's inline limit (128 KB) measures the file path.
 * `--dir` must be on the disk under test (a tmpfs would skip the fsyncs that matter).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/core/clock.ts';
import { createIdGenerator } from '../src/core/ids.ts';
import { SqliteQueueStore } from '../src/queue/sqlite-store.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    writers: { type: 'string', default: '1,20,200' },
    size: { type: 'string', default: '4096' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const MESSAGES = Number(values.messages);
const SIZE = Number(values.size);

const body = Buffer.alloc(SIZE, 0x61);
const chunks: Buffer[] = [];
for (let i = 0; i < SIZE; i += 16 * 1024) chunks.push(body.subarray(i, i + 16 * 1024));

async function run(writers: number): Promise<void> {
  const dir = await mkdtemp(join(values.dir, 'ferrymail-bench-queue-'));
  const store = new SqliteQueueStore({
    dir,
    clock: systemClock,
    ids: createIdGenerator(systemClock),
    messageExpiration: 86_400_000,
  });
  await store.open();
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next++ < MESSAGES) {
        const t0 = performance.now();
        const writer = await store.openBody();
        for (const chunk of chunks) await writer.write(chunk);
        await store.commit(writer, {
          sender: 'bench@remote.test',
          recipients: [
            { address: 'bob@example.test', nextHop: { type: 'mailbox', mailbox: 'bob@example.test' } },
          ],
          dsn: {},
          bodyType: '8BITMIME',
          smtpUtf8: false,
          origin: { connector: 'Default', clientIp: '192.0.2.1', clientHelo: 'bench.test', tls: false },
        });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const { commits, commitBatches } = store.stats();
  await store.close();
  await rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(2);
  console.log(
    `${String(writers).padStart(4)} writers: ${Math.round(commits / seconds).toLocaleString('en')} commits/s, ` +
      `${(commits / commitBatches).toFixed(1)} commits per batch, latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`,
  );
}

console.log(`${MESSAGES} messages of ${SIZE} bytes each, in ${values.dir}`);
for (const writers of values.writers.split(',').map(Number)) await run(writers);
