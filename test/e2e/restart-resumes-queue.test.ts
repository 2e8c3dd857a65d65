import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { systemClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  waitForMessages,
} from '../helpers/node-fixture.ts';

/** A message left in the queue by an earlier run is delivered when the node starts again. */
describe('a restart resumes the queue', () => {
  it('delivers recipients that were still pending when the previous process ended', async () => {
    const dir = await makeTempDir();
    try {
      const config = await demoLikeConfig(dir);
      // An earlier run accepted the message but never delivered it.
      const store = new SqliteQueueStore({
        dir: join(dir, 'data', 'queue'),
        clock: systemClock,
        ids: createIdGenerator(systemClock),
        messageExpiration: 86_400_000,
      });
      await store.open();
      const body = await store.openBody();
      await body.write(Buffer.from('Subject: left behind\r\n\r\nstill here\r\n'));
      await store.commit(body, {
        sender: 'someone@remote.test',
        recipients: [
          { address: 'bob@example.test', nextHop: { type: 'mailbox', mailbox: 'bob@example.test' } },
        ],
        dsn: {},
        bodyType: '7BIT',
        smtpUtf8: false,
        origin: { connector: 'Default', clientIp: '127.0.0.1', clientHelo: 'x', tls: false },
      });
      await store.close();

      const t = await startTestNode({ dir, config });
      try {
        const [msg] = await waitForMessages(t.mailbox('bob@example.test'), 1);
        assert.match(msg!.toString('latin1'), /Subject: left behind/);
      } finally {
        await t.stop();
      }
    } finally {
      await removeDir(dir);
    }
  });
});
