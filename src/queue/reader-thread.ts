import { Worker } from 'node:worker_threads';
import { QueueUnavailableError } from './types.ts';

export type ReaderQuery = 'queueTotals' | 'statusCounts' | { sql: string; params: Array<string | number> };

/**
 * One read-only connection in its own thread (sqlite-reader-worker.ts), started on first use, and
 * again after it died. The store keeps two: one for counts over the whole queue (seconds at a
 * million recipients) and one for the viewer's pages (milliseconds), so a page never waits
 * behind a count, and a node nobody administers never pays for either isolate (25–40 MB each).
 */
export class ReaderThread {
  readonly #path: string;
  #worker: Worker | undefined;
  readonly #requests = new Map<number, { resolve: (rows: unknown[]) => void; reject: (e: Error) => void }>();
  #next = 1;
  #closed = false;

  constructor(path: string) {
    this.#path = path;
  }

  read(query: ReaderQuery): Promise<unknown[]> {
    if (this.#closed) return Promise.reject(new QueueUnavailableError('queue is closed'));
    const worker = this.#worker ?? this.#start();
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#requests.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage(typeof query === 'string' ? { id, query } : { id, page: query });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    if (!worker) return;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage({ id: 0, close: true });
    await exited;
  }

  #start(): Worker {
    const worker = new Worker(new URL('./sqlite-reader-worker.ts', import.meta.url), {
      workerData: { path: this.#path },
    });
    worker.on('message', (reply: { id: number; ok: boolean; rows?: unknown[]; message?: string }) => {
      const request = this.#requests.get(reply.id);
      this.#requests.delete(reply.id);
      // An idle reader does not keep the process alive.
      if (this.#requests.size === 0) worker.unref();
      if (reply.ok) request?.resolve(reply.rows!);
      else request?.reject(new Error(reply.message));
    });
    const failed = (error: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const request of this.#requests.values()) request.reject(error);
      this.#requests.clear();
    };
    worker.on('error', failed);
    worker.on('exit', () => failed(new QueueUnavailableError('queue reader thread exited')));
    worker.unref();
    this.#worker = worker;
    return worker;
  }
}
