import type { NextHop } from './types.ts';

/**
 * The queue viewer's queue of a hop (src/queue/admin-types.ts): every mailbox is one queue, a
 * remote hop is its domain (or smart-host list) whatever the connector, Unreachable is one
 * queue. The store keeps it in the recipients' `queue` column (MIGRATE_V3_TO_V4 fills it by the
 * same rule); the scheduler counts running jobs per queue with it (per-destination limits).
 */
export function queueName(hop: NextHop): string {
  if (hop.type === 'smtp') return `smtp:${hop.domain}`;
  return hop.type;
}
