import type { Readable } from 'node:stream';
import type { BodyType, QueuedMessage, QueuedRecipient } from '../queue/types.ts';

/** Which notification: RFC 3461 NOTIFY keywords map onto these (FAILURE, DELAY, SUCCESS). */
export type DsnKind = 'failure' | 'delay' | 'success';

/** RFC 3464 §2.3.3 action-value. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

/** What happened to one recipient, as the report states it. */
export interface DsnRecipientReport {
  readonly recipient: QueuedRecipient;
  /** RFC 3463 enhanced status code, e.g. `5.1.1`. */
  readonly status: string;
  readonly action: DsnAction;
  /** The remote reply or our own reason, e.g. `550 5.1.1 <x>: user unknown`. */
  readonly diagnostic?: string;
  /** Host name of the server that gave the diagnostic. */
  readonly remoteMta?: string;
  /** ms since epoch. */
  readonly lastAttemptAt?: number;
  /** ms since epoch; for delays, when the message expires. */
  readonly willRetryUntil?: number;
}

/** Message-ID and MIME boundary source; injectable so tests get stable output. */
export interface DsnIds {
  /** A Message-ID including the angle brackets. */
  messageId(): string;
  /** A MIME boundary: 1-70 characters of RFC 2046 bchars, not ending in a space. */
  boundary(): string;
}

export interface DsnInput {
  readonly kind: DsnKind;
  /** The message being reported on; its envelope sender receives the report. */
  readonly message: QueuedMessage;
  readonly recipients: ReadonlyArray<DsnRecipientReport>;
  /** Our host name, for Reporting-MTA. */
  readonly reportingMta: string;
  /** The From address, e.g. `postmaster@example.test`. */
  readonly postmaster: string;
  /** ms since epoch: the report's Date. */
  readonly now: number;
  /** The stored message (headers and body); called at most once, and only while the report is read. */
  readonly originalBody: () => Readable;
  /** RET=FULL returns the whole message only up to this size in bytes; default 10 MB. */
  readonly maxFullReturnSize?: number;
  /** A header section returned alone is cut at this many bytes; default 256 KiB. */
  readonly maxReturnedHeaderSize?: number;
  readonly ids?: DsnIds;
}

export interface DsnEnvelopeOut {
  /** Always the null reverse-path, so a report can never cause another report. */
  readonly sender: '';
  readonly recipients: [string];
  /** The report's own body type: it carries the original's 8-bit or binary content when returned in full. */
  readonly bodyType: BodyType;
  /** Set when the original was SMTPUTF8: the report then uses the RFC 6533 `message/global*` types. */
  readonly smtpUtf8: boolean;
}

export interface DsnOutput {
  readonly envelope: DsnEnvelopeOut;
  /** The report's Message-ID and Subject header values, for the queue and tracking. */
  readonly messageId: string;
  readonly subject: string;
  /** Whether the original goes back whole or as its header section only. */
  readonly returns: 'full' | 'headers';
  /** The report's bytes; the original is streamed into it as it is read. */
  readonly message: Readable;
}

/** Thrown for a report that must not be built (programming errors, never network input). */
export class DsnInputError extends Error {
  override readonly name = 'DsnInputError';
}
