import { parentPort, workerData } from 'node:worker_threads';
import type { TrackingEvent } from '../observe/events.ts';
import { type NormalizedQuery, openTrackingDb, type TrackingDb } from './tracking-db.ts';

/**
 * Worker thread entry for the tracking database: the writer applies insert batches and purges,
 * the reader (a read-only connection of its own, WAL lets it read while the writer writes)
 * answers searches. Neither SQLite's work nor its checkpoint fsyncs then run on the thread that
 * serves SMTP sessions.
 */
export type TrackingRequest =
  | { readonly id: number; readonly op: 'insert'; readonly events: ReadonlyArray<TrackingEvent> }
  | { readonly id: number; readonly op: 'search'; readonly query: NormalizedQuery }
  | { readonly id: number; readonly op: 'purge'; readonly before: number }
  | { readonly id: number; readonly op: 'close' };

export type TrackingReply =
  | { readonly id: number; readonly ok: true; readonly result?: unknown }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code?: string };

const { path, readOnly, busyTimeout } = workerData as {
  path: string;
  readOnly: boolean;
  busyTimeout?: number;
};
const port = parentPort!;

let db: TrackingDb;
try {
  db = openTrackingDb(path, { readOnly, ...(busyTimeout === undefined ? {} : { busyTimeout }) });
  port.postMessage({ id: 0, ok: true } satisfies TrackingReply);
} catch (error) {
  port.postMessage({ id: 0, ok: false, ...describe(error) } satisfies TrackingReply);
  port.close();
}

port.on('message', (request: TrackingRequest) => {
  if (request.op === 'close') {
    db.close();
    port.postMessage({ id: request.id, ok: true } satisfies TrackingReply);
    port.close();
    return;
  }
  try {
    const result =
      request.op === 'insert'
        ? db.insert(request.events)
        : request.op === 'search'
          ? db.search(request.query)
          : db.purgeChunk(request.before);
    port.postMessage({ id: request.id, ok: true, result } satisfies TrackingReply);
  } catch (error) {
    port.postMessage({ id: request.id, ok: false, ...describe(error) } satisfies TrackingReply);
  }
});

function describe(error: unknown): { message: string; code?: string } {
  const e = error as { message?: string; code?: string; errcode?: number };
  const code = e.code ?? (e.errcode === undefined ? undefined : String(e.errcode));
  return { message: e.message ?? String(error), ...(code ? { code } : {}) };
}
