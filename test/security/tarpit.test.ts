import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newMessages } from '../helpers/node-fixture.ts';
import { ready, startSecuredNode } from './security-fixture.ts';

/**
 * Directory harvesting is slowed down: once a session has had afterRejectedRecipients RCPTs
 * refused, every further RCPT reply waits the connector's tarpitInterval.
 */
const INTERVAL_MS = 400;

describe('tarpit after rejected recipients', () => {
  it('answers at once until the limit of rejected RCPTs, then delays every further RCPT reply', async () => {
    const node = await startSecuredNode({ agents: { tarpit: { afterRejectedRecipients: 2 } } }, (config) => {
      (config.receiveConnectors[0] as Record<string, unknown>).limits = {
        tarpitInterval: `${INTERVAL_MS}ms`,
      };
    });
    try {
      const client = await ready(node.port('Default'));
      assert.equal((await client.command('MAIL FROM:<harvester@elsewhere.test>')).code, 250);
      const timed = async (address: string) => {
        const started = Date.now();
        const r = await client.command(`RCPT TO:<${address}>`);
        return { code: r.code, ms: Date.now() - started };
      };
      const firstUnknown = await timed('nobody1@example.test');
      const secondUnknown = await timed('nobody2@example.test');
      assert.equal(firstUnknown.code, 550);
      assert.equal(secondUnknown.code, 550);
      assert.ok(
        firstUnknown.ms < INTERVAL_MS / 2 && secondUnknown.ms < INTERVAL_MS / 2,
        'tarpitted too early',
      );
      const third = await timed('nobody3@example.test');
      assert.equal(third.code, 550);
      assert.ok(third.ms >= INTERVAL_MS - 20, `the RCPT after two rejections took only ${third.ms} ms`);
      // Every further reply, even one that accepts, is held back.
      const valid = await timed('bob@example.test');
      assert.equal(valid.code, 250);
      assert.ok(valid.ms >= INTERVAL_MS - 20, `a later RCPT took only ${valid.ms} ms`);
      assert.equal((await client.command('RSET')).code, 250);
      client.close();
      assert.deepEqual(await newMessages(node.mailbox('bob@example.test')), []);
    } finally {
      await node.cleanup();
    }
  });

  it('does not tarpit when no limit is configured', async () => {
    const node = await startSecuredNode({}, (config) => {
      (config.receiveConnectors[0] as Record<string, unknown>).limits = {
        tarpitInterval: `${INTERVAL_MS}ms`,
      };
    });
    try {
      const client = await ready(node.port('Default'));
      assert.equal((await client.command('MAIL FROM:<harvester@elsewhere.test>')).code, 250);
      const started = Date.now();
      for (let i = 0; i < 5; i++)
        assert.equal((await client.command(`RCPT TO:<n${i}@example.test>`)).code, 550);
      assert.ok(Date.now() - started < INTERVAL_MS, 'RCPT replies were delayed without a tarpit limit');
      client.close();
    } finally {
      await node.cleanup();
    }
  });
});
