import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

interface Job {
  readonly id: number;
  readonly folder: string;
  readonly prefix: Buffer;
  readonly body: Buffer;
  readonly now: number;
}

interface Waiter {
  resolve: (name: string) => void;
  reject: (error: Error) => void;
}

interface Reply {
  id: number;
  ok: boolean;
  name?: string;
  code?: string;
  message?: string;
}

/** Jobs one writer thread takes at once. */
const MAX_BATCH = 8;

/**
 * A small pool of Maildir writer threads (maildir-worker.ts) for bodies that fit in memory.
 * Measured on the inbound benchmark: the promise-based file calls cost the event loop about a
 * third of a millisecond per delivery, CPU that the SMTP sessions on the same loop need. Jobs
 * created in one turn of the event loop travel to a thread in one message.
 */
export class MaildirWriterPool {
  readonly #workers = new Set<Worker>();
  readonly #idle: Worker[] = [];
  readonly #queue: Array<{ job: Job; waiter: Waiter }> = [];
  readonly #waiting = new Map<number, Waiter>();
  readonly #current = new Map<Worker, number[]>();
  #next = 1;
  #closed = false;
  #dispatchScheduled = false;
  readonly #size: number;

  /**
   * Threads start on demand, up to `size`: each is a V8 isolate of 25–40 MB, which a relay node
   * that never writes a mailbox should not pay for (measured with bench/idle-connections.ts).
   */
  constructor(size = Math.max(2, Math.min(8, availableParallelism() * 2))) {
    this.#size = size;
  }

  /** Writes one copy into `folder` (tmp → fsync → new → fsync folder); resolves with its name in new/. */
  write(folder: string, prefix: Buffer, body: Buffer, now: number): Promise<string> {
    if (this.#closed) return Promise.reject(new Error('maildir writer pool closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ job: { id: this.#next++, folder, prefix, body, now }, waiter: { resolve, reject } });
      if (this.#idle.length === 0 && this.#workers.size < this.#size) this.#spawn();
      this.#scheduleDispatch();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const { waiter } of this.#queue.splice(0)) waiter.reject(new Error('maildir writer pool closed'));
    await Promise.all([...this.#workers].map((w) => w.terminate()));
  }

  #scheduleDispatch(): void {
    if (this.#dispatchScheduled) return;
    this.#dispatchScheduled = true;
    setImmediate(() => {
      this.#dispatchScheduled = false;
      while (this.#queue.length > 0 && this.#idle.length > 0) {
        const worker = this.#idle.pop()!;
        // Spread what is queued over the idle threads.
        const share = Math.ceil(this.#queue.length / (this.#idle.length + 1));
        this.#send(worker, this.#queue.splice(0, Math.min(share, MAX_BATCH)));
      }
    });
  }

  #spawn(): void {
    const worker = new Worker(new URL('./maildir-worker.ts', import.meta.url));
    worker.on('message', (replies: Reply[]) => {
      this.#current.delete(worker);
      this.#release(worker);
      for (const reply of replies) {
        const waiter = this.#waiting.get(reply.id);
        this.#waiting.delete(reply.id);
        if (!waiter) continue;
        if (reply.ok) waiter.resolve(reply.name!);
        else waiter.reject(Object.assign(new Error(reply.message), { code: reply.code }));
      }
    });
    // A writer thread that dies fails its jobs (the scheduler retries them) and is replaced.
    worker.on('error', (error) => this.#lost(worker, error));
    // Idle threads do not keep the process alive; busy ones do, until their replies are in.
    worker.unref();
    this.#workers.add(worker);
    this.#idle.push(worker);
    if (this.#queue.length > 0) this.#scheduleDispatch();
  }

  #lost(worker: Worker, error: Error): void {
    for (const id of this.#current.get(worker) ?? []) {
      this.#waiting.get(id)?.reject(error);
      this.#waiting.delete(id);
    }
    this.#current.delete(worker);
    this.#workers.delete(worker);
    const idle = this.#idle.indexOf(worker);
    if (idle >= 0) this.#idle.splice(idle, 1);
    if (!this.#closed && this.#queue.length > 0) this.#spawn();
  }

  #send(worker: Worker, batch: Array<{ job: Job; waiter: Waiter }>): void {
    for (const { job, waiter } of batch) this.#waiting.set(job.id, waiter);
    this.#current.set(
      worker,
      batch.map(({ job }) => job.id),
    );
    worker.ref();
    worker.postMessage(batch.map(({ job }) => job));
  }

  /** A thread that finished takes the next batch straight away, or waits idle. */
  #release(worker: Worker): void {
    const batch = this.#queue.splice(0, MAX_BATCH);
    if (batch.length > 0) this.#send(worker, batch);
    else {
      worker.unref();
      this.#idle.push(worker);
    }
  }
}
