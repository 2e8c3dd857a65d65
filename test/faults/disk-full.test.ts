import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { QueueUnavailableError } from '../../src/queue/types.ts';
import {
  demoLikeConfig,
  freePort,
  makeTempDir,
  newMessages,
  removeDir,
  waitForMessages,
  writeConfigFile,
} from '../helpers/node-fixture.ts';
import { connectWhenReady, openQueue, sendOne } from './fault-helpers.ts';
import { NodeProcess } from './node-process.ts';

/** Mounts a small tmpfs at `dir`; false where the machine does not allow it (not root, a container). */
function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Writes until the file system says ENOSPC; returns the bytes written. */
async function fillDisk(file: string): Promise<number> {
  const handle = await open(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  try {
    for (;;) {
      try {
        const { bytesWritten } = await handle.write(chunk);
        written += bytesWritten;
        if (bytesWritten < chunk.length) break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw error;
      }
    }
    // The last partial block: fill it byte by byte, so not even a page is left.
    for (let size = 4096; size >= 1; size = Math.floor(size / 2)) {
      for (;;) {
        try {
          const { bytesWritten } = await handle.write(chunk.subarray(0, size));
          written += bytesWritten;
          if (bytesWritten < size) break;
        } catch {
          break;
        }
      }
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  return written;
}

const body = (tag: string) => `${tag}\r\n${'x'.repeat(76)}\r\n`.repeat(200);
const tagOf = (m: Buffer) => /^Subject: (\S+)/m.exec(m.toString('latin1'))?.[1] ?? '';

/**
 * A full disk: new mail must get `452 4.3.1` (the sender keeps it and retries), the node must
 * stay up, nothing it already acknowledged may be lost, and it must take mail again by itself
 * once there is room. Real where the machine lets us mount a small tmpfs under the data folder;
 * elsewhere the store is given file operations that fail with ENOSPC.
 */
describe('disk full', () => {
  it('refuses new mail with 452 4.3.1, keeps what it accepted, and resumes when space returns', {
    timeout: 600_000,
  }, async (t) => {
    const dir = await makeTempDir('ferrymail-diskfull-');
    const data = join(dir, 'data');
    await mkdir(data);
    if (!mountTmpfs(data, '8m')) {
      await removeDir(dir);
      t.skip('tmpfs cannot be mounted here (needs root): the full-database store test below runs instead');
      return;
    }
    t.diagnostic('ran on a real 8 MB tmpfs under the data folder');
    const port = await freePort();
    const config = await demoLikeConfig(dir, { default: port, client: 0 });
    const configFile = await writeConfigFile(dir, { ...config, queue: { mailboxRetryInterval: '300ms' } });
    const bob = join(data, 'mailboxes', 'example.test', 'bob', 'Maildir');
    const filler = join(data, 'filler');
    let node: NodeProcess | undefined;
    try {
      node = await NodeProcess.start(configFile, port);
      const send = (tag: string) =>
        sendOne(port, {
          from: 'someone@remote.test',
          to: ['bob@example.test'],
          headers: [`Subject: ${tag}`],
          body: body(tag),
        });
      const acknowledged: string[] = [];
      for (let i = 0; i < 5; i++) {
        const tag = `before-${i}`;
        assert.equal((await send(tag)).end?.code, 250, `${tag} refused with room on the disk`);
        acknowledged.push(tag);
      }
      // No waiting for their delivery: those still queued when the disk fills must survive it.
      const filled = await fillDisk(filler);
      const deliveredBeforeFull = (await newMessages(bob)).length;
      t.diagnostic(
        `filler took ${filled} bytes; ${deliveredBeforeFull} of 5 delivered before the disk was full`,
      );
      // The database may still have free pages for a message or two; after that, 452 4.3.1.
      let refusal: { code: number; text: string } | undefined;
      const answers: string[] = [];
      for (let i = 0; i < 50 && !refusal; i++) {
        const tag = `full-${i}`;
        const r = await send(tag);
        const last = r.end ?? r.data ?? r.mail;
        answers.push(`${last.code} ${last.text}`);
        if (last.code === 250) acknowledged.push(tag);
        else refusal = last;
      }
      assert.ok(refusal, `the node kept saying 250 on a full disk: ${answers.slice(-3).join(' | ')}`);
      assert.equal(refusal.code, 452, `refused with ${refusal.code} ${refusal.text}, not 452`);
      assert.equal(refusal.text, '4.3.1 Insufficient system resources');

      // Still up and talking, while the disk stays full.
      assert.ok(node.running, 'the node died when the disk filled');
      const c = await connectWhenReady(port, 5_000);
      assert.equal((await c.command('EHLO still.there')).code, 250);
      c.close();

      await rm(filler);
      const free = Date.now();
      const after = await sendOne(port, {
        from: 'someone@remote.test',
        to: ['bob@example.test'],
        headers: ['Subject: after-space'],
        body: body('after-space'),
      });
      assert.equal(after.end?.code, 250, `not accepted again once space returned: ${after.end?.text}`);
      acknowledged.push('after-space');
      const messages = await waitForMessages(bob, acknowledged.length, 30_000);
      const tags = messages.map(tagOf);
      for (const tag of acknowledged) assert.ok(tags.includes(tag), `${tag} was acknowledged but lost`);
      t.diagnostic(
        `${acknowledged.length} acknowledged, ${(await newMessages(bob)).length} in the mailbox, ` +
          `all delivered ${Date.now() - free} ms after the space returned`,
      );
    } finally {
      await node?.stop();
      try {
        execFileSync('umount', [data], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', data], { stdio: 'ignore' });
      }
      await removeDir(dir);
    }
  });

  it('(runs everywhere) a store whose database is full refuses commits, keeps its messages, and takes mail once delivery frees room', async () => {
    const dir = await makeTempDir('ferrymail-dbfull-');
    const store = await openQueue(join(dir, 'queue'), {
      inlineBodyLimit: 64 * 1024,
      // SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk.
      maxDatabaseSize: 512 * 1024,
    });
    try {
      const commit = async (subject: string) => {
        const w = await store.openBody();
        await w.write(Buffer.from(`Subject: ${subject}\r\n\r\n${'y'.repeat(50_000)}\r\n`));
        return store.commit(w, {
          sender: 'a@remote.test',
          recipients: [
            { address: 'bob@example.test', nextHop: { type: 'mailbox', mailbox: 'bob@example.test' } },
          ],
          dsn: {},
          bodyType: '7BIT',
          smtpUtf8: false,
          origin: { connector: 'Default', clientIp: '127.0.0.1', clientHelo: 'x', tls: false },
          subject,
        });
      };
      const kept: string[] = [];
      let refusal: unknown;
      for (let i = 0; i < 40 && refusal === undefined; i++) {
        try {
          kept.push((await commit(`m${i}`)).id);
        } catch (error) {
          refusal = error;
        }
      }
      assert.ok(refusal instanceof QueueUnavailableError, `a full database gave ${String(refusal)}`);
      assert.ok(kept.length > 0, 'nothing fitted in the database at all');
      const stored = (await store.listMessages({ limit: 100 })).map((m) => m.id);
      assert.deepEqual(stored, kept, 'the refused commit left something behind or lost an accepted message');

      // Deliveries free the room; then mail is taken again, without reopening the store.
      const jobs = await store.claimDue({ now: Date.now() + 1000, limit: 100 });
      await store.recordOutcomes(
        jobs.flatMap((j) =>
          j.recipients.map((r) => ({
            ref: { messageId: j.message.id, index: r.index },
            outcome: { kind: 'delivered' as const, response: '250 2.0.0 Ok' },
          })),
        ),
      );
      assert.ok((await commit('after-room')).id, 'no commit once deliveries freed the room');
    } finally {
      await store.close();
      await removeDir(dir);
    }
  });
});
