import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type AdminServer, startNodeAdmin } from './admin/node-admin.ts';
import { createAgentPipeline } from './agents/index.ts';
import type { Agent } from './agents/types.ts';
import { type LoadedConfig, locatedError } from './config/load.ts';
import { type Clock, systemClock } from './core/clock.ts';
import { createIdGenerator, type IdGenerator } from './core/ids.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { DkimSigner } from './delivery/dkim/signer.ts';
import { MailboxDeliveryAgent } from './delivery/mailbox-agent.ts';
import { loadConnectorSecrets } from './delivery/smtp/connector-secrets.ts';
import { SmtpDeliveryAgent } from './delivery/smtp/smtp-agent.ts';
import { ConfigDirectory } from './directory/config-directory.ts';
import { DsnNotifier } from './dsn/notifier.ts';
import { protocolLogsFor } from './logging/protocol-log.ts';
import { createEventBus, type EventBus } from './observe/events.ts';
import { createMetrics, type NodeMetrics } from './observe/metrics.ts';
import { trackJobOutcomes } from './observe/pipeline-events.ts';
import { StoreQueueAdmin } from './queue/admin.ts';
import type { QueueAdmin } from './queue/admin-types.ts';
import { exchangeSchedulePolicy, fixedIntervalPolicy } from './queue/retry-policy.ts';
import { DeliveryScheduler } from './queue/scheduler.ts';
import { SqliteQueueStore } from './queue/sqlite-store.ts';
import type { DeliveryJob, QueueStore } from './queue/types.ts';
import { authFileProblems } from './receive/auth/files.ts';
import { createAuthServices } from './receive/auth/sasl.ts';
import { BackPressureMonitor } from './receive/back-pressure.ts';
import { type ReceiveServer, startReceiveServer } from './receive/server.ts';
import { cachingResolver } from './routing/dns/cache.ts';
import { createResolver } from './routing/dns/resolver.ts';
import { SinkSubmitter } from './routing/generated.ts';
import { applyMtaSts, MtaStsPolicies } from './routing/mta-sts/index.ts';
import { connectorRouter } from './routing/router.ts';
import { SendConnectorSelector } from './routing/send-connectors.ts';
import { SubmissionSink } from './routing/submission.ts';
import { loadOrCreateCertificate } from './tls/certificates.ts';
import { certificateFileProblems } from './tls/contexts.ts';
import { startTracking } from './tracking/index.ts';
import type { TrackingLog } from './tracking/types.ts';

export interface NodeOptions {
  logger?: Logger;
  clock?: Clock;
  ids?: IdGenerator;
  /** Agents of one's own, run after the built-in ones at every receive stage (docs/agents.md). */
  agents?: ReadonlyArray<Agent>;
  /** Called right before each delivery job goes to its agent (fault tests crash the process here). */
  beforeDelivery?: (job: DeliveryJob) => void | Promise<void>;
}

/** A running node: its listeners, its queue, and a way to stop it cleanly. */
export interface RunningNode {
  readonly receive: ReceiveServer;
  readonly store: QueueStore;
  readonly scheduler: DeliveryScheduler;
  readonly notifier: DsnNotifier;
  readonly dataDir: string;
  /** Every tracking and protocol event of the node (src/observe/events.ts). */
  readonly events: EventBus;
  /** The message tracking log (src/tracking/): what the bus's `track` events recorded. */
  readonly tracking: TrackingLog;
  /** The queue viewer: queues, messages and their operations (src/queue/admin.ts). */
  readonly queueAdmin: QueueAdmin;
  /** Prometheus metrics of this node, on its own registry (src/observe/metrics.ts). */
  readonly metrics: NodeMetrics;
  /** The admin API, when `admin.listen` names an address (docs/admin-api.md). */
  readonly admin?: { address(): Array<{ host: string; port: number }> };
  /** Re-reads every TLS certificate for new handshakes (SIGHUP); see ReceiveServer.reloadCertificates. */
  reloadCertificates(): ReturnType<ReceiveServer['reloadCertificates']>;
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
  const events = createEventBus(logger);
  // First, so it records every tracking event from the start; stopped after the store closes.
  const tracking = await startTracking(config.tracking, dataDir, events, logger, clock);
  // What is running so far, closed in reverse order if a later step of startup fails.
  const started: Array<() => unknown> = [() => tracking.stop()];
  const unwind = async () => {
    for (const close of started.reverse()) {
      try {
        await close();
      } catch (error) {
        logger.warn({ err: error }, 'could not close a part of a node that failed to start');
      }
    }
  };
  const step = async <T>(work: Promise<T>): Promise<T> => {
    try {
      return await work;
    } catch (error) {
      await unwind();
      throw error;
    }
  };

  // Certificate files that are missing or unusable are config errors, at the field that names them.
  const certificateProblems = [
    ...(await step(certificateFileProblems(config))),
    ...(await step(authFileProblems(config))),
  ];
  if (certificateProblems.length > 0) {
    const error = await locatedError(loaded, certificateProblems);
    await unwind();
    throw error;
  }
  const nodeCertificate = () =>
    loadOrCreateCertificate({
      dataDir,
      fqdn,
      ...(config.node.certificate ? { configured: config.node.certificate } : {}),
      logger,
    });
  const certificate = await step(nodeCertificate());

  const secrets = await step(loadConnectorSecrets(config.sendConnectors));
  const dkim =
    config.dkim.keys.length > 0
      ? await step(DkimSigner.load(config.dkim.keys, { clock, logger }))
      : undefined;
  const selector = new SendConnectorSelector(config.sendConnectors);
  const resolver = cachingResolver(
    createResolver({ servers: config.dns.servers, timeout: config.dns.timeout, tries: config.dns.tries }),
    { clock, cacheTime: config.dns.cacheTime },
  );
  started.push(() => resolver.cancel());

  const mtaSts = new MtaStsPolicies({
    resolver,
    cacheFile: join(dataDir, 'mta-sts', 'policies.json'),
    clock,
    logger,
  });
  const mxPolicy = async (domain: string, mxHosts: ReadonlyArray<string>) => {
    const decision = applyMtaSts(await mtaSts.lookup(domain), [...mxHosts]);
    // Once per delivery, so at debug: policy fetches and their failures are logged where they happen.
    if (decision.enforce || decision.mismatched.length > 0)
      logger.debug({ domain, mtaSts: decision.report }, 'MTA-STS');
    return {
      allowed: decision.defer ? [] : decision.allowed,
      requireTls: decision.requireTls,
      report: decision.report,
    };
  };

  const store = new SqliteQueueStore({
    dir: join(dataDir, 'queue'),
    clock,
    ids,
    messageExpiration: config.queue.messageExpiration,
    groupCommitWindow: config.queue.groupCommitWindow,
    poisonThreshold: config.queue.poisonThreshold,
    events,
    logger,
  });
  started.push(() => store.close());
  await step(store.open());
  // The queue gauges are read from the queue viewer at scrape time (scrapes begin once the node runs).
  const queueDepth = async () =>
    (await queueAdmin.listQueues()).map((q) => ({
      queue: q.name,
      messages: q.messageCount,
      recipients: q.recipientCount,
    }));
  const metrics = createMetrics({ bus: events, queueDepth, logger });
  started.push(() => metrics.close());

  const mailboxAgent = new MailboxDeliveryAgent({
    mailboxRoot: join(dataDir, 'mailboxes'),
    nodeFqdn: fqdn,
    clock,
    logger,
  });
  started.push(() => mailboxAgent.close());
  // Per connector with protocolLogging: verbose (src/logging/); undefined when none logs.
  const protocolLogs = await step(protocolLogsFor(config, { clock, ids, logger }));
  started.push(() => protocolLogs?.close());
  const smtpAgent = new SmtpDeliveryAgent({
    ...(protocolLogs ? { protocolLog: protocolLogs.sendConnectorSession } : {}),
    selector,
    resolver,
    allowPrivateAddresses: config.dns.allowPrivateAddresses,
    nodeFqdn: fqdn,
    logger,
    maxOutboundConnections: config.queue.maxOutboundConnections,
    passwordFor: secrets.password,
    caFor: secrets.ca,
    mxPolicy,
    events,
    ...(dkim ? { sign: (openBody: () => Readable) => dkim.signatureFor(openBody) } : {}),
  });
  started.push(() => smtpAgent.close());
  const mailboxPolicy = fixedIntervalPolicy(config.queue.mailboxRetryInterval);
  const remotePolicy = exchangeSchedulePolicy(config.queue.retry);
  const scheduler = new DeliveryScheduler({
    store,
    agents: [mailboxAgent, smtpAgent],
    clock,
    logger,
    retryPolicy: (hop) => (hop === 'mailbox' ? mailboxPolicy : remotePolicy),
    ...(options.beforeDelivery ? { beforeDelivery: options.beforeDelivery } : {}),
    // Remote jobs hold one outbound connection each, within the pool's per-destination limits.
    concurrency: (hop) =>
      hop === 'mailbox' ? config.queue.maxConcurrentMailboxDeliveries : config.queue.maxOutboundConnections,
    // A final outcome may owe the sender a report; deferrals do not.
    onJobOutcomes: (message, results) => trackJobOutcomes(events, message, results, clock.now()),
    onRecorded: (outcomes) => {
      if (outcomes.some((o) => o.outcome.kind !== 'deferred')) notifier.wake();
    },
  });

  const router = connectorRouter(selector);
  const sink = new SubmissionSink({
    store,
    router,
    onQueued: () => scheduler.wake(),
    events,
    serverHostname: fqdn,
    logger,
  });
  const directory = new ConfigDirectory(config);
  const notifier = new DsnNotifier({
    store,
    submit: new SinkSubmitter({ sink, directory, reportingMta: fqdn, logger }),
    clock,
    logger,
    reportingMta: fqdn,
    postmaster: `postmaster@${directory.defaultDomain() ?? fqdn}`,
    delayNotification: config.queue.delayNotification,
    maxFullReturnSize: config.queue.maxFullReturnSize,
    events,
  });
  const queueAdmin = new StoreQueueAdmin({
    store,
    clock,
    // Config may have changed since the message was queued: local is what the directory says now.
    route: (recipient, message) =>
      router.route(
        { address: recipient.address, local: directory.mailboxOf(recipient.address) !== undefined },
        message.size,
      ),
    wakeScheduler: () => scheduler.wake(),
    wakeNotifier: () => notifier.wake(),
    remoteDeliveryType: (_nextHop, connector) =>
      connector !== undefined && selector.byName(connector)?.routing.type === 'smartHost'
        ? 'SmartHostConnectorDelivery'
        : 'DnsConnectorDelivery',
  });
  // Recipients that waited in the Unreachable queue go out once a connector serves their domain.
  const rerouted = await step(
    store.rerouteUnreachable(
      (recipient, message) => router.route({ address: recipient.address, local: false }, message.size),
      clock.now(),
    ),
  );
  if (rerouted > 0) logger.info({ recipients: rerouted }, 'routed recipients from the Unreachable queue');
  const backPressure = config.queue.backPressure.enabled
    ? new BackPressureMonitor({
        ...config.queue.backPressure,
        count: (atMost) => store.countDueBacklog(clock.now(), atMost),
        clock,
        logger,
        events,
      })
    : undefined;
  started.push(() => backPressure?.stop());
  await step(backPressure?.start() ?? Promise.resolve());
  // Awaited here, not inside the receive server's options, so a failure unwinds what started.
  const auth = await step(createAuthServices(config, clock));
  // mailauth (about 17 MB of modules) loads only for a node that checks mail.
  const emailAuth = config.emailAuthentication.enabled
    ? new (await step(import('./agents/email-auth/verifier.ts'))).EmailAuthenticator({
        config: config.emailAuthentication,
        dns: resolver,
        authservId: fqdn,
        logger,
      })
    : undefined;
  const receive: ReceiveServer = await step(
    startReceiveServer({
      connectors: config.receiveConnectors,
      context: {
        directory,
        sink,
        agents: createAgentPipeline(config, {
          resolver,
          clock,
          logger,
          nodeFqdn: fqdn,
          events,
          ...(options.agents ? { extra: options.agents } : {}),
        }),
        events,
        ...(emailAuth ? { emailAuth } : {}),
        ...(backPressure ? { backPressure } : {}),
      },
      nodeFqdn: fqdn,
      defaultCertificate: { cert: certificate.cert, key: certificate.key },
      reloadDefaultCertificate: nodeCertificate,
      clock,
      ids,
      logger,
      auth,
      ...(protocolLogs ? { protocolLog: protocolLogs } : {}),
    }),
  );
  scheduler.start();
  notifier.start();
  for (const a of receive.addresses()) {
    logger.info({ connector: a.connector, host: a.host, port: a.port }, 'receive connector listening');
  }

  let admin: AdminServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // In order, each step on its own: one that fails must not leave the queue open.
      const steps: Array<[string, () => unknown]> = [
        ['admin API', () => admin?.close()],
        ['receive connectors', () => receive.close()],
        ['back pressure', () => backPressure?.stop()],
        ['scheduler', () => scheduler.stop()],
        ['notifier', () => notifier.stop()],
        ['mailbox delivery', () => mailboxAgent.close()],
        ['SMTP delivery', () => smtpAgent.close()],
        ['protocol logs', () => protocolLogs?.close()],
        ['MTA-STS cache', () => mtaSts.flush()],
        ['resolver', () => resolver.cancel()],
        ['metrics', () => metrics.close()],
        ['queue', () => store.close()],
        ['message tracking', () => tracking.stop()],
      ];
      for (const [part, close] of steps) {
        try {
          await close();
        } catch (error) {
          logger.error({ err: error, part }, 'could not stop a part of the node');
        }
      }
      logger.info('ferrymail node stopped');
    })();
    return stopping;
  };
  // After the receive connectors, so readiness holds from its first answer; stopped first.
  try {
    admin = await startNodeAdmin({
      config,
      fqdn,
      logger,
      clock,
      startedAt: clock.now(),
      receive,
      store,
      events,
      metrics,
      queueAdmin,
      tracking: tracking.log,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  logger.info({ fqdn, dataDir }, 'ferrymail node started');
  const reloadCertificates = () => receive.reloadCertificates();
  return {
    receive,
    store,
    scheduler,
    notifier,
    dataDir,
    events,
    tracking: tracking.log,
    queueAdmin,
    metrics,
    ...(admin ? { admin } : {}),
    reloadCertificates,
    stop,
  };
}
