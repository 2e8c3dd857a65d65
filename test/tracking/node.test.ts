import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { track } from '../../src/observe/events.ts';
import { demoLikeConfig, makeTempDir, removeDir, startTestNode } from '../helpers/node-fixture.ts';
import { trackingEvent } from './helpers.ts';

describe("a node's message tracking log", () => {
  it('records the track events of node.events and finds them through node.tracking', async () => {
    const test = await startTestNode();
    try {
      track(
        test.node.events,
        trackingEvent({
          time: Date.now(),
          internalId: 'node-level',
          eventId: 'ADMIN',
          source: 'ADMIN',
          detail: 'test',
        }),
      );
      await test.node.tracking.flush();
      const page = await test.node.tracking.search({ internalId: 'node-level' });
      assert.equal(page.events.length, 1);
      assert.equal(page.events[0]!.detail, 'test');
      await access(join(test.node.dataDir, 'tracking', 'tracking.db'));
    } finally {
      await test.stop();
      await removeDir(test.dir);
    }
  });

  it('keeps what it recorded across a restart of the node', async () => {
    const dir = await makeTempDir();
    const config = await demoLikeConfig(dir);
    const first = await startTestNode({ dir, config });
    track(first.node.events, trackingEvent({ time: Date.now(), internalId: 'before-restart' }));
    // No flush: stopping the node writes what is buffered.
    await first.stop();
    const second = await startTestNode({ dir, config });
    try {
      const page = await second.node.tracking.search({ internalId: 'before-restart' });
      assert.equal(page.events.length, 1);
    } finally {
      await second.stop();
      await removeDir(dir);
    }
  });

  it('with tracking.enabled false, nothing is kept and no file is made', async () => {
    const dir = await makeTempDir();
    const test = await startTestNode({
      dir,
      config: { ...(await demoLikeConfig(dir)), tracking: { enabled: false } },
    });
    try {
      track(test.node.events, trackingEvent({ time: Date.now() }));
      await test.node.tracking.flush();
      assert.deepEqual((await test.node.tracking.search({})).events, []);
      await assert.rejects(access(join(test.node.dataDir, 'tracking', 'tracking.db')), { code: 'ENOENT' });
    } finally {
      await test.stop();
      await removeDir(dir);
    }
  });
});
