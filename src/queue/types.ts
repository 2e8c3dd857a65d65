import type { Readable } from 'node:stream';

/**
 * The queue's domain model and the `QueueStore` contract. Every implementation (the embedded
 * SQLite+files store now, PostgreSQL later) passes the same contract suite in
 * test/queue/store-contract.ts.
 */

/** Where one recipient goes next. */
export type NextHop =
  | { readonly type: 'mailbox'; readonly mailbox: string }
  /**
   * A remote delivery queue: `domain` names it (the recipient domain for DNS routing, the smart
   * hosts for smart-host routing); `connector` is the send connector chosen at categorization,
   * absent when every connector for the domain is too small for the message.
   */
  | { readonly type: 'smtp'; readonly domain: string; readonly connector?: string }
  | { readonly type: 'unreachable'; readonly domain: string };

/** RFC 3461 NOTIFY: absent means the default (failure and delay). */
export type DsnNotify = 'NEVER' | ReadonlyArray<'SUCCESS' | 'FAILURE' | 'DELAY'>;

export interface DsnEnvelope {
  /** RFC 3461 RET. */
  readonly ret?: 'FULL' | 'HDRS';
  /** RFC 3461 ENVID, as received (xtext decoded). */
  readonly envid?: string;
}

export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';

/** What the receiving side knows about a message when it is committed. */
export interface NewMessage {
  /** Envelope sender; '' is the null reverse-path. */
  readonly sender: string;
  readonly recipients: ReadonlyArray<NewRecipient>;
  readonly dsn: DsnEnvelope;
  readonly bodyType: BodyType;
  readonly smtpUtf8: boolean;
  /** Facts for tracking and the queue viewer. */
  readonly origin: MessageOrigin;
  /** Header values captured while receiving (for tracking and search); never the body. */
  readonly messageId?: string;
  readonly subject?: string;
  /** Email authentication on receipt (SPF, DKIM, DMARC, ARC), for rules and tracking; absent when not checked. */
  readonly authResults?: AuthResults;
}

/** RFC 8601 result words (pass, fail, softfail, neutral, none, temperror, permerror, policy…). */
export interface AuthResults {
  /** SPF of the MAIL FROM identity (of HELO for the null sender). */
  readonly spf: string;
  /** SPF of the HELO identity, when it was checked separately. */
  readonly spfHelo?: string;
  /** pass when any signature passed; otherwise the first signature's result; none without one. */
  readonly dkim: string;
  readonly dmarc: string;
  readonly arc: string;
  /** The policy the From domain asks for (none, quarantine, reject), when it publishes one. */
  readonly dmarcPolicy?: string;
  readonly fromDomain?: string;
  /** What this node did because of the DMARC policy. */
  readonly action?: 'reject' | 'quarantine';
}

export interface MessageOrigin {
  readonly connector: string;
  readonly clientIp: string;
  readonly clientHelo: string;
  readonly authUser?: string;
  readonly tls: boolean;
  /** The local address the client connected to (tracking's ServerIp). */
  readonly serverIp?: string;
  /** Made by the node itself (a delivery report), not received from a client. */
  readonly generated?: true;
}

export interface NewRecipient {
  /** The address delivery uses (after alias rewrite and group expansion). */
  readonly address: string;
  /** RFC 3461 ORCPT (`rfc822;addr`), or the address as the client gave it when we rewrote it. */
  readonly orcpt?: string;
  readonly notify?: DsnNotify;
  readonly nextHop: NextHop;
}

/**
 * `suspended`: its message was suspended by an administrator; `poison`: its message crashed the
 * node while being delivered (the Poison queue). Neither is claimed for delivery.
 */
export type RecipientStatus = 'pending' | 'active' | 'suspended' | 'poison' | 'delivered' | 'failed';

export interface QueuedRecipient extends NewRecipient {
  /** Position of the recipient within its message; stable. */
  readonly index: number;
  readonly status: RecipientStatus;
  readonly attempts: number;
  /** ms since epoch; meaningful while pending. */
  readonly nextAttemptAt: number;
  /** The last reply or reason, as an SMTP-style line (`451 4.3.0 ...`). */
  readonly lastResponse?: string;
  readonly updatedAt: number;
  /** A report the sender is owed for this recipient and that is not queued yet. */
  readonly pendingNotification?: NotificationKind;
  /** Set once a delay notice was queued for this recipient (it gets at most one). */
  readonly delayNotified?: true;
}

/** The notification a recipient can be owed; the same words as the DSN kinds (RFC 3461 NOTIFY). */
export type NotificationKind = 'failure' | 'success' | 'delay';

export interface QueuedMessage extends Omit<NewMessage, 'recipients'> {
  readonly id: string;
  readonly receivedAt: number;
  readonly expiresAt: number;
  /** Body size in bytes as stored (including our Received header). */
  readonly size: number;
  readonly recipients: ReadonlyArray<QueuedRecipient>;
}

/** A message body being written while the client sends it; durable only after `commit`. */
export interface BodyWriter {
  /** The queue id the message will have. */
  readonly id: string;
  /** Bytes written so far. */
  readonly size: number;
  /** Resolves when the chunk is handed to the OS; callers await it for back pressure. */
  write(chunk: Buffer): Promise<void>;
  /** Throws the body away (RSET, rejected data, lost connection). Safe to call twice. */
  abort(): Promise<void>;
  /**
   * Puts bytes before everything written so far (a header known only at the end of data, such
   * as Authentication-Results); call before `commit`. Stores without it cannot take such headers.
   */
  prepend?(bytes: Buffer): void;
}

/** The outcome of one delivery attempt for one recipient. */
export type RecipientOutcome =
  | { readonly kind: 'delivered'; readonly response: string }
  | { readonly kind: 'deferred'; readonly response: string; readonly nextAttemptAt: number }
  | { readonly kind: 'failed'; readonly response: string };

export interface RecipientRef {
  readonly messageId: string;
  readonly index: number;
}

/** One recipient's pending notification of one kind. */
export interface NotificationRef extends RecipientRef {
  readonly kind: NotificationKind;
}

/**
 * Reports owed for one message and kind: every recipient of it with that notification pending,
 * so they go out as one report. Held by the caller until completed or released.
 */
export interface NotificationBatch {
  readonly message: QueuedMessage;
  readonly kind: NotificationKind;
  readonly recipients: ReadonlyArray<QueuedRecipient>;
}

/**
 * A unit of delivery work: one message and the recipients of it that are due on one next hop.
 * Every local mailbox counts as one next hop (the mailbox delivery queue); a remote hop is its domain.
 */
export interface DeliveryJob {
  readonly message: QueuedMessage;
  readonly recipients: ReadonlyArray<QueuedRecipient>;
}

export interface ClaimOptions {
  readonly now: number;
  readonly limit: number;
  /** Only recipients whose next hop is of this type. */
  readonly hopType?: NextHop['type'];
  /**
   * How many more jobs of a queue (its queue viewer name, `smtp:example.org`) this claim may
   * hand out; asked at most once per queue and claim, with the hop of its first due row. The
   * due rows of a queue without room are passed over, not claimed, so a destination at its
   * connection limit does not take every delivery slot. Absent: no per-queue limit.
   */
  readonly queueRoom?: (queue: string, hop: NextHop) => number;
}

export interface QueueStore {
  /** Prepare the store (folders, schema) and move recipients left `active` by a crash back to `pending`. */
  open(): Promise<void>;
  close(): Promise<void>;

  /** Start a body; bytes go to disk as they arrive, so a large message never sits in memory. */
  openBody(): Promise<BodyWriter>;
  /**
   * Make the message durable: body fsynced, renamed into place, folder fsynced, queue rows
   * committed. Commits arriving together share one fsync (group commit). Only when this
   * resolves may the server say 250.
   */
  commit(body: BodyWriter, message: NewMessage): Promise<QueuedMessage>;

  /** The stored body, as bytes. */
  readBody(messageId: string): Readable;

  /**
   * Due recipients (pending, nextAttemptAt <= now), marked active and grouped per message and
   * next hop. A recipient is in at most one job until its outcome is recorded.
   */
  claimDue(options: ClaimOptions): Promise<DeliveryJob[]>;
  /** Record outcomes; a message whose recipients are all final has its body removed. */
  recordOutcomes(outcomes: ReadonlyArray<{ ref: RecipientRef; outcome: RecipientOutcome }>): Promise<void>;
  /**
   * The earliest nextAttemptAt among pending recipients not claimed, or undefined when nothing
   * waits. `after`: only those due later than this (a scheduler whose last claim passed over the
   * rows due until then, their queues being full, sleeps until the next new one).
   */
  nextDueAt(hopType?: NextHop['type'], options?: { readonly after?: number }): Promise<number | undefined>;

  getMessage(id: string): Promise<QueuedMessage | undefined>;
  /** Messages with at least one recipient not final, oldest first. */
  listMessages(options?: { limit?: number; after?: string }): Promise<QueuedMessage[]>;
  /**
   * Gives recipients waiting in the Unreachable queue the hop `route` now chooses (a send
   * connector was added for their domain); those still without one stay. They become due at
   * `now`. Returns how many moved.
   */
  rerouteUnreachable(
    route: (recipient: QueuedRecipient, message: QueuedMessage) => NextHop,
    now: number,
  ): Promise<number>;
  /** Recipients by status, for metrics and tests. */
  countRecipients(): Promise<Record<RecipientStatus, number>>;
  /**
   * Recipients due now that a delivery agent can take (mailbox or SMTP) and that are not final:
   * waiting for a delivery slot or being delivered. Counted only up to `atMost`, so the cost is
   * bounded whatever the queue holds. This is the backlog back pressure watches; recipients
   * waiting for their retry time are not in it, so a destination that is down cannot stop
   * inbound mail.
   */
  countDueBacklog(now: number, atMost: number): Promise<number>;
  /** Open, and able to take commits now (its writer is alive): what readiness reports. */
  canCommit(): boolean;

  // ---- Notifications (DSNs). The need for one is written in the transaction that records the
  // outcome causing it, and cleared only by `completeNotifications`: at least once, never lost.
  //
  // `recordOutcomes` sets it: `failed` → 'failure' unless NOTIFY excludes FAILURE; `delivered`
  // with NOTIFY=SUCCESS → 'success' (and a delivered or failed recipient owes no delay notice).
  // A message whose sender is the null reverse-path never owes one. A message stays stored (body
  // included, for the report) while any recipient of it owes a notification.

  /**
   * Pending notifications, oldest message first, grouped per message and kind, at most `limit`
   * groups. Claimed ones are not handed out again until completed or released (or a restart).
   */
  claimNotifications(limit: number): Promise<NotificationBatch[]>;
  /**
   * The reports are queued: clear these notifications (only if still of that kind), mark delay
   * notices as sent, and remove messages that no longer hold anything.
   */
  completeNotifications(refs: ReadonlyArray<NotificationRef>): Promise<void>;
  /** Give claimed notifications back, to be claimed again (the report could not be queued now). */
  releaseNotifications(refs: ReadonlyArray<NotificationRef>): Promise<void>;
  /**
   * Sets a 'delay' notification on recipients not final yet, of messages received at or before
   * `now - delayAfter`, that never had one and whose NOTIFY allows it (default or DELAY; never
   * NEVER or a null sender). Resolves to how many were set; call again while it returns `limit`.
   */
  requestDelayNotices(now: number, delayAfter: number, limit: number): Promise<number>;
  /**
   * Fails pending (not claimed) recipients of messages whose expiresAt <= now with
   * `550 4.4.7 Message expired: <last response>` and a failure notification, as one outcome.
   * Resolves to how many; call again while it returns `limit`.
   */
  expireDue(now: number, limit: number): Promise<number>;
}

/** Thrown by `commit`/`openBody` when the store cannot take the message now (disk full, closing). */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
}
