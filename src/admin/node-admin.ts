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

export interface NodeAdminParts {
  readonly config: Config;
  readonly fqdn: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly startedAt: number;
  readonly receive: Pick<ReceiveServer, 'addresses'>;
  readonly store: Pick<QueueStore, 'canCommit'>;
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
    // A flag, not a query: a probe every second must cost nothing, whatever the queue holds.
    const queue = parts.store.canCommit();
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
