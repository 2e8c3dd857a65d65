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
  /** Per recipient: message_id, idx, address, orcpt, notify, hop_type, hop_target, next_attempt_at, updated_at, queue */
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
  readonly queue: string;
  readonly now: number;
}

/**
 * A queue viewer operation (src/queue/admin.ts). Each changes rows only in the states it names,
 * so whatever happened to a recipient meanwhile (an outcome, an expiry) wins; the number of
 * rows it changed comes back in `adminChanges`.
 */
export type AdminRow =
  | { readonly op: 'suspendQueue' | 'resumeQueue'; readonly queue: string }
  | { readonly op: 'retryQueue'; readonly queue: string; readonly now: number }
  | {
      readonly op: 'suspendMessage' | 'resumeMessage' | 'releasePoison' | 'removeMessage';
      readonly messageId: string;
      readonly now: number;
    }
  /** Resubmit: a new hop for one undelivered recipient, due now. */
  | {
      readonly op: 'rehop';
      readonly messageId: string;
      readonly index: number;
      readonly hopType: string;
      readonly hopTarget: string;
      readonly queue: string;
      readonly now: number;
    };

export interface WriteBatch {
  readonly inserts: ReadonlyArray<InsertRow>;
  readonly outcomes: ReadonlyArray<OutcomeRow>;
  /** Notifications whose report is queued: cleared. */
  readonly completions?: ReadonlyArray<NotificationRow>;
  /** Recipients that now owe a delay notice. */
  readonly delayRequests?: ReadonlyArray<NotificationRow>;
  readonly expirations?: ReadonlyArray<ExpiryRow>;
  readonly reroutes?: ReadonlyArray<RerouteRow>;
  readonly admin?: ReadonlyArray<AdminRow>;
}

export interface WriteResult {
  /** Messages that became complete and were deleted, whose bodies are files to remove now. */
  readonly removedFileBodies: string[];
  /** Rows changed by each `admin` entry, in order. */
  readonly adminChanges: number[];
}

/** Recipient states that are not final: the message stays while one of its recipients is in one. */
const OPEN_STATES = `('pending', 'active', 'held', 'suspended', 'poison')`;

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
  // Queues an administrator suspended. Every write that makes a recipient wait for delivery asks
  // `queue_status(queue)`, so one that lands in a suspended queue is `held`, never `pending`:
  // claims read only `pending` rows and need not know about suspension at all.
  const suspended = new Set(
    (db.prepare('SELECT name FROM suspended_queues').all() as Array<{ name: string }>).map((r) => r.name),
  );
  db.function('queue_status', { deterministic: false }, (queue) =>
    suspended.has(String(queue)) ? 'held' : 'pending',
  );
  const p = (sql: string): StatementSync => db.prepare(sql);
  const s = {
    insertMessage: p(
      `INSERT INTO messages (id, sender, received_at, expires_at, size, body_type, smtputf8, dsn_ret, dsn_envid,
        origin, message_id, subject, body_file, auth_results, body_prefix) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    ),
    insertInlineBody: p('INSERT INTO message_bodies (id, data) VALUES (?, ?)'),
    insertRecipient: p(
      `INSERT INTO recipients (message_id, idx, address, orcpt, notify, hop_type, hop_target, status, attempts,
        next_attempt_at, updated_at, queue) VALUES (?1,?2,?3,?4,?5,?6,?7,queue_status(?10),0,?8,?9,?10)`,
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
      `UPDATE recipients SET hop_type = ?1, hop_target = ?2, next_attempt_at = ?3, updated_at = ?4,
        queue = ?7, status = queue_status(?7)
        WHERE message_id = ?5 AND idx = ?6 AND status = 'pending' AND hop_type = 'unreachable'`,
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
      // A recipient suspended (or its queue) while it was being attempted waits that way now.
      `UPDATE recipients SET status = CASE WHEN status = 'suspended' THEN 'suspended' ELSE queue_status(queue) END,
        next_attempt_at = ?, last_response = ?, updated_at = ?,
        attempts = attempts + 1 WHERE message_id = ? AND idx = ?`,
    ),
    // A message is kept while a recipient is not final or still owes its sender a report.
    countOpen: p(
      `SELECT COUNT(*) AS n FROM recipients WHERE message_id = ?
        AND (status IN ${OPEN_STATES} OR notify_pending IS NOT NULL)`,
    ),
    bodyFile: p('SELECT body_file FROM messages WHERE id = ?'),
    deleteRecipients: p('DELETE FROM recipients WHERE message_id = ?'),
    deleteInlineBody: p('DELETE FROM message_bodies WHERE id = ?'),
    deleteMessage: p('DELETE FROM messages WHERE id = ?'),
    suspendQueue: p('INSERT OR IGNORE INTO suspended_queues (name) VALUES (?)'),
    resumeQueue: p('DELETE FROM suspended_queues WHERE name = ?'),
    holdQueue: p(`UPDATE recipients SET status = 'held' WHERE queue = ? AND status = 'pending'`),
    unholdQueue: p(`UPDATE recipients SET status = 'pending' WHERE queue = ? AND status = 'held'`),
    retryQueue: p(
      `UPDATE recipients SET next_attempt_at = ?1 WHERE queue = ?2 AND status IN ('pending', 'held')
        AND next_attempt_at > ?1`,
    ),
    suspendMessage: p(
      `UPDATE recipients SET status = 'suspended', updated_at = ?1 WHERE message_id = ?2 AND status IN ('pending', 'held')`,
    ),
    resumeMessage: p(
      `UPDATE recipients SET status = queue_status(queue), updated_at = ?1 WHERE message_id = ?2 AND status = 'suspended'`,
    ),
    releasePoison: p(
      `UPDATE recipients SET status = queue_status(queue), next_attempt_at = ?1, updated_at = ?1
        WHERE message_id = ?2 AND status = 'poison'`,
    ),
    clearCrashes: p('UPDATE messages SET crash_count = 0 WHERE id = ?'),
    // An attempt that ended normally proves the message does not bring the node down: the
    // crashes counted against it were someone else's (a kill during its delivery).
    forgetCrashes: p('UPDATE messages SET crash_count = 0 WHERE id = ? AND crash_count > 0'),
    rehop: p(
      `UPDATE recipients SET hop_type = ?1, hop_target = ?2, queue = ?3, next_attempt_at = ?4, updated_at = ?4,
        status = CASE WHEN status = 'poison' THEN 'poison' ELSE queue_status(?3) END
        WHERE message_id = ?5 AND idx = ?6 AND status IN ('pending', 'held', 'suspended', 'poison')`,
    ),
  };

  /** One queue viewer operation; returns how many rows it changed. */
  function admin(row: AdminRow, touched: Set<string>, removedFileBodies: string[]): number {
    switch (row.op) {
      case 'suspendQueue':
        s.suspendQueue.run(row.queue);
        suspended.add(row.queue);
        return Number(s.holdQueue.run(row.queue).changes);
      case 'resumeQueue':
        s.resumeQueue.run(row.queue);
        suspended.delete(row.queue);
        return Number(s.unholdQueue.run(row.queue).changes);
      case 'retryQueue':
        return Number(s.retryQueue.run(row.now, row.queue).changes);
      case 'suspendMessage':
        return Number(s.suspendMessage.run(row.now, row.messageId).changes);
      case 'resumeMessage':
        return Number(s.resumeMessage.run(row.now, row.messageId).changes);
      case 'releasePoison': {
        const changed = Number(s.releasePoison.run(row.now, row.messageId).changes);
        s.clearCrashes.run(row.messageId);
        return changed;
      }
      case 'rehop':
        return Number(
          s.rehop.run(row.hopType, row.hopTarget, row.queue, row.now, row.messageId, row.index).changes,
        );
      case 'removeMessage':
        touched.delete(row.messageId);
        return deleteMessage(row.messageId, removedFileBodies) ? 1 : 0;
    }
  }

  /** Deletes a message's rows; false when it is not there. A body file to unlink is noted. */
  function deleteMessage(id: string, removedFileBodies: string[]): boolean {
    const row = s.bodyFile.get(id) as { body_file: number } | undefined;
    if (!row) return false;
    if (row.body_file) removedFileBodies.push(id);
    s.deleteRecipients.run(id);
    s.deleteInlineBody.run(id);
    s.deleteMessage.run(id);
    return true;
  }

  /** One transaction, so one fsync, for the whole batch. Throws (and rolls back) on failure. */
  function write(batch: WriteBatch): WriteResult {
    const removedFileBodies: string[] = [];
    const adminChanges: number[] = [];
    // A rolled-back suspend/resume must not stay in the set.
    const suspendedBefore = batch.admin?.length ? new Set(suspended) : undefined;
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const row of batch.inserts) {
        s.insertMessage.run(...row.message);
        if (row.inlineBody) s.insertInlineBody.run(row.message[0]!, row.inlineBody);
        for (const r of row.recipients) s.insertRecipient.run(...r);
      }
      const touched = new Set<string>();
      /** Messages whose attempt ended normally: their crash count is cleared if they stay. */
      const attempted = new Set<string>();
      for (const o of batch.outcomes) {
        if (o.status === 'deferred')
          s.setDeferred.run(o.nextAttemptAt, o.response, o.now, o.messageId, o.index);
        else s.setFinal.run(o.status, o.response, o.now, o.messageId, o.index);
        attempted.add(o.messageId);
        touched.add(o.messageId);
      }
      for (const e of batch.expirations ?? []) {
        s.setExpired.run(e.now, e.messageId, e.index);
        touched.add(e.messageId);
      }
      for (const d of batch.delayRequests ?? []) s.requestDelay.run(d.messageId, d.index);
      for (const r of batch.reroutes ?? [])
        s.reroute.run(r.hopType, r.hopTarget, r.now, r.now, r.messageId, r.index, r.queue);
      for (const row of batch.admin ?? []) adminChanges.push(admin(row, touched, removedFileBodies));
      for (const c of batch.completions ?? []) {
        s.completeNotification.run(c.kind, c.messageId, c.index);
        touched.add(c.messageId);
      }
      for (const id of touched) {
        if ((s.countOpen.get(id) as { n: number }).n > 0) {
          // Only a message that stays has a crash count worth clearing (most are deleted here).
          if (attempted.has(id)) s.forgetCrashes.run(id);
          continue;
        }
        deleteMessage(id, removedFileBodies);
      }
      db.exec('COMMIT');
    } catch (error) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // Nothing to roll back.
      }
      if (suspendedBefore) {
        suspended.clear();
        for (const name of suspendedBefore) suspended.add(name);
      }
      throw error;
    }
    return { removedFileBodies, adminChanges };
  }

  return { write, close: () => db.close() };
}
