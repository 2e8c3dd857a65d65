import type { Readable } from 'node:stream';

/**
 * The queue's domain model and the `QueueStore` contract. Every implementation (the embedded
 * SQLite+files store now, PostgreSQL later) passes the same contract suite in
 * test/queue/store-contract.ts.
 */

/** Where one recipient goes next. */
export type NextHop =
  | { readonly type: 'mailbox'; readonly mailbox: string }
  | { readonly type: 'smtp'; readonly domain: string }
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
}

export interface MessageOrigin {
  readonly connector: string;
  readonly clientIp: string;
  readonly clientHelo: string;
  readonly authUser?: string;
  readonly tls: boolean;
}

export interface NewRecipient {
  /** The address delivery uses (after alias rewrite and group expansion). */
  readonly address: string;
  /** RFC 3461 ORCPT (`rfc822;addr`), or the address as the client gave it when we rewrote it. */
  readonly orcpt?: string;
  readonly notify?: DsnNotify;
  readonly nextHop: NextHop;
}

export type RecipientStatus = 'pending' | 'active' | 'suspended' | 'delivered' | 'failed';

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
}

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
  /** The earliest nextAttemptAt among pending recipients, or undefined when nothing waits. */
  nextDueAt(hopType?: NextHop['type']): Promise<number | undefined>;

  getMessage(id: string): Promise<QueuedMessage | undefined>;
  /** Messages with at least one recipient not final, oldest first. */
  listMessages(options?: { limit?: number; after?: string }): Promise<QueuedMessage[]>;
  /** Recipients by status, for metrics and tests. */
  countRecipients(): Promise<Record<RecipientStatus, number>>;
}

/** Thrown by `commit`/`openBody` when the store cannot take the message now (disk full, closing). */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
}
