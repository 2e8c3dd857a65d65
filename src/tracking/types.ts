import type { TrackingEvent, TrackingEventId } from '../observe/events.ts';

/** A search of the message tracking log (Get-MessageTrackingLog's parameters). All filters AND. */
export interface TrackingQuery {
  /** ms since epoch, inclusive. */
  readonly start?: number;
  /** ms since epoch, exclusive. */
  readonly end?: number;
  readonly eventId?: TrackingEventId;
  /** Exact envelope sender (case-insensitive). */
  readonly sender?: string;
  /** Exact recipient address (case-insensitive); matches events that list it among their recipients. */
  readonly recipient?: string;
  /** The Message-ID header, with or without angle brackets. */
  readonly messageId?: string;
  /** The queue id. */
  readonly internalId?: string;
  /** Substring of the subject (case-insensitive). */
  readonly subject?: string;
  /** At most this many events (default 100, at most 5000). */
  readonly limit?: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
}

export interface StoredTrackingEvent extends TrackingEvent {
  /** A stable id of the stored event. */
  readonly seq: number;
}

export interface TrackingPage {
  /** Oldest first. */
  readonly events: ReadonlyArray<StoredTrackingEvent>;
  /** Present when more events match. */
  readonly nextCursor?: string;
}

/**
 * The node's message tracking log: written from the event bus, searched by the admin API and
 * the CLI, old events removed after the retention period.
 */
export interface TrackingLog {
  /** Queues the event for writing (batched); never throws, never blocks mail flow. */
  record(event: TrackingEvent): void;
  /** Everything recorded before this call is searchable once it resolves. */
  flush(): Promise<void>;
  search(query: TrackingQuery): Promise<TrackingPage>;
  /** Removes events older than `before`; resolves to how many. */
  purge(before: number): Promise<number>;
  close(): Promise<void>;
}

/** A malformed query (bad cursor, limit out of range): the admin API answers 400 with the message. */
export class TrackingQueryError extends Error {
  override readonly name = 'TrackingQueryError';
}
