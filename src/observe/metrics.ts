/**
 * Prometheus metrics of one node, counted from its event bus (src/observe/events.ts) and, for
 * the queue gauges, read from the queue at scrape time. Each node has its own registry, so
 * several nodes in one process (the tests) never share or double-register a series.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../core/logger.ts';
import type { EventBus, NodeEvent, TrackingEvent } from './events.ts';

/** One queue's depth, as the queue viewer counts it. */
export interface QueueDepth {
  readonly queue: string;
  readonly messages: number;
  readonly recipients: number;
}

export interface MetricsOptions {
  readonly bus: EventBus;
  /** Read at every scrape. */
  readonly queueDepth: () => Promise<ReadonlyArray<QueueDepth>>;
  readonly logger?: Logger;
}

export interface NodeMetrics {
  readonly registry: Registry;
  /** The exposition text for a scrape. */
  text(): Promise<string>;
  /** The Content-Type of `text()`. */
  readonly contentType: string;
  /** Stops counting events. */
  close(): void;
}

/**
 * Delivery latency from receipt to the final outcome: 10 ms (a local mailbox) up to 6 hours (a
 * remote domain that was down for a while).
 */
export const LATENCY_BUCKETS = [
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 21600,
];

const P = 'ferrymail_';

export function createMetrics(options: MetricsOptions): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const received = new Counter({
    name: `${P}messages_received_total`,
    help: 'Messages received (RECEIVE events), per receive connector.',
    labelNames: ['connector'],
    registers,
  });
  const delivered = new Counter({
    name: `${P}messages_delivered_total`,
    help: 'Delivery jobs delivered (SEND, DELIVER), per send connector; `mailbox` for local delivery.',
    labelNames: ['connector'],
    registers,
  });
  const deferred = new Counter({
    name: `${P}messages_deferred_total`,
    help: 'Delivery jobs deferred for a retry (DEFER), per send connector; `mailbox` for local delivery.',
    labelNames: ['connector'],
    registers,
  });
  const failed = new Counter({
    name: `${P}messages_failed_total`,
    help: 'Delivery jobs failed (FAIL), per send connector; `mailbox` local, `none` without a connector.',
    labelNames: ['connector'],
    registers,
  });
  const dsn = new Counter({
    name: `${P}dsn_sent_total`,
    help: 'Delivery status notifications queued, per kind (failure, delay, success).',
    labelNames: ['kind'],
    registers,
  });
  const tracking = new Counter({
    name: `${P}tracking_events_total`,
    help: 'Message tracking events, per event id.',
    labelNames: ['event'],
    registers,
  });
  const latency = new Histogram({
    name: `${P}delivery_latency_seconds`,
    help: 'Seconds from receipt to delivery, per recipient delivered, per hop (mailbox, smtp).',
    labelNames: ['hop'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const sessions = new Counter({
    name: `${P}smtp_sessions_total`,
    help: 'SMTP sessions opened, per receive connector.',
    labelNames: ['connector'],
    registers,
  });
  const active = new Gauge({
    name: `${P}smtp_sessions_active`,
    help: 'SMTP sessions open now, per receive connector.',
    labelNames: ['connector'],
    registers,
  });
  const tls = new Counter({
    name: `${P}tls_handshakes_total`,
    help: 'TLS handshakes, inbound (receive) and outbound (send), by outcome and protocol version.',
    labelNames: ['direction', 'outcome', 'protocol'],
    registers,
  });
  const auth = new Counter({
    name: `${P}auth_attempts_total`,
    help: 'SMTP AUTH attempts on receive connectors, by mechanism and outcome (success, failure, locked).',
    labelNames: ['mechanism', 'outcome'],
    registers,
  });

  // Read once per scrape for both gauges; a queue that emptied must disappear, hence the reset.
  let depth: Promise<ReadonlyArray<QueueDepth>> | undefined;
  const readDepth = () => {
    depth ??= options.queueDepth().finally(() => {
      depth = undefined;
    });
    return depth;
  };
  const collectDepth = async (gauge: Gauge<'queue'>, pick: (d: QueueDepth) => number) => {
    gauge.reset();
    try {
      for (const d of await readDepth()) gauge.set({ queue: d.queue }, pick(d));
    } catch (error) {
      // The scrape still answers: the other series are right, the queue's are left out.
      options.logger?.error({ err: error }, 'metrics: could not read the queue depth');
    }
  };
  const queueMessages: Gauge<'queue'> = new Gauge({
    name: `${P}queue_messages`,
    help: 'Messages with recipients waiting in each queue.',
    labelNames: ['queue'],
    registers,
    collect: () => collectDepth(queueMessages, (d) => d.messages),
  });
  const queueRecipients: Gauge<'queue'> = new Gauge({
    name: `${P}queue_recipients`,
    help: 'Recipients waiting in each queue.',
    labelNames: ['queue'],
    registers,
    collect: () => collectDepth(queueRecipients, (d) => d.recipients),
  });

  const onTracking = (e: TrackingEvent) => {
    tracking.inc({ event: e.eventId });
    switch (e.eventId) {
      case 'RECEIVE':
        received.inc({ connector: e.connector ?? 'none' });
        break;
      case 'SEND':
        delivered.inc({ connector: e.connector ?? 'none' });
        break;
      case 'DELIVER':
        delivered.inc({ connector: 'mailbox' });
        break;
      case 'DEFER':
        // Only SMTP hops name a connector; the other hop that is retried is the mailbox.
        deferred.inc({ connector: e.connector ?? 'mailbox' });
        break;
      case 'FAIL':
        failed.inc({ connector: e.connector ?? (e.detail === 'mailbox' ? 'mailbox' : 'none') });
        break;
      case 'DSN':
        dsn.inc({ kind: e.detail ?? 'unknown' });
        break;
      default:
        break;
    }
  };
  const onEvent = (event: NodeEvent) => {
    switch (event.kind) {
      case 'track':
        return onTracking(event.event);
      case 'session':
        if (event.phase === 'open') {
          sessions.inc({ connector: event.connector });
          active.inc({ connector: event.connector });
        } else active.dec({ connector: event.connector });
        return;
      case 'tls':
        tls.inc({ direction: event.direction, outcome: event.outcome, protocol: event.protocol ?? 'none' });
        return;
      case 'auth':
        auth.inc({ mechanism: event.mechanism || 'none', outcome: event.outcome });
        return;
      case 'delivery-latency':
        latency.observe({ hop: event.hop }, event.seconds);
        return;
    }
  };
  const unsubscribe = options.bus.subscribe(onEvent);

  return {
    registry,
    text: () => registry.metrics(),
    contentType: registry.contentType,
    close() {
      unsubscribe();
    },
  };
}
