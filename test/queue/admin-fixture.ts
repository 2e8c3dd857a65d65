import { ManualClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { createEventBus, type TrackingEvent } from '../../src/observe/events.ts';
import { StoreQueueAdmin, type StoreQueueAdminOptions } from '../../src/queue/admin.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { NewRecipient, NextHop } from '../../src/queue/types.ts';

export const HOUR = 3_600_000;

export const mailbox = (address: string): NewRecipient => ({
  address,
  nextHop: { type: 'mailbox', mailbox: address },
});
export const remote = (address: string, connector = 'Outbound'): NewRecipient => ({
  address,
  nextHop: { type: 'smtp', domain: address.slice(address.indexOf('@') + 1), connector },
});
export const unreachable = (address: string): NewRecipient => ({
  address,
  nextHop: { type: 'unreachable', domain: address.slice(address.indexOf('@') + 1) },
});

/** A real store in `dir` with a queue admin over it, a manual clock, and the tracking events it emitted. */
export async function openAdminStore(
  dir: string,
  options: {
    clock?: ManualClock;
    poisonThreshold?: number;
    lastErrorQueues?: number;
    route?: StoreQueueAdminOptions['route'];
  } = {},
) {
  const clock = options.clock ?? new ManualClock(Date.UTC(2026, 10, 24));
  const events: TrackingEvent[] = [];
  const bus = createEventBus();
  bus.subscribe((e) => {
    if (e.kind === 'track') events.push(e.event);
  });
  const store = new SqliteQueueStore({
    dir,
    clock,
    ids: createIdGenerator(clock),
    messageExpiration: 48 * HOUR,
    events: bus,
    ...(options.poisonThreshold !== undefined ? { poisonThreshold: options.poisonThreshold } : {}),
    ...(options.lastErrorQueues !== undefined ? { lastErrorQueues: options.lastErrorQueues } : {}),
  });
  await store.open();
  const wakes = { scheduler: 0, notifier: 0 };
  const admin = new StoreQueueAdmin({
    store,
    clock,
    summaryCacheMs: 0,
    wakeScheduler: () => wakes.scheduler++,
    wakeNotifier: () => wakes.notifier++,
    ...(options.route ? { route: options.route } : {}),
  });
  return { store, admin, clock, events, wakes };
}

export const toSmtp = (domain: string, connector?: string): NextHop =>
  connector === undefined ? { type: 'smtp', domain } : { type: 'smtp', domain, connector };
