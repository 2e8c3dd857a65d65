/**
 * A node that dies the way a poison message makes a real one die: a test agent (the
 * beforeDelivery hook) kills the process whenever a message whose subject carries the marker is
 * about to be delivered. Run as the command line is: `crashing-node.ts start --config <file>`.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/core/logger.ts';
import { startNode } from '../../src/node.ts';
import { POISON_MARKER } from './fault-helpers.ts';

const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { config: { type: 'string' } },
});
if (process.argv[2] !== 'start' || !values.config) {
  process.stderr.write('usage: crashing-node.ts start --config <file>\n');
  process.exit(2);
}
const loaded = await loadConfig(values.config);
const node = await startNode(loaded, {
  logger: createLogger(loaded.config.node.logLevel),
  beforeDelivery: (job) => {
    // As sudden as a segfault in a content filter: no cleanup, no outcome recorded.
    if (job.message.subject?.includes(POISON_MARKER)) process.kill(process.pid, 'SIGKILL');
  },
});
process.once('SIGTERM', () => {
  node.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
