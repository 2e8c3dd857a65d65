import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import { QUEUE_TOTALS_SQL, STATUS_COUNTS_SQL } from './sqlite-schema.ts';

/**
 * Worker thread entry: the queue store's counting reads, on a connection of their own. A count
 * over a deep queue reads every waiting recipient's index entry (hundreds of ms at a million),
 * which on the event loop would stall every SMTP session for as long; here it only takes a core.
 * WAL mode lets it read a consistent snapshot while the writer thread commits.
 */
const { path } = workerData as { path: string };
const db = new DatabaseSync(path, { readOnly: true });
db.exec('PRAGMA busy_timeout = 10000;');
const statements = {
  queueTotals: db.prepare(QUEUE_TOTALS_SQL),
  statusCounts: db.prepare(STATUS_COUNTS_SQL),
};

/** Pages of the queue viewer, by their SQL text (a handful of shapes, built by the store). */
const pages = new Map<string, ReturnType<DatabaseSync['prepare']>>();

parentPort!.on(
  'message',
  (message: {
    id: number;
    query?: keyof typeof statements;
    page?: { sql: string; params: Array<string | number> };
    close?: true;
  }) => {
    if (message.close) {
      db.close();
      parentPort!.close();
      return;
    }
    try {
      let rows: unknown[];
      if (message.page) {
        let statement = pages.get(message.page.sql);
        if (!statement) {
          statement = db.prepare(message.page.sql);
          pages.set(message.page.sql, statement);
        }
        rows = statement.all(...message.page.params);
      } else rows = statements[message.query!].all();
      parentPort!.postMessage({ id: message.id, ok: true, rows });
    } catch (error) {
      parentPort!.postMessage({ id: message.id, ok: false, message: (error as Error).message });
    }
  },
);
