import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import { crashBody } from '../fixtures/queue-crash-bodies.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const committer = fileURLToPath(new URL('../fixtures/queue-committer.ts', import.meta.url));

/** Runs the committer until it has reported `count` commits, then SIGKILLs it mid-stream. */
async function commitAndKill(dir: string, firstSeq: number, count: number): Promise<Map<number, string>> {
  const child = spawn(process.execPath, [committer, dir, String(firstSeq)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const acknowledged = new Map<number, string>();
  let pending = '';
  const timeout = setTimeout(() => child.kill('SIGKILL'), 15_000);
  child.stdout.on('data', (data: Buffer) => {
    pending += data.toString('latin1');
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const [seq, id] = line.split(' ');
      acknowledged.set(Number(seq), id!);
    }
    if (acknowledged.size >= count) child.kill('SIGKILL');
  });
  const [, signal] = await exited;
  clearTimeout(timeout);
  assert.equal(signal, 'SIGKILL');
  assert.ok(acknowledged.size >= count, `only ${acknowledged.size} commits before the deadline`);
  return acknowledged;
}

async function reopen(dir: string): Promise<SqliteQueueStore> {
  const clock = new ManualClock();
  const store = new SqliteQueueStore({
    dir,
    clock,
    ids: createIdGenerator(clock),
    messageExpiration: 86_400_000,
  });
  await store.open();
  return store;
}

describe('a resolved commit survives SIGKILL', () => {
  it('finds every acknowledged message, body intact and recipient pending, after the process was killed mid-stream', async () => {
    const dir = await makeTempDir('ferrymail-crash-');
    try {
      const acknowledged = new Map<number, string>();
      // Twice: the second run starts on the queue the first one left behind by its crash.
      for (const [round, firstSeq] of [
        [0, 0],
        [1, 100_000],
      ] as const) {
        for (const [seq, id] of await commitAndKill(dir, firstSeq, 150)) acknowledged.set(seq, id);
        const store = await reopen(dir);
        try {
          for (const [seq, id] of acknowledged) {
            const message = await store.getMessage(id);
            assert.ok(message, `round ${round}: acknowledged message ${seq} (${id}) is gone`);
            assert.deepEqual(
              message.recipients.map((r) => [r.address, r.status]),
              [[`r${seq}@example.test`, 'pending']],
            );
            const expected = Buffer.concat(crashBody(seq));
            assert.equal(message.size, expected.length);
            assert.ok((await buffer(store.readBody(id))).equals(expected), `body of message ${seq} differs`);
          }
          // Commits in flight at the kill may or may not have landed, but never half of one.
          for (const message of await store.listMessages({ limit: 100_000 })) {
            assert.equal((await buffer(store.readBody(message.id))).length, message.size);
          }
          assert.deepEqual(await readdir(join(dir, 'incoming')), []);
        } finally {
          await store.close();
        }
      }
    } finally {
      await removeDir(dir);
    }
  });
});
