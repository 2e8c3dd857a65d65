import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import {
  type MessageFilter,
  type MessageStatus,
  type QueueAdmin,
  QueueAdminError,
  type QueueDeliveryType,
  type QueuedMessageView,
  type QueueStatus,
  type QueueSummary,
} from './admin-types.ts';
import type { MessageInspection, MessagePageQuery, QueueTotals, SqliteQueueStore } from './sqlite-store.ts';
import type { NextHop, QueuedMessage, QueuedRecipient } from './types.ts';

export interface StoreQueueAdminOptions {
  store: SqliteQueueStore;
  clock: Clock;
  /** Routes a recipient again (resubmit); the node's router, as for rerouteUnreachable. */
  route?: (recipient: QueuedRecipient, message: QueuedMessage) => NextHop;
  /** Recipients became due (retry, resume, release, resubmit): the scheduler should look. */
  wakeScheduler?: () => void;
  /** Failures were recorded (remove with NDR): the notifier should send the reports. */
  wakeNotifier?: () => void;
  /** Whether an SMTP queue goes through a smart host (by its connector); DNS otherwise. */
  remoteDeliveryType?: (
    nextHop: string,
    connector: string | undefined,
  ) => 'DnsConnectorDelivery' | 'SmartHostConnectorDelivery';
  /**
   * ms the queue counts are reused. Counting is one pass over an index of the waiting
   * recipients in the store's reader thread (seconds at 1,000,000 on a busy machine; see
   * docs/decisions/queue-store.md), so older counts are served while a recount runs, and a
   * recount starts at most this often (and never more often than four times its own length).
   * Status, suspension and deliveries in progress are always current. Default 1000; 0 counts
   * afresh for every call (tests).
   */
  summaryCacheMs?: number;
  logger?: Logger;
}

/** The response every undelivered recipient of a message removed with NDR fails with. */
export const REMOVED_RESPONSE = '550 5.7.1 Message deleted by an administrator';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const MESSAGE_STATUSES: ReadonlySet<string> = new Set(['Active', 'Ready', 'Retry', 'Suspended', 'Poison']);
/** Candidate ids read per query while the exact status filter drops some. */
const CHUNK = 200;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
const QUEUE_ID = /^[0-9A-Za-z]{1,64}$/;

/**
 * The queue viewer over the SQLite queue store (Exchange's Get-Queue, Get-Message and their
 * operations). What the store holds decides everything; the only state here is the cached
 * queue list.
 *
 * A recipient being delivered right now is never changed under its delivery: suspending its
 * queue or its message takes effect when the attempt's outcome is recorded (a deferral then
 * leaves it held or suspended; a delivery or failure is final anyway), and removing or
 * resubmitting a message with a delivery in progress answers `conflict` (try again once the
 * attempt is over), because the attempt's outcome would otherwise race the change.
 */
export class StoreQueueAdmin implements QueueAdmin {
  readonly #o: StoreQueueAdminOptions;
  /** The last counts, when they were taken (real time) and how long counting took. */
  #counts: { at: number; took: number; totals: QueueTotals[] } | undefined;
  #counting: Promise<void> | undefined;

  constructor(options: StoreQueueAdminOptions) {
    this.#o = options;
  }

  async listQueues(): Promise<QueueSummary[]> {
    const cacheMs = this.#o.summaryCacheMs ?? 1000;
    if (!this.#counts || cacheMs === 0) await this.#recount();
    else if (Date.now() - this.#counts.at >= Math.max(cacheMs, 4 * this.#counts.took)) {
      // Served from the last counts while the recount runs.
      this.#recount().catch((error: unknown) =>
        (this.#o.logger ?? silentLogger).error({ err: error }, 'could not count the queues'),
      );
    }
    return this.#summaries(this.#counts?.totals ?? []);
  }

  async getQueue(name: string): Promise<QueueSummary | undefined> {
    checkQueueName(name);
    return (await this.listQueues()).find((q) => q.name === name);
  }

  /** One count at a time; callers arriving meanwhile share it. */
  #recount(): Promise<void> {
    this.#counting ??= (async () => {
      const started = Date.now();
      try {
        const totals = await this.#o.store.queueTotals();
        this.#counts = { at: Date.now(), took: Date.now() - started, totals };
      } finally {
        this.#counting = undefined;
      }
    })();
    return this.#counting;
  }

  async listMessages(filter: MessageFilter = {}): Promise<QueuedMessageView[]> {
    const f = checkFilter(filter);
    const limit = f.limit ?? DEFAULT_LIMIT;
    const now = this.#o.clock.now();
    const out: QueuedMessageView[] = [];
    // Active messages are the ones claimed for delivery: a handful, known in memory.
    if (f.status === 'Active') {
      for (const id of this.#o.store.messagesInDelivery()) {
        if (out.length >= limit) break;
        if (f.after !== undefined && id <= f.after) continue;
        const view = this.#view(id, now);
        if (view && view.status === 'Active' && matches(view, f)) out.push(view);
      }
      return out;
    }
    if (f.status === 'Poison' && f.queue !== undefined && f.queue !== 'poison') return [];
    const query: MessagePageQuery = {
      after: f.after ?? '',
      limit: Math.min(CHUNK, limit * 2),
      ...(f.status === 'Poison' ? { queue: 'poison' } : f.queue !== undefined ? { queue: f.queue } : {}),
      ...(f.sender !== undefined ? { sender: f.sender } : {}),
      ...(f.recipient !== undefined ? { recipient: f.recipient } : {}),
      ...(f.subject !== undefined ? { subject: f.subject } : {}),
      ...(f.receivedAfter !== undefined ? { receivedAfter: f.receivedAfter } : {}),
      ...(f.receivedBefore !== undefined ? { receivedBefore: f.receivedBefore } : {}),
      ...(f.status === 'Ready'
        ? { waiting: 'ready' as const, now }
        : f.status === 'Retry'
          ? { waiting: 'retry' as const, now }
          : f.status === 'Suspended'
            ? { waiting: 'stopped' as const }
            : {}),
    };
    for (let after = query.after; ; ) {
      const ids = await this.#o.store.pageMessageIds({ ...query, after });
      for (const id of ids) {
        const view = this.#view(id, now);
        // The rows said so a moment ago; claims and outcomes since then decide.
        if (!view || (f.status !== undefined && view.status !== f.status)) continue;
        out.push(view);
        if (out.length >= limit) return out;
      }
      if (ids.length < query.limit) return out;
      after = ids.at(-1)!;
    }
  }

  async getMessage(id: string): Promise<QueuedMessageView | undefined> {
    if (typeof id !== 'string' || !QUEUE_ID.test(id)) return undefined;
    return this.#view(id, this.#o.clock.now());
  }

  async retryQueue(name: string): Promise<number> {
    const queue = await this.#existingQueue(name);
    if (queue.name === 'poison')
      throw new QueueAdminError(
        'conflict',
        'the Poison queue is not delivered; release its messages one by one',
      );
    if (queue.suspended)
      throw new QueueAdminError('conflict', `queue ${name} is suspended; resume it to deliver it`);
    const [changed] = await this.#o.store.applyAdmin([
      { op: 'retryQueue', queue: name, now: this.#o.clock.now() },
    ]);
    this.#changed(true);
    return changed ?? 0;
  }

  async suspendQueue(name: string): Promise<void> {
    const queue = await this.#existingQueue(name);
    if (queue.name === 'poison') throw new QueueAdminError('conflict', 'the Poison queue is never delivered');
    if (queue.suspended) return;
    await this.#o.store.applyAdmin([{ op: 'suspendQueue', queue: name }]);
    this.#changed(false);
  }

  async resumeQueue(name: string): Promise<void> {
    checkQueueName(name);
    if (!this.#o.store.suspendedQueueNames().has(name)) {
      await this.#existingQueue(name);
      return;
    }
    await this.#o.store.applyAdmin([{ op: 'resumeQueue', queue: name }]);
    this.#changed(true);
  }

  async suspendMessage(id: string): Promise<void> {
    const view = this.#existing(id);
    if (view.status === 'Poison')
      throw new QueueAdminError('conflict', `message ${id} is in the Poison queue; release or remove it`);
    await this.#o.store.applyAdmin([{ op: 'suspendMessage', messageId: id, now: this.#o.clock.now() }]);
    this.#changed(false);
  }

  async resumeMessage(id: string): Promise<void> {
    this.#existing(id);
    const inspection = this.#o.store.inspectMessage(id);
    if (!inspection?.recipients.some((r) => r.status === 'suspended'))
      throw new QueueAdminError('conflict', `message ${id} is not suspended`);
    await this.#o.store.applyAdmin([{ op: 'resumeMessage', messageId: id, now: this.#o.clock.now() }]);
    this.#changed(true);
  }

  async removeMessage(id: string, options: { ndr: boolean }): Promise<void> {
    if (typeof options?.ndr !== 'boolean')
      throw new QueueAdminError('invalid', 'say whether the sender gets an NDR (ndr: true or false)');
    this.#existing(id);
    await this.#o.store.removeMessage(id, { ndr: options.ndr, response: REMOVED_RESPONSE });
    this.#changed(false);
    if (options.ndr) this.#o.wakeNotifier?.();
  }

  async exportMessage(id: string): Promise<Readable> {
    this.#existing(id);
    return this.#o.store.readBody(id);
  }

  async resubmitMessage(id: string): Promise<void> {
    const view = this.#existing(id);
    if (view.status === 'Poison')
      throw new QueueAdminError('conflict', `message ${id} is in the Poison queue; release it instead`);
    const route = this.#o.route;
    if (!route) throw new QueueAdminError('conflict', 'this queue admin has no router to resubmit with');
    await this.#o.store.resubmitMessage(id, route);
    this.#changed(true);
  }

  async releasePoisonMessage(id: string): Promise<void> {
    const view = this.#existing(id);
    if (view.status !== 'Poison')
      throw new QueueAdminError('conflict', `message ${id} is not in the Poison queue`);
    await this.#o.store.applyAdmin([{ op: 'releasePoison', messageId: id, now: this.#o.clock.now() }]);
    this.#changed(true);
  }

  #changed(due: boolean): void {
    // The next list recounts (in the background if counts exist).
    if (this.#counts) this.#counts = { ...this.#counts, at: 0 };
    if (due) this.#o.wakeScheduler?.();
  }

  #existing(id: string): QueuedMessageView {
    const view =
      typeof id === 'string' && QUEUE_ID.test(id) ? this.#view(id, this.#o.clock.now()) : undefined;
    if (!view) throw new QueueAdminError('not-found', `no queued message ${String(id)}`);
    return view;
  }

  /** The queue as it is now (an index seek, not the cached counts): its name and whether suspended. */
  async #existingQueue(name: string): Promise<{ name: string; suspended: boolean }> {
    checkQueueName(name);
    const store = this.#o.store;
    const suspended = store.suspendedQueueNames().has(name);
    if (name !== 'poison' && !suspended && !store.queueExists(name))
      throw new QueueAdminError('not-found', `no queue ${name}`);
    return { name, suspended };
  }

  #summaries(counts: ReadonlyArray<QueueTotals>): QueueSummary[] {
    const store = this.#o.store;
    const now = this.#o.clock.now();
    const queues: QueueSummary[] = [];
    const seen = new Set<string>();
    const suspended = store.suspendedQueueNames();
    const inDelivery = store.deliveriesPerQueue();
    for (const t of counts) {
      seen.add(t.queue);
      const nextHop = t.queue.startsWith('smtp:') ? t.queue.slice(5) : '';
      const status: QueueStatus = suspended.has(t.queue)
        ? 'Suspended'
        : (inDelivery.get(t.queue) ?? 0) > 0
          ? 'Active'
          : t.pending === 0 || (t.nextDueAt !== undefined && t.nextDueAt <= now)
            ? 'Ready'
            : 'Retry';
      const lastError = store.queueLastError(t.queue);
      queues.push({
        name: t.queue,
        deliveryType: this.#deliveryType(t.queue, nextHop, t.connector),
        nextHop,
        ...(t.connector !== undefined ? { connector: t.connector } : {}),
        status,
        messageCount: t.messages,
        recipientCount: t.recipients,
        ...(t.nextDueAt !== undefined ? { nextRetryAt: t.nextDueAt } : {}),
        ...(lastError !== undefined ? { lastError } : {}),
      });
    }
    // A suspended queue that emptied stays listed, so it can be resumed.
    for (const name of store.suspendedQueueNames()) {
      if (seen.has(name)) continue;
      const nextHop = name.startsWith('smtp:') ? name.slice(5) : '';
      queues.push({
        name,
        deliveryType: this.#deliveryType(name, nextHop, undefined),
        nextHop,
        status: 'Suspended',
        messageCount: 0,
        recipientCount: 0,
      });
    }
    // Poison is always listed, as in Exchange: an empty one says nothing crashed the node.
    const poison = store.poisonTotals();
    queues.push({
      name: 'poison',
      deliveryType: 'Poison',
      nextHop: '',
      status: 'Ready',
      messageCount: poison.messages,
      recipientCount: poison.recipients,
    });
    return queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  #deliveryType(queue: string, nextHop: string, connector: string | undefined): QueueDeliveryType {
    if (queue === 'mailbox') return 'MailboxDelivery';
    if (queue === 'unreachable') return 'Unreachable';
    if (queue === 'poison') return 'Poison';
    return this.#o.remoteDeliveryType?.(nextHop, connector) ?? 'DnsConnectorDelivery';
  }

  #view(id: string, now: number): QueuedMessageView | undefined {
    const inspection = this.#o.store.inspectMessage(id);
    return inspection ? toView(inspection, now) : undefined;
  }
}

const OPEN: ReadonlySet<string> = new Set(['pending', 'held', 'suspended', 'poison']);

/** The viewer's picture of a message; undefined once nothing of it waits (all final). */
function toView(inspection: MessageInspection, now: number): QueuedMessageView | undefined {
  const open = inspection.recipients.filter((r) => OPEN.has(r.status));
  if (open.length === 0) return undefined;
  const byIndex = new Map(inspection.message.recipients.map((r) => [r.index, r]));
  const pending = open.filter((r) => r.status === 'pending' && !r.claimed);
  let status: MessageStatus;
  if (open.some((r) => r.status === 'poison')) status = 'Poison';
  else if (open.some((r) => r.claimed)) status = 'Active';
  else if (pending.some((r) => (byIndex.get(r.index)?.nextAttemptAt ?? 0) <= now)) status = 'Ready';
  else if (pending.length > 0) status = 'Retry';
  else status = 'Suspended';
  return {
    ...inspection.message,
    status,
    queues: [...new Set(open.map((r) => r.queue))].sort(),
    crashCount: inspection.crashCount,
  };
}

/** The filters the SQL did not apply (an Active page is read from the claims). */
function matches(view: QueuedMessageView, f: MessageFilter): boolean {
  if (f.queue !== undefined && !view.queues.includes(f.queue)) return false;
  if (f.sender !== undefined && view.sender.toLowerCase() !== f.sender.toLowerCase()) return false;
  if (
    f.recipient !== undefined &&
    !view.recipients.some(
      (r) => r.address.toLowerCase() === f.recipient!.toLowerCase() && OPEN_VIEW.has(r.status),
    )
  )
    return false;
  if (f.subject !== undefined && !(view.subject ?? '').toLowerCase().includes(f.subject.toLowerCase()))
    return false;
  if (f.receivedAfter !== undefined && view.receivedAt < f.receivedAfter) return false;
  if (f.receivedBefore !== undefined && view.receivedAt >= f.receivedBefore) return false;
  return true;
}

const OPEN_VIEW: ReadonlySet<string> = new Set(['pending', 'active', 'suspended', 'poison']);

/** `mailbox`, `unreachable`, `poison` or `smtp:<next hop>`; anything else is `invalid`. */
export function checkQueueName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 1024 || CONTROL.test(name))
    throw new QueueAdminError('invalid', `not a queue name: ${JSON.stringify(name)}`);
  if (name === 'mailbox' || name === 'unreachable' || name === 'poison') return;
  if (name.startsWith('smtp:') && name.length > 5) return;
  throw new QueueAdminError(
    'invalid',
    `not a queue name: ${JSON.stringify(name)} (mailbox, unreachable, poison or smtp:<next hop>)`,
  );
}

function checkText(name: string, value: unknown, max: number): void {
  if (value === undefined) return;
  if (typeof value !== 'string' || value.length === 0 || value.length > max || CONTROL.test(value))
    throw new QueueAdminError('invalid', `${name} must be text of 1 to ${max} characters`);
}

function checkTime(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw new QueueAdminError('invalid', `${name} must be a time in ms since epoch`);
}

/** Validates a filter; a precise `invalid` for the first thing wrong. */
export function checkFilter(filter: MessageFilter): MessageFilter {
  if (typeof filter !== 'object' || filter === null)
    throw new QueueAdminError('invalid', 'the filter must be an object');
  if (filter.queue !== undefined) checkQueueName(filter.queue);
  if (filter.status !== undefined && !MESSAGE_STATUSES.has(filter.status))
    throw new QueueAdminError(
      'invalid',
      `status must be one of ${[...MESSAGE_STATUSES].join(', ')}, not ${JSON.stringify(filter.status)}`,
    );
  checkText('sender', filter.sender, 320);
  checkText('recipient', filter.recipient, 320);
  checkText('subject', filter.subject, 200);
  checkTime('receivedAfter', filter.receivedAfter);
  checkTime('receivedBefore', filter.receivedBefore);
  if (
    filter.limit !== undefined &&
    (typeof filter.limit !== 'number' ||
      !Number.isInteger(filter.limit) ||
      filter.limit < 1 ||
      filter.limit > MAX_LIMIT)
  )
    throw new QueueAdminError('invalid', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
  if (filter.after !== undefined && (typeof filter.after !== 'string' || !QUEUE_ID.test(filter.after)))
    throw new QueueAdminError('invalid', 'after must be a queue id (the last id of the previous page)');
  return filter;
}
