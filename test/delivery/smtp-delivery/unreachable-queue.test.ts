import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { startNode } from '../../../src/node.ts';
import { removeDir, writeConfigFile } from '../../helpers/node-fixture.ts';
import { SmtpSink } from '../../helpers/smtp-sink.ts';
import { outboundConfig, submit } from './outbound-fixture.ts';

/**
 * A remote recipient no send connector serves waits in the Unreachable queue (kept, not
 * bounced, as in Exchange); once the administrator adds a connector for its domain and restarts
 * the node, it is routed and delivered.
 */
describe('the Unreachable queue', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('keeps a recipient without a connector, then delivers it once a connector serves its domain', async () => {
    const sink = await SmtpSink.start();
    cleanups.push(() => sink.close());
    const { dir, config } = await outboundConfig([
      {
        name: 'Partner',
        addressSpaces: ['partner.test'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${sink.port}`] },
      },
    ]);
    cleanups.push(() => removeDir(dir));
    const file = await writeConfigFile(dir, config);

    const first = await startNode(await loadConfig(file), { logger: silentLogger });
    const port = first.receive.addresses().find((a) => a.connector === 'Relay')!.port;
    const id = await submit(port, 'app@example.test', ['x@elsewhere.test']);
    await new Promise((r) => setTimeout(r, 500));
    const waiting = (await first.store.getMessage(id))!.recipients[0]!;
    assert.deepEqual(waiting.nextHop, { type: 'unreachable', domain: 'elsewhere.test' });
    assert.equal(waiting.status, 'pending');
    assert.equal(waiting.attempts, 0, 'nobody tried to deliver it');
    assert.equal(sink.transactions.length, 0);
    await first.stop();

    config.sendConnectors = [
      ...(config.sendConnectors as unknown[]),
      {
        name: 'Internet',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${sink.port}`] },
      },
    ];
    await writeConfigFile(dir, config);
    const second = await startNode(await loadConfig(file), { logger: silentLogger });
    cleanups.push(() => second.stop());
    await sink.waitFor(() => sink.transactions.length === 1);
    assert.deepEqual(sink.transactions[0]!.accepted, ['x@elsewhere.test']);
  });
});
