import type { Readable } from 'node:stream';
import type { QueuedMessage } from './types.ts';

/**
 * The queue viewer's model (Exchange's Get-Queue / Get-Message and their operations), over the
 * queue store. Queue names are stable strings usable in URLs once encoded:
 * - `mailbox`                  local mailbox delivery
 * - `smtp:<domain or hosts>`   one remote next hop (a recipient domain, or a smart-host list)
 * - `unreachable`              recipients whose domain no send connector serves
 * - `poison`                   messages that crashed the node while being processed
 */
export type QueueDeliveryType =
  | 'MailboxDelivery'
  | 'DnsConnectorDelivery'
  | 'SmartHostConnectorDelivery'
  | 'Unreachable'
  | 'Poison';

/** Active: deliveries in progress; Ready: due now; Retry: waiting after a failure; Suspended: by an administrator. */
export type QueueStatus = 'Active' | 'Ready' | 'Retry' | 'Suspended';

export interface QueueSummary {
  /** `mailbox`, `smtp:example.org`, `unreachable`, `poison`. */
  readonly name: string;
  readonly deliveryType: QueueDeliveryType;
  /** The domain or smart-host list; empty for mailbox, unreachable and poison. */
  readonly nextHop: string;
  /** The send connector of the hop, when one was chosen. */
  readonly connector?: string;
  readonly status: QueueStatus;
  readonly messageCount: number;
  readonly recipientCount: number;
  /** ms since epoch of the earliest pending recipient. */
  readonly nextRetryAt?: number;
  /** The newest non-2xx response of the queue's recipients. */
  readonly lastError?: string;
}

/** Message status as the viewer shows it (derived from its recipients). */
export type MessageStatus = 'Active' | 'Ready' | 'Retry' | 'Suspended' | 'Poison';

export interface MessageFilter {
  /** Only messages with a recipient in this queue. */
  readonly queue?: string;
  readonly status?: MessageStatus;
  /** Exact envelope sender, case-insensitive. */
  readonly sender?: string;
  /** Exact recipient address, case-insensitive. */
  readonly recipient?: string;
  /** Substring of the subject, case-insensitive. */
  readonly subject?: string;
  /** Messages received at or after / before (ms since epoch). */
  readonly receivedAfter?: number;
  readonly receivedBefore?: number;
  /** Page size (default 100, at most 1000). */
  readonly limit?: number;
  /** The queue id after which the page starts (the last id of the previous page). */
  readonly after?: string;
}

export interface QueuedMessageView extends QueuedMessage {
  readonly status: MessageStatus;
  /** Queues its undelivered recipients are in. */
  readonly queues: ReadonlyArray<string>;
  /** Times this message was being processed when the node crashed. */
  readonly crashCount: number;
}

/** An unknown queue or message, or an operation that does not apply (release a message not in Poison). */
export class QueueAdminError extends Error {
  override readonly name = 'QueueAdminError';
  readonly code: 'not-found' | 'conflict' | 'invalid';
  constructor(code: 'not-found' | 'conflict' | 'invalid', message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * Administrative access to the queue. Every change is durable when the promise resolves; none
 * loses a message silently (remove is explicit and says whether an NDR goes out).
 */
export interface QueueAdmin {
  listQueues(): Promise<QueueSummary[]>;
  getQueue(name: string): Promise<QueueSummary | undefined>;
  listMessages(filter?: MessageFilter): Promise<QueuedMessageView[]>;
  getMessage(id: string): Promise<QueuedMessageView | undefined>;

  /** Makes every waiting recipient of the queue due now; resolves to how many. */
  retryQueue(name: string): Promise<number>;
  /** A suspended queue is not delivered (its messages stay); survives restarts. */
  suspendQueue(name: string): Promise<void>;
  resumeQueue(name: string): Promise<void>;

  /** Its pending recipients become `suspended`; in-progress ones finish their attempt first. */
  suspendMessage(id: string): Promise<void>;
  resumeMessage(id: string): Promise<void>;
  /**
   * Removes the message. With `ndr`, every undelivered recipient fails with
   * `550 5.7.1 Message deleted by an administrator` and the sender gets an NDR as for any failure
   * (NOTIFY permitting); without, it is dropped (a DROP tracking event).
   */
  removeMessage(id: string, options: { ndr: boolean }): Promise<void>;
  /** The stored message (headers and body) as an RFC 5322 `.eml` stream. */
  exportMessage(id: string): Promise<Readable>;
  /** Routes its undelivered recipients again (config may have changed) and makes them due now. */
  resubmitMessage(id: string): Promise<void>;
  /** Poison queue: back to delivery, crash count cleared. */
  releasePoisonMessage(id: string): Promise<void>;
}
