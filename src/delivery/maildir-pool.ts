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

/**
 * A small pool of Maildir writer threads (maildir-worker.ts) for bodies that fit in memory.
 * Measured on the inbound benchmark: the promise-based file calls cost the event loop about a
 * third of a millisecond per delivery, CPU that the SMTP sessions on the same loop need.
 */
export class MaildirWriterPool {
  readonly #workers = new Set<Worker>();
  readonly #idle: Worker[] = [];
  readonly #queue: Array<{ job: Job; waiter: Waiter }> = [];
  readonly #waiting = new Map<number, Waiter>();
  readonly #current = new Map<Worker, number>();
  #next = 1;
  #closed = false;

  constructor(size = Math.max(2, Math.min(8, availableParallelism() * 2))) {
    for (let i = 0; i < size; i++) this.#spawn();
  }

  /** Writes one copy into `folder` (tmp → fsync → new → fsync folder); resolves with its name in new/. */
  write(folder: string, prefix: Buffer, body: Buffer, now: number): Promise<string> {
    if (this.#closed) return Promise.reject(new Error('maildir writer pool closed'));
    return new Promise((resolve, reject) => {
      const job: Job = { id: this.#next++, folder, prefix, body, now };
      const worker = this.#idle.pop();
      if (worker) this.#send(worker, job, { resolve, reject });
      else this.#queue.push({ job, waiter: { resolve, reject } });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const { waiter } of this.#queue.splice(0)) waiter.reject(new Error('maildir writer pool closed'));
    await Promise.all([...this.#workers].map((w) => w.terminate()));
  }

  #spawn(): void {
    const worker = new Worker(new URL('./maildir-worker.ts', import.meta.url));
    worker.on(
      'message',
      (reply: { id: number; ok: boolean; name?: string; code?: string; message?: string }) => {
        const waiter = this.#waiting.get(reply.id);
        this.#waiting.delete(reply.id);
        this.#current.delete(worker);
        this.#release(worker);
        if (!waiter) return;
        if (reply.ok) waiter.resolve(reply.name!);
        else waiter.reject(Object.assign(new Error(reply.message), { code: reply.code }));
      },
    );
    // A writer thread that dies fails its job (the scheduler retries it) and is replaced.
    worker.on('error', (error) => this.#lost(worker, error));
    worker.unref();
    this.#workers.add(worker);
    this.#release(worker);
  }

  #lost(worker: Worker, error: Error): void {
    const id = this.#current.get(worker);
    if (id !== undefined) {
      this.#waiting.get(id)?.reject(error);
      this.#waiting.delete(id);
    }
    this.#current.delete(worker);
    this.#workers.delete(worker);
    const idle = this.#idle.indexOf(worker);
    if (idle >= 0) this.#idle.splice(idle, 1);
    if (!this.#closed) this.#spawn();
  }

  #send(worker: Worker, job: Job, waiter: Waiter): void {
    this.#waiting.set(job.id, waiter);
    this.#current.set(worker, job.id);
    worker.postMessage(job);
  }

  #release(worker: Worker): void {
    const next = this.#queue.shift();
    if (next) this.#send(worker, next.job, next.waiter);
    else this.#idle.push(worker);
  }
}
