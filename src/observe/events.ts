/**
 * What happens in a node, as typed events on one bus. Emitters (receive sessions, the submission
 * sink, the scheduler, the notifier, queue administration) know nothing of who listens; the
 * message tracking log (src/tracking/) and the metrics (src/observe/metrics.ts) subscribe.
 * Listeners run synchronously and must be cheap; one that throws is logged and never reaches
 * the emitter, so observing can never break mail flow.
 */
import type { Logger } from '../core/logger.ts';

/** Exchange's message tracking event ids (../shared/reference/exchange-transport.md). */
export const TRACKING_EVENTS = [
  'RECEIVE',
  'RESOLVE',
  'EXPAND',
  'REDIRECT',
  'SEND',
  'DELIVER',
  'DEFER',
  'FAIL',
  'DSN',
  'DROP',
  'POISONMESSAGE',
  'THROTTLE',
  'ADMIN',
] as const;
export type TrackingEventId = (typeof TRACKING_EVENTS)[number];

/** The component that logged the event (Exchange's Source field). */
export type TrackingSource = 'SMTP' | 'ROUTING' | 'QUEUE' | 'MAILBOX' | 'DSN' | 'AGENT' | 'ADMIN';

/** Incoming: from outside the organisation; Originating: from an authenticated or internal sender. */
export type Directionality = 'Incoming' | 'Originating';

/** One message tracking event (Get-MessageTrackingLog's fields). */
export interface TrackingEvent {
  /** ms since epoch. */
  readonly time: number;
  readonly eventId: TrackingEventId;
  readonly source: TrackingSource;
  /** The queue id of the message (Exchange's InternalMessageId). */
  readonly internalId?: string;
  /** The Message-ID header, as received. */
  readonly messageId?: string;
  readonly clientIp?: string;
  readonly clientHostname?: string;
  readonly serverIp?: string;
  readonly serverHostname?: string;
  /** The receive connector (RECEIVE) or send connector (SEND) involved. */
  readonly connector?: string;
  /** Envelope sender ('' is the null reverse-path). */
  readonly sender?: string;
  /** Return path (the envelope sender; differs from `sender` only for reports we generate). */
  readonly returnPath?: string;
  readonly recipients: ReadonlyArray<string>;
  /** Per recipient, in the order of `recipients`: the reply or reason (`250 2.0.0 ...`). */
  readonly recipientStatus: ReadonlyArray<string>;
  readonly size?: number;
  /** Absent when subject logging is off. */
  readonly subject?: string;
  readonly directionality?: Directionality;
  /** RESOLVE/EXPAND/REDIRECT: the address before; DSN: the id of the original message; ADMIN: the account. */
  readonly relatedRecipient?: string;
  readonly reference?: string;
  /** Free text: ADMIN's action, THROTTLE's reason, DEFER/FAIL's hop. */
  readonly detail?: string;
}

/** Things metrics count that are not message tracking events. */
export type ProtocolEvent =
  | { readonly kind: 'session'; readonly connector: string; readonly phase: 'open' | 'close' }
  | {
      readonly kind: 'tls';
      readonly connector: string;
      readonly direction: 'receive' | 'send';
      readonly outcome: 'established' | 'failed';
      /** TLSv1.2, TLSv1.3 */
      readonly protocol?: string;
    }
  | {
      readonly kind: 'auth';
      readonly connector: string;
      readonly mechanism: string;
      readonly outcome: 'success' | 'failure' | 'locked';
    }
  | {
      /** A delivery finished: latency is from receipt to this final outcome. */
      readonly kind: 'delivery-latency';
      readonly hop: 'mailbox' | 'smtp';
      readonly seconds: number;
    };

export type NodeEvent = { readonly kind: 'track'; readonly event: TrackingEvent } | ProtocolEvent;

export type NodeEventListener = (event: NodeEvent) => void;

export interface EventBus {
  emit(event: NodeEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(listener: NodeEventListener): () => void;
}

export function createEventBus(logger?: Logger): EventBus {
  const listeners = new Set<NodeEventListener>();
  return {
    emit(event) {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (error) {
          logger?.error({ err: error, event: event.kind }, 'event listener failed');
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** A bus nobody listens to, for components built without one (unit tests). */
export const nullEventBus: EventBus = { emit: () => {}, subscribe: () => () => {} };

/** Shorthand for emitting a tracking event. */
export function track(bus: EventBus, event: TrackingEvent): void {
  bus.emit({ kind: 'track', event });
}
