import { hostname } from 'node:os';
import { join } from 'node:path';
import type { LoadedConfig } from './config/load.ts';
import { type Clock, systemClock } from './core/clock.ts';
import { createIdGenerator, type IdGenerator } from './core/ids.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { MailboxDeliveryAgent } from './delivery/mailbox-agent.ts';
import { ConfigDirectory } from './directory/config-directory.ts';
import { fixedIntervalPolicy } from './queue/retry-policy.ts';
import { DeliveryScheduler } from './queue/scheduler.ts';
import { SqliteQueueStore } from './queue/sqlite-store.ts';
import type { QueueStore } from './queue/types.ts';
import { type ReceiveServer, startReceiveServer } from './receive/server.ts';
import { localOnlyRouter } from './routing/router.ts';
import { SubmissionSink } from './routing/submission.ts';
import { loadOrCreateCertificate } from './tls/certificates.ts';

export interface NodeOptions {
  logger?: Logger;
  clock?: Clock;
  ids?: IdGenerator;
}

/** A running node: its listeners, its queue, and a way to stop it cleanly. */
export interface RunningNode {
  readonly receive: ReceiveServer;
  readonly store: QueueStore;
  readonly scheduler: DeliveryScheduler;
  readonly dataDir: string;
  stop(): Promise<void>;
}

/**
 * Assembles the pipeline of ARCHITECTURE.md from a loaded config:
 * receive connectors → submission (categorize, durable commit) → scheduler → mailbox delivery.
 */
export async function startNode(loaded: LoadedConfig, options: NodeOptions = {}): Promise<RunningNode> {
  const { config } = loaded;
  const logger = options.logger ?? createLogger(config.node.logLevel);
  const clock = options.clock ?? systemClock;
  const ids = options.ids ?? createIdGenerator(clock);
  const fqdn = config.node.fqdn ?? hostname();
  const dataDir = config.node.dataDir;

  const certificate = await loadOrCreateCertificate({
    dataDir,
    fqdn,
    ...(config.node.certificate ? { configured: config.node.certificate } : {}),
    logger,
  });

  const store = new SqliteQueueStore({
    dir: join(dataDir, 'queue'),
    clock,
    ids,
    messageExpiration: config.queue.messageExpiration,
    groupCommitWindow: config.queue.groupCommitWindow,
    logger,
  });
  await store.open();

  const mailboxAgent = new MailboxDeliveryAgent({
    mailboxRoot: join(dataDir, 'mailboxes'),
    nodeFqdn: fqdn,
    clock,
    logger,
  });
  const scheduler = new DeliveryScheduler({
    store,
    agents: [mailboxAgent],
    clock,
    logger,
    retryPolicy: () => fixedIntervalPolicy(config.queue.mailboxRetryInterval),
    concurrency: config.queue.maxConcurrentMailboxDeliveries,
  });

  const sink = new SubmissionSink({ store, router: localOnlyRouter, onQueued: () => scheduler.wake() });
  let receive: ReceiveServer;
  try {
    receive = await startReceiveServer({
      connectors: config.receiveConnectors,
      context: { directory: new ConfigDirectory(config), sink },
      nodeFqdn: fqdn,
      defaultCertificate: { cert: certificate.cert, key: certificate.key },
      clock,
      ids,
      logger,
    });
  } catch (error) {
    await mailboxAgent.close();
    await store.close();
    throw error;
  }
  scheduler.start();
  for (const a of receive.addresses()) {
    logger.info({ connector: a.connector, host: a.host, port: a.port }, 'receive connector listening');
  }
  logger.info({ fqdn, dataDir }, 'ferrymail node started');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await receive.close();
      await scheduler.stop();
      await mailboxAgent.close();
      await store.close();
      logger.info('ferrymail node stopped');
    })();
    return stopping;
  };
  return { receive, store, scheduler, dataDir, stop };
}
