import type { Clock } from '../core/clock.ts';
import type { EventBus } from '../observe/events.ts';
import type { QueueAdmin } from '../queue/admin-types.ts';
import type { TrackingLog } from '../tracking/types.ts';

/** What a readiness probe checks. */
export interface ReadinessChecks {
  /** The queue store is open and answers. */
  readonly queue: boolean;
  /** Every enabled receive connector listens. */
  readonly receive: boolean;
}

/**
 * Everything the admin API needs from a node, and nothing more: routes are tested against fakes
 * of this, and src/node.ts builds it from the real parts.
 */
export interface AdminContext {
  readonly queueAdmin: QueueAdmin;
  /** Absent while the node runs without a tracking log: /api/v1/tracking answers 503. */
  readonly tracking?: Pick<TrackingLog, 'search' | 'flush'>;
  /** Absent without metrics: /metrics answers 503. */
  readonly metrics?: { text(): Promise<string>; readonly contentType: string };
  /** Where ADMIN tracking events go. */
  readonly events: EventBus;
  readiness(): Promise<ReadinessChecks>;
  readonly node: {
    readonly name: string;
    readonly fqdn: string;
    /** ms since epoch. */
    readonly startedAt: number;
    /** The receive connectors' listeners. */
    listeners(): ReadonlyArray<{ connector: string; host: string; port: number }>;
  };
  readonly clock: Clock;
}
