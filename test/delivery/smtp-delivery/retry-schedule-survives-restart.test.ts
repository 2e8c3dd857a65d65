import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { startNode } from '../../../src/node.ts';
import { freePort, removeDir, writeConfigFile } from '../../helpers/node-fixture.ts';
import { attempted, outboundConfig, submit, waitForQueued } from './outbound-fixture.ts';

/**
 * A deferred remote recipient keeps its place in the retry schedule across a restart: the
 * attempt count, the next attempt time and the last reply are what they were, and the node does
 * not try it early just because it started again.
 */
describe('the retry schedule survives a restart', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('keeps attempts, next attempt time and last response, and does not retry early', async () => {
    const dead = await freePort();
    const { dir, config } = await outboundConfig([
      {
        name: 'SmartHost',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${dead}`] },
      },
    ]);
    cleanups.push(() => removeDir(dir));
    const file = await writeConfigFile(dir, config);

    const first = await startNode(await loadConfig(file), { logger: silentLogger });
    const port = first.receive.addresses().find((a) => a.connector === 'Relay')!.port;
    const id = await submit(port, 'app@example.test', ['x@remote.test']);
    const before = (await waitForQueued((m) => first.store.getMessage(m), id, attempted)).recipients[0]!;
    assert.equal(before.attempts, 1);
    await first.stop();

    const second = await startNode(await loadConfig(file), { logger: silentLogger });
    cleanups.push(() => second.stop());
    await new Promise((r) => setTimeout(r, 1500));
    const afterRestart = (await second.store.getMessage(id))!.recipients[0]!;
    assert.equal(afterRestart.status, 'pending');
    assert.equal(afterRestart.attempts, 1, 'not retried before its time');
    assert.equal(afterRestart.nextAttemptAt, before.nextAttemptAt);
    assert.equal(afterRestart.lastResponse, before.lastResponse);
  });
});
