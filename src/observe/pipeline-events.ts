/**
 * The tracking events of a message's path through the pipeline, built from what each stage
 * knows (the commit, the categorizer's input, a delivery job's outcomes, a queued report). The
 * components call these with the node's bus; keeping the field mapping here keeps their own
 * edits to one line, and puts every event's meaning in one place (docs/operations.md).
 */
import { queueName } from '../queue/queue-name.ts';
import type { NotificationKind, QueuedMessage, QueuedRecipient, RecipientOutcome } from '../queue/types.ts';
import type { AcceptedRecipient } from '../receive/types.ts';
import { type Directionality, type EventBus, type TrackingEvent, track } from './events.ts';

/** What every event about one stored message says of it. */
function messageFields(message: QueuedMessage) {
  return {
    internalId: message.id,
    ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
    sender: message.sender,
    returnPath: message.sender,
    size: message.size,
    ...(message.subject !== undefined ? { subject: message.subject } : {}),
    directionality: directionality(message),
  };
}

/** Authenticated submissions and the node's own reports come from inside the organisation. */
export function directionality(message: Pick<QueuedMessage, 'origin'>): Directionality {
  return message.origin.authUser !== undefined || message.origin.generated ? 'Originating' : 'Incoming';
}

/**
 * RECEIVE for a message a client handed over (committed: the 250 is on its way), then what
 * routing did with each recipient it gave. Reports the node made itself have no RECEIVE: their
 * DSN event is where they come from.
 */
export function trackSubmission(
  bus: EventBus,
  message: QueuedMessage,
  accepted: ReadonlyArray<AcceptedRecipient>,
  server: { readonly hostname?: string | undefined } = {},
): void {
  const time = message.receivedAt;
  const fields = messageFields(message);
  const { origin } = message;
  if (!origin.generated) {
    track(bus, {
      time,
      eventId: 'RECEIVE',
      source: 'SMTP',
      ...fields,
      clientIp: origin.clientIp,
      clientHostname: origin.clientHelo,
      ...(origin.serverIp !== undefined ? { serverIp: origin.serverIp } : {}),
      ...(server.hostname !== undefined ? { serverHostname: server.hostname } : {}),
      connector: origin.connector,
      recipients: accepted.map((r) => r.address),
      recipientStatus: accepted.map(() => '250 2.0.0 Queued'),
    });
  }
  for (const r of accepted) {
    const routed = routingEvent(r);
    if (!routed) continue;
    track(bus, {
      time,
      eventId: routed,
      source: 'ROUTING',
      ...fields,
      recipients: r.resolvesTo.map((to) => to.address),
      recipientStatus: r.resolvesTo.map(() => ''),
      relatedRecipient: r.address,
    });
  }
}

/**
 * EXPAND: a group (more than one address); REDIRECT: one address outside the organisation;
 * RESOLVE: one address of ours other than the one given (an alias or proxy address). The
 * directory hands over only the result, so a group of one member shows as RESOLVE.
 */
function routingEvent(r: AcceptedRecipient): 'RESOLVE' | 'EXPAND' | 'REDIRECT' | undefined {
  if (r.resolvesTo.length > 1) return 'EXPAND';
  const only = r.resolvesTo[0];
  if (!only || only.address.toLowerCase() === r.address.toLowerCase()) return undefined;
  return only.local ? 'RESOLVE' : 'REDIRECT';
}

/** `... (mx.example.org[192.0.2.1]:25)` → the peer, as the SMTP agent writes its responses. */
const PEER = /\(([^\s()[\]]+)\[([^\]\s]+)\]:\d+(?:,[^)]*)?\)\s*$/;

export interface JobOutcome {
  readonly recipient: QueuedRecipient;
  readonly outcome: RecipientOutcome;
}

/**
 * The events of one delivery job: DELIVER (mailbox) or SEND (SMTP) for its delivered
 * recipients, DEFER for those waiting for a retry, FAIL for those that failed; one event each,
 * with every recipient of the job in that state. Each delivered recipient also gives the
 * `delivery-latency` protocol event.
 */
export function trackJobOutcomes(
  bus: EventBus,
  message: QueuedMessage,
  results: ReadonlyArray<JobOutcome>,
  now: number,
): void {
  const fields = messageFields(message);
  const delivered = results.filter((r) => r.outcome.kind === 'delivered');
  const deferred = results.filter((r) => r.outcome.kind === 'deferred');
  const failed = results.filter((r) => r.outcome.kind === 'failed');
  const base = (group: ReadonlyArray<JobOutcome>) => ({
    time: now,
    ...fields,
    recipients: group.map((r) => r.recipient.address),
    recipientStatus: group.map((r) => r.outcome.response),
  });
  const hop = results[0]?.recipient.nextHop;
  if (delivered.length > 0 && hop) {
    if (hop.type === 'smtp') {
      const peer = PEER.exec(delivered[0]!.outcome.response);
      track(bus, {
        ...base(delivered),
        eventId: 'SEND',
        source: 'SMTP',
        ...(hop.connector !== undefined ? { connector: hop.connector } : {}),
        ...(peer ? { serverHostname: peer[1]!, serverIp: peer[2]! } : {}),
      });
    } else {
      track(bus, { ...base(delivered), eventId: 'DELIVER', source: 'MAILBOX' });
    }
    const seconds = Math.max(0, (now - message.receivedAt) / 1000);
    const latencyHop = hop.type === 'smtp' ? 'smtp' : 'mailbox';
    for (const _ of delivered) bus.emit({ kind: 'delivery-latency', hop: latencyHop, seconds });
  }
  if (deferred.length > 0) {
    const next = Math.min(
      ...deferred.map((r) => (r.outcome.kind === 'deferred' ? r.outcome.nextAttemptAt : Infinity)),
    );
    track(bus, {
      ...base(deferred),
      eventId: 'DEFER',
      source: 'QUEUE',
      ...hopConnector(hop),
      detail: new Date(next).toISOString(),
    });
  }
  if (failed.length > 0) {
    // The remote server's refusal is SMTP's; expiry (4.4.7) and local failures are the queue's.
    const remote = hop?.type === 'smtp' && !failed.every((r) => / 4\.4\.7 /.test(r.outcome.response));
    track(bus, {
      ...base(failed),
      eventId: 'FAIL',
      source: remote ? 'SMTP' : 'QUEUE',
      ...hopConnector(hop),
      ...(hop ? { detail: queueName(hop) } : {}),
    });
  }
}

function hopConnector(hop: QueuedRecipient['nextHop'] | undefined) {
  return hop?.type === 'smtp' && hop.connector !== undefined ? { connector: hop.connector } : {};
}

/** DSN: a report about `original` was queued as `reportId`, to its sender. */
export function trackReport(
  bus: EventBus,
  report: {
    readonly kind: NotificationKind;
    readonly reportId: string;
    readonly messageId: string;
    readonly subject: string;
    /** The original recipients the report is about. */
    readonly about: ReadonlyArray<string>;
  },
  original: QueuedMessage,
  now: number,
): void {
  const event: TrackingEvent = {
    time: now,
    eventId: 'DSN',
    source: 'DSN',
    internalId: report.reportId,
    messageId: report.messageId,
    sender: '',
    returnPath: '',
    recipients: [original.sender],
    recipientStatus: [`250 2.0.0 Queued (${report.kind} report for ${report.about.join(', ')})`],
    subject: report.subject,
    directionality: 'Originating',
    reference: original.id,
    detail: report.kind,
  };
  track(bus, event);
}

/**
 * THROTTLE: an agent made a session wait (a tarpit) or refused it for now (a 4xx: a rate limit,
 * greylisting). Permanent refusals are not throttling and are not tracked here.
 */
export function trackThrottle(
  bus: EventBus,
  throttled: {
    readonly time: number;
    readonly stage: string;
    readonly session: {
      readonly remoteIp: string;
      readonly helo: string | undefined;
      readonly connector: { readonly name: string };
    };
    readonly sender?: string;
    readonly recipient?: string;
    readonly reason: string;
    readonly status?: string;
  },
): void {
  const { session } = throttled;
  const recipients = throttled.recipient !== undefined ? [throttled.recipient] : [];
  track(bus, {
    time: throttled.time,
    eventId: 'THROTTLE',
    source: 'AGENT',
    clientIp: session.remoteIp,
    ...(session.helo !== undefined ? { clientHostname: session.helo } : {}),
    connector: session.connector.name,
    ...(throttled.sender !== undefined ? { sender: throttled.sender } : {}),
    recipients,
    recipientStatus: recipients.map(() => throttled.status ?? ''),
    detail: `${throttled.reason} (at ${throttled.stage})`,
  });
}
