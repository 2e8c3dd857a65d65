import { TRACKING_EVENTS, type TrackingEventId } from '../observe/events.ts';
import { bareMessageId, type NormalizedQuery } from './tracking-db.ts';
import { type TrackingQuery, TrackingQueryError } from './types.ts';

/** Validation of a search before it reaches the database: every mistake gets its own message. */

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 5000;

const EVENT_IDS = new Set<string>(TRACKING_EVENTS);

export function normalizeQuery(query: TrackingQuery): NormalizedQuery {
  const limit = query.limit ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new TrackingQueryError(`limit must be a whole number from 1 to ${MAX_LIMIT}, got ${String(limit)}`);
  }
  const start = time('start', query.start);
  const end = time('end', query.end);
  if (start !== undefined && end !== undefined && start > end) {
    throw new TrackingQueryError(
      `start (${new Date(start).toISOString()}) is after end (${new Date(end).toISOString()})`,
    );
  }
  const q: {
    -readonly [K in keyof NormalizedQuery]: NormalizedQuery[K];
  } = { limit };
  if (start !== undefined) q.start = start;
  if (end !== undefined) q.end = end;
  if (query.eventId !== undefined) {
    const id = text('eventId', query.eventId).trim().toUpperCase();
    if (!EVENT_IDS.has(id)) {
      throw new TrackingQueryError(
        `eventId must be one of ${TRACKING_EVENTS.join(', ')}, got ${JSON.stringify(query.eventId)}`,
      );
    }
    q.eventId = id as TrackingEventId;
  }
  if (query.sender !== undefined) {
    // '' and '<>' both name the null reverse-path (bounces and reports).
    q.sender = address(text('sender', query.sender));
  }
  if (query.recipient !== undefined) {
    q.recipient = address(text('recipient', query.recipient));
    if (q.recipient === '') throw new TrackingQueryError('recipient is empty');
  }
  if (query.messageId !== undefined) {
    q.messageId = bareMessageId(text('messageId', query.messageId));
    if (q.messageId === '') throw new TrackingQueryError('messageId is empty');
  }
  if (query.internalId !== undefined) {
    q.internalId = text('internalId', query.internalId).trim();
    if (q.internalId === '') throw new TrackingQueryError('internalId is empty');
  }
  if (query.subject !== undefined) {
    // An empty substring would match everything: no filter.
    const subject = text('subject', query.subject).toLowerCase();
    if (subject !== '') q.subject = subject;
  }
  if (query.cursor !== undefined) q.after = decodeCursor(text('cursor', query.cursor));
  return q;
}

/** The position after an event, opaque to callers: base64url of `time:seq`. */
export function encodeCursor(position: { time: number; seq: number }): string {
  return Buffer.from(`${position.time}:${position.seq}`).toString('base64url');
}

function decodeCursor(cursor: string): { time: number; seq: number } {
  const decoded = Buffer.from(cursor, 'base64url').toString('latin1');
  const m = /^(-?\d{1,16}):(\d{1,16})$/.exec(decoded);
  // Base64url decoding skips characters it does not know; only a cursor we made re-encodes the same.
  if (!m || encodeCursor({ time: Number(m[1]), seq: Number(m[2]) }) !== cursor) {
    throw new TrackingQueryError(
      `cursor ${JSON.stringify(cursor.length > 40 ? `${cursor.slice(0, 40)}…` : cursor)} is not one this log returned; pass the nextCursor of the previous page`,
    );
  }
  return { time: Number(m[1]), seq: Number(m[2]) };
}

function time(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TrackingQueryError(`${name} must be a time in ms since the epoch, got ${String(value)}`);
  }
  return value;
}

function text(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new TrackingQueryError(`${name} must be text, got ${typeof value}`);
  return value;
}

function address(value: string): string {
  const trimmed = value.trim();
  const bare = trimmed.startsWith('<') && trimmed.endsWith('>') ? trimmed.slice(1, -1).trim() : trimmed;
  return bare.toLowerCase();
}
