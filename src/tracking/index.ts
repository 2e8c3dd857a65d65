import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { EventBus } from '../observe/events.ts';
import { SqliteTrackingLog } from './sqlite-tracking-log.ts';
import { normalizeQuery } from './tracking-query.ts';
import type { TrackingLog } from './types.ts';

export { SqliteTrackingLog } from './sqlite-tracking-log.ts';
export { type TrackingLog, type TrackingPage, type TrackingQuery, TrackingQueryError } from './types.ts';

/** The `tracking` section of the config (src/config/schema.ts). */
export type TrackingConfig = Config['tracking'];

export interface RunningTracking {
  readonly log: TrackingLog;
  /** Stops listening, writes what is buffered, closes the database. */
  stop(): Promise<void>;
}

/** How often old events are removed after the one purge at start. */
export const PURGE_INTERVAL = 3_600_000;

/** The database of a node's tracking log. */
export function trackingDbPath(dataDir: string): string {
  return join(dataDir, 'tracking', 'tracking.db');
}

/**
 * The node's message tracking log: every `track` event of the bus is recorded (without its
 * subject when `logSubject` is off), and events older than the retention are removed at start
 * and every hour. Disabled, it records nothing and finds nothing, and no file is created.
 * Rejects when the database cannot be opened (a newer schema, a file that is not a database).
 */
export async function startTracking(
  config: TrackingConfig,
  dataDir: string,
  bus: EventBus,
  logger: Logger,
  clock: Clock,
): Promise<RunningTracking> {
  if (!config.enabled) return { log: disabledTrackingLog, stop: async () => {} };
  const path = trackingDbPath(dataDir);
  let log: SqliteTrackingLog;
  try {
    log = await SqliteTrackingLog.open({ path, logger });
  } catch (error) {
    throw new Error(`message tracking log ${path}: ${(error as Error).message}`, { cause: error });
  }
  const unsubscribe = bus.subscribe((event) => {
    if (event.kind !== 'track') return;
    if (config.logSubject || event.event.subject === undefined) log.record(event.event);
    else {
      const { subject: _omitted, ...withoutSubject } = event.event;
      log.record(withoutSubject);
    }
  });

  let purging: Promise<void> | undefined;
  const purge = () => {
    purging ??= log
      .purge(clock.now() - config.retention)
      .then(
        (removed) => {
          if (removed > 0) logger.info({ removed }, 'message tracking: removed events past the retention');
        },
        (error: unknown) => logger.error({ err: error }, 'message tracking: purge failed'),
      )
      .finally(() => {
        purging = undefined;
      });
  };
  purge();
  const timer = setInterval(purge, PURGE_INTERVAL);
  timer.unref();

  let stopping: Promise<void> | undefined;
  return {
    log,
    stop() {
      stopping ??= (async () => {
        unsubscribe();
        clearInterval(timer);
        // Closing first ends a purge in progress after its current chunk.
        await log.close();
        await purging;
      })();
      return stopping;
    },
  };
}

/** `tracking.enabled: false`: nothing is kept, every search is empty. */
export const disabledTrackingLog: TrackingLog = {
  record: () => {},
  flush: async () => {},
  // A bad query is still an error, so the admin API answers the same with tracking off.
  search: async (query) => {
    normalizeQuery(query);
    return { events: [] };
  },
  purge: async () => 0,
  close: async () => {},
};
