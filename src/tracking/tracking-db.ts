import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { Directionality, TrackingEvent, TrackingEventId, TrackingSource } from '../observe/events.ts';
import type { StoredTrackingEvent } from './types.ts';

/**
 * The tracking database itself: schema, batch insert, search and purge. It knows nothing of
 * threads; sqlite-tracking-log.ts runs it in worker threads (tracking-worker.ts).
 */

/** PRAGMA user_version of the schema below; a later change adds a migration from this number. */
export const TRACKING_SCHEMA_VERSION = 1;

/**
 * `events` holds one row per event; `event_recipients` one row per distinct recipient of an
 * event, keyed (address, time, seq) so a recipient search is a range scan of its primary key in
 * the time window, already in result order. Every other filter has an index ending in `time`
 * (and, implicitly, the rowid `seq`), so each search reads its rows in (time, seq) order and
 * stops at the page size. The `time` index of event_recipients serves only the purge.
 */
const SCHEMA_V1 = `
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  source TEXT NOT NULL,
  internal_id TEXT,
  message_id TEXT,
  client_ip TEXT,
  client_hostname TEXT,
  server_ip TEXT,
  server_hostname TEXT,
  connector TEXT,
  sender TEXT,
  return_path TEXT,
  recipients TEXT NOT NULL,
  recipient_status TEXT NOT NULL,
  size INTEGER,
  subject TEXT,
  directionality TEXT,
  related_recipient TEXT,
  reference TEXT,
  detail TEXT
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_event_id ON events (event_id, time);
CREATE INDEX events_sender ON events (sender, time);
CREATE INDEX events_message_id ON events (message_id, time);
CREATE INDEX events_internal_id ON events (internal_id, time);
CREATE TABLE event_recipients (
  address TEXT NOT NULL,
  time INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (address, time, seq)
) WITHOUT ROWID;
CREATE INDEX event_recipients_time ON event_recipients (time);
`;

/**
 * The queue store is the durable record of every message; the tracking log is a diagnostic
 * record of what happened to it. Losing the last second of events in a power cut is acceptable,
 * an fsync per batch is not worth its cost: NORMAL in WAL mode syncs only at checkpoints, and
 * the database stays consistent either way.
 */
const PRAGMAS = 'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;';

/** Case-insensitive substring test for the subject filter (SQLite's lower() folds ASCII only). */
const CONTAINS_FUNCTION = 'tracking_contains';

/** A search after validation (tracking-query.ts): every value normalized, the cursor decoded. */
export interface NormalizedQuery {
  readonly start?: number;
  readonly end?: number;
  readonly eventId?: TrackingEventId;
  /** Lower-cased; '' is the null reverse-path. */
  readonly sender?: string;
  /** Lower-cased. */
  readonly recipient?: string;
  /** Without angle brackets. */
  readonly messageId?: string;
  readonly internalId?: string;
  /** Lower-cased. */
  readonly subject?: string;
  readonly limit: number;
  /** Only events after this (time, seq): the position of the previous page's last event. */
  readonly after?: { readonly time: number; readonly seq: number };
}

export interface BuiltSearch {
  readonly sql: string;
  readonly params: SQLInputValue[];
}

/**
 * The SQL of one page. The most selective filter given drives the search through its index
 * (named with INDEXED BY, so the plan does not depend on statistics SQLite may not have):
 * internal id, then Message-ID, recipient, sender, event id, and the time window alone. The
 * others are tested on the rows that index yields. The subject is never indexed: it is a
 * substring test on the rows the other filters and the time window select.
 * One more row than the page is read, to know whether another page follows.
 */
export function buildSearch(q: NormalizedQuery): BuiltSearch {
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  const byRecipient = q.recipient !== undefined && q.internalId === undefined && q.messageId === undefined;
  // The table whose (…, time, seq) order the rows come in: the time window and cursor apply to it.
  const t = byRecipient ? 'r' : 'e';
  let from: string;
  if (byRecipient) {
    // CROSS JOIN keeps event_recipients as the outer loop: SQLite never reorders it.
    from = 'event_recipients r CROSS JOIN events e ON e.seq = r.seq';
    where.push('r.address = ?');
    params.push(q.recipient!);
  } else {
    const index =
      q.internalId !== undefined
        ? 'events_internal_id'
        : q.messageId !== undefined
          ? 'events_message_id'
          : q.sender !== undefined
            ? 'events_sender'
            : q.eventId !== undefined
              ? 'events_event_id'
              : 'events_time';
    from = `events e INDEXED BY ${index}`;
  }
  if (q.start !== undefined) {
    where.push(`${t}.time >= ?`);
    params.push(q.start);
  }
  if (q.end !== undefined) {
    where.push(`${t}.time < ?`);
    params.push(q.end);
  }
  if (q.after) {
    // `time >= ?` is the range bound of the index scan; the OR only skips the few rows at that
    // exact time that the previous page already returned.
    where.push(`${t}.time >= ? AND (${t}.time > ? OR ${t}.seq > ?)`);
    params.push(q.after.time, q.after.time, q.after.seq);
  }
  if (q.internalId !== undefined) {
    where.push('e.internal_id = ?');
    params.push(q.internalId);
  }
  if (q.messageId !== undefined) {
    where.push('e.message_id = ?');
    params.push(q.messageId);
  }
  if (q.recipient !== undefined && !byRecipient) {
    where.push(
      'EXISTS (SELECT 1 FROM event_recipients x WHERE x.address = ? AND x.time = e.time AND x.seq = e.seq)',
    );
    params.push(q.recipient);
  }
  if (q.sender !== undefined) {
    where.push('e.sender = ?');
    params.push(q.sender);
  }
  if (q.eventId !== undefined) {
    where.push('e.event_id = ?');
    params.push(q.eventId);
  }
  if (q.subject !== undefined) {
    where.push(`${CONTAINS_FUNCTION}(e.subject, ?)`);
    params.push(q.subject);
  }
  params.push(q.limit + 1);
  const sql =
    `SELECT e.* FROM ${from}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}` +
    ` ORDER BY ${t}.time, ${t}.seq LIMIT ?`;
  return { sql, params };
}

interface EventRow {
  seq: number;
  time: number;
  event_id: string;
  source: string;
  internal_id: string | null;
  message_id: string | null;
  client_ip: string | null;
  client_hostname: string | null;
  server_ip: string | null;
  server_hostname: string | null;
  connector: string | null;
  sender: string | null;
  return_path: string | null;
  recipients: string;
  recipient_status: string;
  size: number | null;
  subject: string | null;
  directionality: string | null;
  related_recipient: string | null;
  reference: string | null;
  detail: string | null;
}

/** The Message-ID as stored and searched: no angle brackets, no surrounding blanks, case kept. */
export function bareMessageId(messageId: string): string {
  const trimmed = messageId.trim();
  return trimmed.startsWith('<') && trimmed.endsWith('>') ? trimmed.slice(1, -1).trim() : trimmed;
}

export interface TrackingDb {
  /** One transaction for the whole batch; throws (rolled back) when the disk fails. */
  insert(events: ReadonlyArray<TrackingEvent>): void;
  search(query: NormalizedQuery): StoredTrackingEvent[];
  /**
   * One transaction of a purge: removes up to PURGE_CHUNK events with time < before (and as many
   * recipient rows). `done` when nothing older is left; the caller repeats until then, so a
   * large purge never holds the write lock for long, and inserts take turns with it.
   */
  purgeChunk(before: number): { removed: number; done: boolean };
  readonly db: DatabaseSync;
  close(): void;
}

/** Rows deleted per purge transaction. */
export const PURGE_CHUNK = 5000;

/**
 * Opens (creating or migrating) the database. A reader opens it read-only after a writer created
 * it; a database from a newer version is refused rather than misread.
 */
export function openTrackingDb(
  path: string,
  options: {
    readOnly?: boolean /** ms to wait for another connection's lock (default 10 s). */;
    busyTimeout?: number;
  } = {},
): TrackingDb {
  const db = new DatabaseSync(path, { readOnly: options.readOnly ?? false });
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeout ?? 10_000)};`);
    if (!options.readOnly) db.exec(PRAGMAS);
    const { user_version: version } = db.prepare('PRAGMA user_version').get() as { user_version: number };
    if (version > TRACKING_SCHEMA_VERSION) {
      throw new Error(
        `${path} has tracking schema version ${version}, newer than this Ferrymail's ${TRACKING_SCHEMA_VERSION}`,
      );
    }
    if (version < TRACKING_SCHEMA_VERSION) {
      if (options.readOnly) throw new Error(`${path} has no tracking schema yet`);
      db.exec('BEGIN IMMEDIATE');
      try {
        // Version 0 is a new file. Migrations from 1 to later versions go here.
        if (version === 0) db.exec(SCHEMA_V1);
        db.exec(`PRAGMA user_version = ${TRACKING_SCHEMA_VERSION}`);
        db.exec('COMMIT');
      } catch (error) {
        db.exec('ROLLBACK');
        throw error;
      }
    }
    registerTrackingFunctions(db);
  } catch (error) {
    db.close();
    throw error;
  }
  return wrap(db);
}

/** The SQL functions searches use; a connection that only explains a search needs them too. */
export function registerTrackingFunctions(db: DatabaseSync): void {
  db.function(CONTAINS_FUNCTION, { deterministic: true }, (subject, needle) =>
    typeof subject === 'string' && typeof needle === 'string' && subject.toLowerCase().includes(needle)
      ? 1
      : 0,
  );
}

function wrap(db: DatabaseSync): TrackingDb {
  let statements: ReturnType<typeof prepareWrites> | undefined;
  const writes = () => {
    statements ??= prepareWrites(db);
    return statements;
  };
  const searches = new Map<string, StatementSync>();

  return {
    db,
    insert(events) {
      const s = writes();
      db.exec('BEGIN IMMEDIATE');
      try {
        for (const event of events) {
          const { lastInsertRowid } = s.insertEvent.run(...eventRow(event));
          const seq = Number(lastInsertRowid);
          // Distinct addresses, so an event listing one twice is still found once.
          for (const address of new Set(event.recipients.map((r) => r.toLowerCase()))) {
            s.insertRecipient.run(address, event.time, seq);
          }
        }
        db.exec('COMMIT');
      } catch (error) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // The failed statement already ended the transaction.
        }
        throw error;
      }
    },
    search(query) {
      const { sql, params } = buildSearch(query);
      let statement = searches.get(sql);
      if (!statement) {
        statement = db.prepare(sql);
        // A handful of shapes (which filters are set); prepared once each.
        if (searches.size < 256) searches.set(sql, statement);
      }
      return (statement.all(...params) as unknown as EventRow[]).map(storedEvent);
    },
    purgeChunk(before) {
      const s = writes();
      db.exec('BEGIN IMMEDIATE');
      try {
        const removed = Number(s.purgeEvents.run(before, PURGE_CHUNK).changes);
        const recipients = Number(s.purgeRecipients.run(before, PURGE_CHUNK).changes);
        db.exec('COMMIT');
        return { removed, done: removed < PURGE_CHUNK && recipients < PURGE_CHUNK };
      } catch (error) {
        db.exec('ROLLBACK');
        throw error;
      }
    },
    close: () => db.close(),
  };
}

function prepareWrites(db: DatabaseSync) {
  return {
    insertEvent: db.prepare(
      `INSERT INTO events (time, event_id, source, internal_id, message_id, client_ip, client_hostname,
        server_ip, server_hostname, connector, sender, return_path, recipients, recipient_status, size,
        subject, directionality, related_recipient, reference, detail)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    ),
    insertRecipient: db.prepare(
      'INSERT OR IGNORE INTO event_recipients (address, time, seq) VALUES (?, ?, ?)',
    ),
    purgeEvents: db.prepare(
      'DELETE FROM events WHERE seq IN (SELECT seq FROM events INDEXED BY events_time WHERE time < ? LIMIT ?)',
    ),
    purgeRecipients: db.prepare(
      `DELETE FROM event_recipients WHERE (address, time, seq) IN
        (SELECT address, time, seq FROM event_recipients INDEXED BY event_recipients_time WHERE time < ? LIMIT ?)`,
    ),
  };
}

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

function eventRow(e: TrackingEvent): SQLInputValue[] {
  return [
    Math.round(e.time),
    e.eventId,
    e.source,
    orNull(e.internalId),
    e.messageId === undefined ? null : bareMessageId(e.messageId),
    orNull(e.clientIp),
    orNull(e.clientHostname),
    orNull(e.serverIp),
    orNull(e.serverHostname),
    orNull(e.connector),
    e.sender === undefined ? null : e.sender.toLowerCase(),
    orNull(e.returnPath),
    JSON.stringify(e.recipients),
    JSON.stringify(e.recipientStatus),
    e.size === undefined || !Number.isFinite(e.size) ? null : e.size,
    orNull(e.subject),
    orNull(e.directionality),
    orNull(e.relatedRecipient),
    orNull(e.reference),
    orNull(e.detail),
  ];
}

/** A row back to the event, absent fields left out; the Message-ID in its header form `<…>`. */
function storedEvent(row: EventRow): StoredTrackingEvent {
  const event: Record<string, unknown> = {
    seq: row.seq,
    time: row.time,
    eventId: row.event_id as TrackingEventId,
    source: row.source as TrackingSource,
  };
  const optional: Array<[string, unknown]> = [
    ['internalId', row.internal_id],
    ['messageId', row.message_id === null ? null : `<${row.message_id}>`],
    ['clientIp', row.client_ip],
    ['clientHostname', row.client_hostname],
    ['serverIp', row.server_ip],
    ['serverHostname', row.server_hostname],
    ['connector', row.connector],
    ['sender', row.sender],
    ['returnPath', row.return_path],
  ];
  for (const [key, value] of optional) if (value !== null) event[key] = value;
  event.recipients = JSON.parse(row.recipients) as string[];
  event.recipientStatus = JSON.parse(row.recipient_status) as string[];
  const rest: Array<[string, unknown]> = [
    ['size', row.size],
    ['subject', row.subject],
    ['directionality', row.directionality as Directionality | null],
    ['relatedRecipient', row.related_recipient],
    ['reference', row.reference],
    ['detail', row.detail],
  ];
  for (const [key, value] of rest) if (value !== null) event[key] = value;
  return event as unknown as StoredTrackingEvent;
}
