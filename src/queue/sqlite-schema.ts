/** Bumped when the schema changes; `open()` refuses a database from a newer version. */
export const SCHEMA_VERSION = 4;

/**
 * Version 2: notification state. The recipients index is partial, so commits (whose rows never
 * owe a report) do not write to it; the message indexes let the delay and expiry sweeps read
 * only the messages old enough to matter.
 */
const INDEXES_V2 = `
CREATE INDEX IF NOT EXISTS recipients_notify ON recipients (message_id, idx) WHERE notify_pending IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at, id);
CREATE INDEX IF NOT EXISTS messages_expires ON messages (expires_at);
`;

/**
 * Version 4: the queue viewer. Recipient statuses gain held (its queue is suspended),
 * poison (its message crashed the node) next to suspended (its message is): claims read
 * only pending, so none of them costs a claim anything. The indexes hold only recipients not
 * final, so delivered ones leave them: a page of a queue, of a recipient's or a sender's
 * messages is a range scan in id order, and the queue summary one pass over a covering index.
 */
const OPEN = `status IN ('pending', 'held', 'suspended', 'poison')`;
const INDEXES_V4 = `
CREATE TABLE IF NOT EXISTS suspended_queues (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_queue ON recipients (queue, message_id, status, next_attempt_at) WHERE ${OPEN};
CREATE INDEX IF NOT EXISTS recipients_address ON recipients (lower(address), message_id) WHERE ${OPEN};
CREATE INDEX IF NOT EXISTS messages_sender ON messages (lower(sender), id);
`;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  body_type TEXT NOT NULL,
  smtputf8 INTEGER NOT NULL,
  dsn_ret TEXT,
  dsn_envid TEXT,
  origin TEXT NOT NULL,
  message_id TEXT,
  subject TEXT,
  body_file INTEGER NOT NULL,
  -- Email authentication results (JSON), absent when the message was not checked.
  auth_results TEXT,
  -- Bytes that come before a file body (headers known only at the end of data); inline bodies hold them.
  body_prefix BLOB,
  -- Times the node crashed while this message was being delivered (the in-flight journal says so).
  crash_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS message_bodies (
  id TEXT PRIMARY KEY,
  data BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS recipients (
  message_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  address TEXT NOT NULL,
  orcpt TEXT,
  notify TEXT,
  hop_type TEXT NOT NULL,
  hop_target TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  last_response TEXT,
  updated_at INTEGER NOT NULL,
  -- A report the sender is owed ('failure' | 'success' | 'delay'), set in the transaction that
  -- records the outcome and cleared only once the report is queued: a crash never loses it.
  notify_pending TEXT,
  -- 1 once a delay notice was queued for this recipient (it gets at most one).
  delay_notified INTEGER NOT NULL DEFAULT 0,
  -- The queue viewer's queue of the hop (queueName in queue-name.ts): mailbox,
  -- smtp:<domain>, unreachable. Stored, not computed, so one index serves the viewer.
  queue TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;

-- Claims read due recipients in this order and stop after a few: the index must give that
-- order itself, or every claim would sort the whole backlog.
CREATE INDEX IF NOT EXISTS recipients_due ON recipients (status, next_attempt_at, message_id, idx);
CREATE INDEX IF NOT EXISTS recipients_hop_due ON recipients (status, hop_type, next_attempt_at, message_id, idx);
${INDEXES_V2}${INDEXES_V4}`;

/**
 * Version 3: email authentication. Brings a version 2 database to version 3 in place; run inside
 * a transaction, before SCHEMA.
 */
export const MIGRATE_V2_TO_V3 = `
ALTER TABLE messages ADD COLUMN auth_results TEXT;
ALTER TABLE messages ADD COLUMN body_prefix BLOB;
`;

/** Brings a version 1 database to version 2 in place; run inside a transaction, before SCHEMA. */
export const MIGRATE_V1_TO_V2 = `
ALTER TABLE recipients ADD COLUMN notify_pending TEXT;
ALTER TABLE recipients ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
`;

/**
 * Brings a version 3 database to version 4 in place; run inside a transaction, before SCHEMA.
 * The queue column is filled by the same rule as queueName() in queue-name.ts.
 */
export const MIGRATE_V3_TO_V4 = `
ALTER TABLE messages ADD COLUMN crash_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN queue TEXT NOT NULL DEFAULT '';
UPDATE recipients SET queue = CASE hop_type
  WHEN 'smtp' THEN 'smtp:' || CASE WHEN instr(hop_target, char(9)) > 0
    THEN substr(hop_target, 1, instr(hop_target, char(9)) - 1) ELSE hop_target END
  ELSE hop_type END;
`;

/**
 * Counting reads, run in the reader thread (sqlite-reader-worker.ts): each reads every waiting
 * recipient's index entry once. Per queue: recipients not final (Poison ones excepted, they are
 * the Poison queue's), their messages, those waiting for delivery, and the earliest of those.
 */
export const QUEUE_TOTALS_SQL = `SELECT queue, SUM(status <> 'poison') AS recipients,
  COUNT(DISTINCT CASE WHEN status <> 'poison' THEN message_id END) AS messages,
  SUM(status = 'pending') AS pending,
  MIN(CASE WHEN status = 'pending' THEN next_attempt_at END) AS next_due
  FROM recipients INDEXED BY recipients_queue
  WHERE status IN ('pending', 'held', 'suspended', 'poison') GROUP BY queue`;

/** Recipients by status (QueueStore.countRecipients). */
export const STATUS_COUNTS_SQL = 'SELECT status, COUNT(*) AS n FROM recipients GROUP BY status';
