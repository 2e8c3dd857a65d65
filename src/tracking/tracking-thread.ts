import { Worker } from 'node:worker_threads';
import type { TrackingReply, TrackingRequest } from './tracking-worker.ts';

/** A request without its id (distributed over the union, so each op keeps its own fields). */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Payload = WithoutId<TrackingRequest>;

/**
 * One worker thread of the tracking log (tracking-worker.ts), as request → promise. The thread
 * keeps the process alive only while a request is outstanding: an idle log never holds up exit,
 * and a final batch written during shutdown is never cut short.
 */
export class TrackingThread {
  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  #nextId = 1;
  #failure: Error | undefined;
  #exited = false;
  readonly #exit: Promise<void>;

  private constructor(worker: Worker) {
    this.#worker = worker;
    this.#exit = new Promise((resolve) => worker.once('exit', () => resolve()));
  }

  /** Starts the thread and waits until its database is open; rejects with the reason it could not. */
  static async start(path: string, readOnly: boolean, busyTimeout?: number): Promise<TrackingThread> {
    const worker = new Worker(new URL('./tracking-worker.ts', import.meta.url), {
      workerData: { path, readOnly, busyTimeout },
    });
    let onMessage: (reply: TrackingReply) => void = () => {};
    let onError: (error: Error) => void = () => {};
    let onExit: (code: number) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      onMessage = (reply) =>
        reply.ok ? resolve() : reject(Object.assign(new Error(reply.message), { code: reply.code }));
      onError = reject;
      onExit = (code) => reject(new Error(`tracking thread exited with code ${code}`));
      worker.once('message', onMessage).once('error', onError).once('exit', onExit);
    });
    try {
      await ready;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    // Only our own listeners: the worker has internal ones that start its message port.
    worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    const thread = new TrackingThread(worker);
    thread.#listen();
    worker.unref();
    return thread;
  }

  #listen(): void {
    this.#worker.on('message', (reply: TrackingReply) => {
      const request = this.#pending.get(reply.id);
      if (!request) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) this.#worker.unref();
      if (reply.ok) request.resolve(reply.result);
      else request.reject(Object.assign(new Error(reply.message), { code: reply.code }));
    });
    const fail = (error: Error) => {
      this.#failure ??= error;
      for (const request of this.#pending.values()) request.reject(this.#failure);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => {
      this.#exited = true;
      fail(new Error(`tracking thread exited with code ${code}`));
    });
  }

  request<T>(payload: Payload): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.#worker.postMessage({ ...payload, id });
    });
  }

  /** Closes the database and ends the thread (after the requests already sent). */
  async close(): Promise<void> {
    if (!this.#exited && !this.#failure) await this.request({ op: 'close' }).catch(() => undefined);
    if (!this.#exited) {
      // The thread ends by itself once its port closes; terminate covers a thread that hangs.
      const timer = setTimeout(() => void this.#worker.terminate(), 5000);
      timer.unref();
      this.#worker.ref();
      await this.#exit;
      clearTimeout(timer);
    }
  }
}
