import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  demoLikeConfig,
  freePort,
  makeTempDir,
  removeDir,
  waitForMessages,
  writeConfigFile,
} from '../helpers/node-fixture.ts';
import { openQueue, POISON_MARKER, sendOne } from './fault-helpers.ts';
import { NodeProcess } from './node-process.ts';

const SCRIPT = 'test/faults/crashing-node.ts';

/**
 * Exchange's poison message handling: a message that crashes the node while it is being
 * delivered is counted at each restart, and after the second crash (PoisonThreshold 2) it waits
 * in the Poison queue instead of taking the node down a third time; everything else flows.
 * The crash is real: the node in the child process SIGKILLs itself from its beforeDelivery hook
 * when the message's subject carries the marker (test/faults/crashing-node.ts).
 */
describe('a poison message', () => {
  // Three starts of a child process: on a busy machine each can take many seconds.
  it('crashes the node twice, then sits in the Poison queue while the node keeps serving', {
    timeout: 600_000,
  }, async () => {
    const dir = await makeTempDir('ferrymail-poison-');
    const port = await freePort();
    const config = await demoLikeConfig(dir, { default: port, client: 0 });
    const configFile = await writeConfigFile(dir, { ...config, queue: { mailboxRetryInterval: '300ms' } });
    const bob = join(dir, 'data', 'mailboxes', 'example.test', 'bob', 'Maildir');
    const send = async (subject: string) => {
      const r = await sendOne(port, {
        from: 'someone@remote.test',
        to: ['bob@example.test'],
        headers: [`Subject: ${subject}`],
      });
      assert.equal(r.end?.code, 250, `${subject} refused: ${r.end?.text}`);
      return /queued as (\S+)/.exec(r.end.text)![1]!;
    };
    let node = await NodeProcess.start(configFile, port, { script: SCRIPT });
    try {
      await send('normal-1');
      await waitForMessages(bob, 1);

      const poisonId = await send(`${POISON_MARKER} the message that kills`);
      const crashes: Array<string | null> = [];
      let running = true;
      while (crashes.length < 2) {
        if (running) {
          const exit = await Promise.race([node.exited, sleep(20_000).then(() => undefined)]);
          assert.ok(exit, `the node did not crash (${crashes.length + 1}) on the marked message`);
          crashes.push(exit.signal);
          if (crashes.length === 2) break;
        }
        // The restarted node may take the marked message again before we see it listen: that
        // is the second crash, seen as an exit during start.
        try {
          node = await NodeProcess.start(configFile, port, { script: SCRIPT });
          running = true;
        } catch (error) {
          if (!/exited before listening \(SIGKILL\)/.test(String(error))) throw error;
          crashes.push('SIGKILL');
          running = false;
        }
      }
      assert.deepEqual(crashes, ['SIGKILL', 'SIGKILL']);
      node = await NodeProcess.start(configFile, port, { script: SCRIPT });

      // After the second crash the message is in the Poison queue: the node stays up and serves.
      await send('normal-2');
      const delivered = await waitForMessages(bob, 2, 15_000);
      const subjects = delivered.map((m) => /^Subject: (.*)$/m.exec(m.toString('latin1'))?.[1]);
      assert.deepEqual(
        subjects.sort(),
        ['normal-1', 'normal-2'],
        'the poison message was delivered, or a normal one lost',
      );
      await sleep(1_500);
      assert.ok(node.running, 'the node crashed a third time: the message was not held in the Poison queue');

      await node.stop();
      const store = await openQueue(join(dir, 'data', 'queue'));
      try {
        const poisoned = await store.getMessage(poisonId);
        assert.ok(poisoned, 'the poison message is gone from the queue (dropped, not held)');
        assert.deepEqual(
          poisoned.recipients.map((r) => r.status),
          ['poison'],
          'the marked message is not in the Poison queue',
        );
        assert.equal(store.poisonTotals().messages, 1);
      } finally {
        await store.close();
      }
    } finally {
      await node.stop();
      await removeDir(dir);
    }
  });
});
