import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { EventBus } from '../observe/events.ts';
import type { QueueAdmin } from '../queue/admin-types.ts';
import type { QueueStore } from '../queue/types.ts';
import type { ReceiveServer } from '../receive/server.ts';
import type { TrackingLog } from '../tracking/types.ts';
import type { AdminContext, ReadinessChecks } from './context.ts';
import type { AdminServer } from './server.ts';

export type { AdminServer } from './server.ts';

/** A queue that takes longer than this to answer a count is not ready. */
const READINESS_TIMEOUT_MS = 2000;

export interface NodeAdminParts {
  readonly config: Config;
  readonly fqdn: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly startedAt: number;
  readonly receive: Pick<ReceiveServer, 'addresses'>;
  readonly store: Pick<QueueStore, 'countRecipients'>;
  readonly events: EventBus;
  readonly queueAdmin: QueueAdmin;
  readonly tracking?: Pick<TrackingLog, 'search' | 'flush'>;
  readonly metrics?: { text(): Promise<string>; readonly contentType: string };
}

/** The admin API of a node, from the node's parts; undefined when `admin.listen` is empty. */
export async function startNodeAdmin(parts: NodeAdminParts): Promise<AdminServer | undefined> {
  const { config } = parts;
  if (config.admin.listen.length === 0) return undefined;
  const enabled = config.receiveConnectors.filter((c) => c.enabled).map((c) => c.name);
  const readiness = async (): Promise<ReadinessChecks> => {
    const listening = new Set(parts.receive.addresses().map((a) => a.connector));
    let timer: NodeJS.Timeout | undefined;
    const queue = await Promise.race([
      parts.store.countRecipients().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), READINESS_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    return { queue, receive: enabled.every((name) => listening.has(name)) };
  };
  const context: AdminContext = {
    queueAdmin: parts.queueAdmin,
    events: parts.events,
    readiness,
    clock: parts.clock,
    node: {
      name: config.node.name,
      fqdn: parts.fqdn,
      startedAt: parts.startedAt,
      listeners: () =>
        parts.receive.addresses().map((a) => ({ connector: a.connector, host: a.host, port: a.port })),
    },
    ...(parts.tracking ? { tracking: parts.tracking } : {}),
    ...(parts.metrics ? { metrics: parts.metrics } : {}),
  };
  // fastify and its schema compilers load only for a node that serves the API.
  const { startAdminServer } = await import('./server.ts');
  return startAdminServer({ config, context, logger: parts.logger });
}
