/**
 * Maildir delivery alone, without SMTP or the queue: the mailbox agent writing N copies of a body
 * into one mailbox, C jobs at a time. Shows what the delivery side costs by itself.
 *
 *   npx node bench/maildir.ts [--messages 5000] [--concurrency 20] [--size 4096]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/core/clock.ts';
import { silentLogger } from '../src/core/logger.ts';
import { MailboxDeliveryAgent } from '../src/delivery/mailbox-agent.ts';
import type { DeliveryJob, QueuedRecipient } from '../src/queue/types.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '20' },
    size: { type: 'string', default: '4096' },
  },
});
const MESSAGES = Number(values.messages);
const CONCURRENCY = Number(values.concurrency);
const SIZE = Number(values.size);

function job(): DeliveryJob {
  const recipient: QueuedRecipient = {
    index: 0,
    address: 'user@bench.test',
    nextHop: { type: 'mailbox', mailbox: 'user@bench.test' },
    status: 'active',
    attempts: 0,
    nextAttemptAt: 0,
    updatedAt: 0,
  };
  return {
    message: {
      id: 'BENCH',
      sender: 'sender@client.test',
      receivedAt: 0,
      expiresAt: 0,
      size: SIZE,
      dsn: {},
      bodyType: '8BITMIME',
      smtpUtf8: false,
      origin: { connector: 'bench', clientIp: '127.0.0.1', clientHelo: 'bench', tls: false },
      recipients: [recipient],
    },
    recipients: [recipient],
  };
}

const root = await mkdtemp(join(tmpdir(), 'ferrymail-maildir-bench-'));
const agent = new MailboxDeliveryAgent({
  mailboxRoot: root,
  nodeFqdn: 'bench.test',
  clock: systemClock,
  logger: silentLogger,
});
const body = Buffer.alloc(SIZE, 0x61);
let started = 0;
try {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started < MESSAGES) {
        started++;
        const result = (await agent.deliver(job(), () => Readable.from([body]))).get(0);
        if (result?.kind !== 'delivered') throw new Error(`delivery failed: ${result?.response}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `${MESSAGES} × ${SIZE} B, ${CONCURRENCY} at a time: ${seconds.toFixed(2)} s, ${(MESSAGES / seconds).toFixed(0)} deliveries/s`,
  );
} finally {
  await agent.close();
  await rm(root, { recursive: true, force: true });
}
