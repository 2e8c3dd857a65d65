import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import { waitForMessages } from '../helpers/node-fixture.ts';
import { commitBytes, newMessage } from '../queue/store-contract.ts';
import { type CliNode, startCliNode } from './cli-node.ts';
import { ferrymailAsync } from './run-cli-async.ts';

/**
 * Leaves a message in `dataDir/queue` as two crashed processes would: claimed for delivery (the
 * in-flight journal names it) and never finished, twice. The node that opens it next counts the
 * second crash and puts the message in Poison (queue.poisonThreshold 2).
 */
async function crashTwiceDelivering(dataDir: string): Promise<string> {
  const dir = join(dataDir, 'queue');
  const journal = join(dir, 'inflight.journal');
  const open = async () => {
    const store = new SqliteQueueStore({
      dir,
      clock: systemClock,
      ids: createIdGenerator(systemClock),
      messageExpiration: 86_400_000,
    });
    await store.open();
    return store;
  };
  let store = await open();
  const message = newMessage(
    [{ address: 'alice@example.test', nextHop: { type: 'mailbox', mailbox: 'alice@example.test' } }],
    {
      subject: 'Crashed the node twice',
    },
  );
  const { id } = await commitBytes(store, message, [
    Buffer.from('Subject: Crashed the node twice\r\n\r\nboom\r\n'),
  ]);
  for (let crash = 1; crash <= 2; crash++) {
    await store.claimDue({ now: Date.now() + 86_400_000, limit: 10 });
    const leftBehind = await readFile(journal);
    await store.close();
    await writeFile(journal, leftBehind); // as the dead process left it
    if (crash === 1) store = await open();
  }
  return id;
}

/** `ferrymail queue release`: a message in the Poison queue goes back to delivery. */
describe('ferrymail queue release, on a running node', () => {
  let n: CliNode;
  let id: string;
  before(async () => {
    n = await startCliNode({
      beforeStart: async (dataDir) => {
        id = await crashTwiceDelivering(dataDir);
      },
    });
  });
  after(() => n?.stop());

  it('lists the message in the poison queue, releases it, and it is delivered', async () => {
    const shown = await ferrymailAsync(['queue', 'show', 'poison', '--json', '--config', n.configFile]);
    assert.equal(shown.code, 0, shown.stderr);
    const messages = (
      JSON.parse(shown.stdout) as { messages: Array<{ id: string; status: string; crashCount: number }> }
    ).messages;
    assert.deepEqual(
      messages.map((m) => [m.id, m.status, m.crashCount]),
      [[id, 'Poison', 2]],
    );
    const detail = await ferrymailAsync(['queue', 'show', id, '--config', n.configFile]);
    assert.match(detail.stdout, /^Crashes: +2$/m);

    const r = await ferrymailAsync(['queue', 'release', id, '--config', n.configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Released message ${id} from the Poison queue\n`);
    const [delivered] = await waitForMessages(n.node.mailbox('alice@example.test'), 1, 30_000);
    assert.match(delivered!.toString('latin1'), /Crashed the node twice/);
  });
});
