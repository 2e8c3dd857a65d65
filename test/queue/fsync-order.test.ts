import assert from 'node:assert/strict';
import { readFile, open as realOpen, rename as realRename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.ts';
import { fsyncDirectory } from '../../src/core/fsync.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { type QueueFileOps, SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { newMessage } from './store-contract.ts';

/** Larger than the 128 KB inline limit: stored as a file of its own. */
const LARGE_BODY = Buffer.alloc(300 * 1024, 'b');

/**
 * A large body is durable only after its file is fsynced, renamed into bodies/ and that folder
 * fsynced: commit() (and so the 250) must come after all three, in that order. The real file
 * operations run; the store's injectable QueueFileOps record them, and hold the folder fsync back
 * until the test lets it go.
 */
describe('the queue commits a large body after its file and folder fsyncs', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-fsync-order-');
  });
  after(() => removeDir(dir));

  it('resolves commit only after open, write, file fsync, rename and folder fsync, in that order', async () => {
    const events: string[] = [];
    let releaseFolderSync!: () => void;
    const folderSyncMayRun = new Promise<void>((resolve) => {
      releaseFolderSync = resolve;
    });
    let folderSyncAsked!: () => void;
    const folderSyncStarted = new Promise<void>((resolve) => {
      folderSyncAsked = resolve;
    });
    const fileOps: QueueFileOps = {
      async open(path, flags, mode) {
        const handle = await realOpen(path, flags, mode);
        events.push(`open ${path}`);
        const { write, sync, close } = handle;
        Object.assign(handle, {
          write: async (...args: Parameters<typeof write>) => {
            const result = await write.apply(handle, args);
            events.push(`write ${path}`);
            return result;
          },
          sync: async () => {
            await sync.call(handle);
            events.push(`fsync ${path}`);
          },
          close: async () => {
            await close.call(handle);
            events.push(`close ${path}`);
          },
        });
        return handle;
      },
      async rename(from, to) {
        await realRename(from, to);
        events.push(`rename ${from} ${to}`);
      },
      async fsyncDirectory(path) {
        folderSyncAsked();
        await folderSyncMayRun;
        await fsyncDirectory(path);
        events.push(`fsync-folder ${path}`);
      },
    };
    const clock = new ManualClock();
    const store = new SqliteQueueStore({
      dir: join(dir, 'queue'),
      clock,
      ids: createIdGenerator(clock),
      messageExpiration: 86_400_000,
      fileOps,
    });
    await store.open();
    const mailbox = {
      address: 'a@example.test',
      nextHop: { type: 'mailbox' as const, mailbox: 'a@example.test' },
    };
    try {
      // A small (inline) commit first: the writer thread is up, so the wait below is the fsync's alone.
      const warmUp = await store.openBody();
      await warmUp.write(Buffer.from('Subject: small\r\n\r\nx\r\n'));
      await store.commit(warmUp, newMessage([mailbox]));
      assert.equal(events.length, 0, 'an inline body touches no file');

      const body = await store.openBody();
      for (let offset = 0; offset < LARGE_BODY.length; offset += 64 * 1024)
        await body.write(LARGE_BODY.subarray(offset, offset + 64 * 1024));
      let resolved = false;
      const committed = store.commit(body, newMessage([mailbox])).then((queued) => {
        resolved = true;
        events.push('commit resolved');
        return queued;
      });

      await folderSyncStarted;
      // Time enough for the rows to be written and the commit to resolve, were it not waiting.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(resolved, false, 'commit resolved while the bodies folder fsync had not run');
      releaseFolderSync();
      const queued = await committed;

      const incoming = join(dir, 'queue', 'incoming', queued.id);
      const stored = join(dir, 'queue', 'bodies', queued.id);
      const writes = events.filter((e) => e === `write ${incoming}`).length;
      assert.ok(writes >= 1, 'the body was written to its file');
      assert.deepEqual(events, [
        `open ${incoming}`,
        ...Array.from({ length: writes }, () => `write ${incoming}`),
        `fsync ${incoming}`,
        `close ${incoming}`,
        `rename ${incoming} ${stored}`,
        `fsync-folder ${dirname(stored)}`,
        'commit resolved',
      ]);
      assert.ok((await readFile(stored)).equals(LARGE_BODY), 'the stored file holds the whole body');
    } finally {
      releaseFolderSync();
      await store.close();
    }
  });
});
