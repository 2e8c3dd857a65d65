/**
 * A node that crashes the process (SIGKILL, no cleanup at all) right before it delivers a
 * message whose subject contains CRASH-ME; poison-crash.test.ts runs it as a child process.
 * Prints one JSON line once started: its Default port and the messages in the Poison queue.
 * Stops cleanly on a `stop` line on stdin.
 */
import { createInterface } from 'node:readline';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { startNode } from '../../src/node.ts';

const node = await startNode(await loadConfig(process.argv[2]!), {
  logger: silentLogger,
  beforeDelivery: (job) => {
    if (job.message.subject?.includes('CRASH-ME')) process.kill(process.pid, 'SIGKILL');
  },
});
const port = node.receive.addresses().find((a) => a.connector === 'Default')!.port;
const poison = (await node.queueAdmin.listMessages({ queue: 'poison' })).map((m) => m.id);
process.stdout.write(`${JSON.stringify({ port, poison })}\n`);
createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line.trim() !== 'stop') return;
  await node.stop();
  process.exit(0);
});
