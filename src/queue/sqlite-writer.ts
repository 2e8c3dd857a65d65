import { DatabaseSync, type StatementSync } from 'node:sqlite';

/**
 * The write half of the SQLite queue store. It runs in a worker thread (sqlite-writer-worker.ts)
 * so that the fsync of each group commit never blocks the event loop that serves SMTP sessions:
 * while one batch is being made durable, the next one gathers.
 */

export type SqlValue = string | number | null | Uint8Array;

export interface InsertRow {
  /** id, sender, received_at, expires_at, size, body_type, smtputf8, dsn_ret, dsn_envid, origin, message_id, subject, body_file, auth_results, body_prefix */
  readonly message: SqlValue[];
  readonly inlineBody: Uint8Array | null;
  /** Per recipient: message_id, idx, address, orcpt, notify, hop_type, hop_target, next_attempt_at, updated_at */
  readonly recipients: SqlValue[][];
}

export type OutcomeRow =
  | {
      readonly messageId: string;
      readonly index: number;
      readonly status: 'delivered' | 'failed';
      readonly response: string;
      readonly now: number;
    }
  | {
      readonly messageId: string;
      readonly index: number;
      readonly status: 'deferred';
      readonly response: string;
      readonly now: number;
      readonly nextAttemptAt: number;
    };

/** A notification queued (or, for `delay`, a delay notice requested, or a recipient expired). */
export interface NotificationRow {
  readonly messageId: string;
  readonly index: number;
  readonly kind: 'failure' | 'success' | 'delay';
}

/** A pending recipient of an expired message: failed now, with a failure notification. */
export interface ExpiryRow {
  readonly messageId: string;
  readonly index: number;
  readonly now: number;
}

/** A recipient of the Unreachable queue that a send connector now serves. */
export interface RerouteRow {
  readonly messageId: string;
  readonly index: number;
  readonly hopType: string;
  readonly hopTarget: string;
  readonly now: number;
}

export interface WriteBatch {
  readonly inserts: ReadonlyArray<InsertRow>;
  readonly outcomes: ReadonlyArray<OutcomeRow>;
  /** Notifications whose report is queued: cleared. */
  readonly completions?: ReadonlyArray<NotificationRow>;
  /** Recipients that now owe a delay notice. */
  readonly delayRequests?: ReadonlyArray<NotificationRow>;
  readonly expirations?: ReadonlyArray<ExpiryRow>;
  readonly reroutes?: ReadonlyArray<RerouteRow>;
}

export interface WriteResult {
  /** Messages that became complete and were deleted, whose bodies are files to remove now. */
  readonly removedFileBodies: string[];
}

export const PRAGMAS = 'PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;';

export function openWriter(path: string, maxDatabaseSize?: number) {
  const db = new DatabaseSync(path);
  db.exec(PRAGMAS);
  if (maxDatabaseSize !== undefined) {
    // SQLite then fails a transaction that would grow past the cap with SQLITE_FULL, which the
    // store reports like a full disk.
    const { page_size } = db.prepare('PRAGMA page_size').get() as { page_size: number };
    db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(maxDatabaseSize / page_size))}`);
  }
  const p = (sql: string): StatementSync => db.prepare(sql);
  const s = {
    insertMessage: p(
      `INSERT INTO messages (id, sender, received_at, expires_at, size, body_type, smtputf8, dsn_ret, dsn_envid,
        origin, message_id, subject, body_file, auth_results, body_prefix) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    ),
    insertInlineBody: p('INSERT INTO message_bodies (id, data) VALUES (?, ?)'),
    insertRecipient: p(
      `INSERT INTO recipients (message_id, idx, address, orcpt, notify, hop_type, hop_target, status, attempts,
        next_attempt_at, updated_at) VALUES (?,?,?,?,?,?,?,'pending',0,?,?)`,
    ),
    // Attempts count recorded outcomes, not claims: an attempt cut short by a crash is not counted.
    // The notification the outcome calls for is written in the same statement (RFC 3461: a
    // failure unless NOTIFY excludes it, a success only when asked for; a null sender never
    // gets one), so a crash cannot separate "failed" from "the sender must be told".
    setFinal: p(
      `UPDATE recipients SET status = ?1, last_response = ?2, updated_at = ?3, attempts = attempts + 1,
        notify_pending = CASE
          WHEN ?1 = 'failed' AND (notify IS NULL OR instr(notify, 'FAILURE') > 0)
            AND (SELECT sender FROM messages WHERE id = ?4) <> '' THEN 'failure'
          WHEN ?1 = 'delivered' AND instr(notify, 'SUCCESS') > 0
            AND (SELECT sender FROM messages WHERE id = ?4) <> '' THEN 'success'
          ELSE NULL END
        WHERE message_id = ?4 AND idx = ?5`,
    ),
    setExpired: p(
      `UPDATE recipients SET status = 'failed', updated_at = ?1,
        last_response = '550 4.4.7 Message expired: ' || coalesce(last_response, 'no delivery attempt succeeded'),
        notify_pending = CASE
          WHEN (notify IS NULL OR instr(notify, 'FAILURE') > 0)
            AND (SELECT sender FROM messages WHERE id = ?2) <> '' THEN 'failure'
          ELSE NULL END
        WHERE message_id = ?2 AND idx = ?3 AND status = 'pending'`,
    ),
    // Only while it still waits in the Unreachable queue: anything else happened to it meanwhile wins.
    reroute: p(
      `UPDATE recipients SET hop_type = ?, hop_target = ?, next_attempt_at = ?, updated_at = ?
        WHERE message_id = ? AND idx = ? AND status = 'pending' AND hop_type = 'unreachable'`,
    ),
    completeNotification: p(
      `UPDATE recipients SET notify_pending = NULL,
        delay_notified = CASE WHEN ?1 = 'delay' THEN 1 ELSE delay_notified END
        WHERE message_id = ?2 AND idx = ?3 AND notify_pending = ?1`,
    ),
    requestDelay: p(
      `UPDATE recipients SET notify_pending = 'delay'
        WHERE message_id = ? AND idx = ? AND status = 'pending' AND notify_pending IS NULL AND delay_notified = 0`,
    ),
    setDeferred: p(
      `UPDATE recipients SET status = 'pending', next_attempt_at = ?, last_response = ?, updated_at = ?,
        attempts = attempts + 1 WHERE message_id = ? AND idx = ?`,
    ),
    // A message is kept while a recipient is not final or still owes its sender a report.
    countOpen: p(
      `SELECT COUNT(*) AS n FROM recipients WHERE message_id = ?
        AND (status IN ('pending', 'active', 'suspended') OR notify_pending IS NOT NULL)`,
    ),
    bodyFile: p('SELECT body_file FROM messages WHERE id = ?'),
    deleteRecipients: p('DELETE FROM recipients WHERE message_id = ?'),
    deleteInlineBody: p('DELETE FROM message_bodies WHERE id = ?'),
    deleteMessage: p('DELETE FROM messages WHERE id = ?'),
  };

  /** One transaction, so one fsync, for the whole batch. Throws (and rolls back) on failure. */
  function write(batch: WriteBatch): WriteResult {
    const removedFileBodies: string[] = [];
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const row of batch.inserts) {
        s.insertMessage.run(...row.message);
        if (row.inlineBody) s.insertInlineBody.run(row.message[0]!, row.inlineBody);
        for (const r of row.recipients) s.insertRecipient.run(...r);
      }
      const touched = new Set<string>();
      for (const o of batch.outcomes) {
        if (o.status === 'deferred')
          s.setDeferred.run(o.nextAttemptAt, o.response, o.now, o.messageId, o.index);
        else s.setFinal.run(o.status, o.response, o.now, o.messageId, o.index);
        touched.add(o.messageId);
      }
      for (const e of batch.expirations ?? []) {
        s.setExpired.run(e.now, e.messageId, e.index);
        touched.add(e.messageId);
      }
      for (const d of batch.delayRequests ?? []) s.requestDelay.run(d.messageId, d.index);
      for (const r of batch.reroutes ?? [])
        s.reroute.run(r.hopType, r.hopTarget, r.now, r.now, r.messageId, r.index);
      for (const c of batch.completions ?? []) {
        s.completeNotification.run(c.kind, c.messageId, c.index);
        touched.add(c.messageId);
      }
      for (const id of touched) {
        if ((s.countOpen.get(id) as { n: number }).n > 0) continue;
        const row = s.bodyFile.get(id) as { body_file: number } | undefined;
        if (!row) continue;
        if (row.body_file) removedFileBodies.push(id);
        s.deleteRecipients.run(id);
        s.deleteInlineBody.run(id);
        s.deleteMessage.run(id);
      }
      db.exec('COMMIT');
    } catch (error) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // Nothing to roll back.
      }
      throw error;
    }
    return { removedFileBodies };
  }

  return { write, close: () => db.close() };
}
