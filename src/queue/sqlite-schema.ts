/** Bumped when the schema changes; `open()` refuses a database from a newer version. */
export const SCHEMA_VERSION = 1;

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
  body_file INTEGER NOT NULL
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
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;

-- Claims read due recipients in this order and stop after a few: the index must give that
-- order itself, or every claim would sort the whole backlog.
CREATE INDEX IF NOT EXISTS recipients_due ON recipients (status, next_attempt_at, message_id, idx);
CREATE INDEX IF NOT EXISTS recipients_hop_due ON recipients (status, hop_type, next_attempt_at, message_id, idx);
`;
