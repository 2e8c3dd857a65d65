import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Postfix's smtp-sink with `-c`: it writes `sess=… quit=… mesg=N` (CR-terminated, unbuffered)
 * each time a message's final dot arrives or a session ends. The sink blocks on a full pipe, so
 * its output is read all the time.
 */
export class Sink {
  readonly child: ChildProcess;
  /** Messages received since the sink started. */
  count = 0;
  /** SMTP sessions that have ended since the sink started (connection reuse shows as fewer). */
  sessions = 0;
  #partial = '';
  readonly #waiters = new Set<{ target: number; done: () => void }>();
  #exited: Error | undefined;

  /** `backlog` is smtp-sink's listen queue; `extra` goes before the address (e.g. `-S` options). */
  constructor(port: number, backlog = 1024, extra: string[] = []) {
    const asRoot = process.getuid?.() === 0;
    // -u: as root, smtp-sink insists on dropping privileges after binding.
    const args = [...(asRoot ? ['-u', 'nobody'] : []), '-c', ...extra, `127.0.0.1:${port}`, String(backlog)];
    this.child = spawn('smtp-sink', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout!.setEncoding('latin1');
    this.child.stdout!.on('data', (chunk: string) => this.#read(chunk));
    this.child.once('exit', (code, signal) => {
      this.#exited = new Error(`smtp-sink exited (${signal ?? `code ${code}`})`);
      for (const w of this.#waiters) w.done();
    });
  }

  #read(chunk: string): void {
    const text = this.#partial + chunk;
    const end = Math.max(text.lastIndexOf('\r'), text.lastIndexOf('\n'));
    if (end < 0) {
      this.#partial = text;
      return;
    }
    this.#partial = text.slice(end + 1);
    const sess = text.lastIndexOf('sess=', end);
    if (sess >= 0) this.sessions = Number.parseInt(text.slice(sess + 5, end + 1), 10) || this.sessions;
    const at = text.lastIndexOf('mesg=', end);
    if (at < 0) return;
    const count = Number.parseInt(text.slice(at + 5, end + 1), 10);
    if (Number.isNaN(count)) return;
    this.count = count;
    for (const w of this.#waiters) if (count >= w.target) w.done();
  }

  /** Resolves (with the high-resolution time) once the count reaches target. */
  until(target: number, timeoutMs: number, what: string): Promise<bigint> {
    return new Promise<bigint>((resolve, reject) => {
      const waiter = {
        target,
        done: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          if (this.count >= target) resolve(process.hrtime.bigint());
          else reject(this.#exited ?? new Error(`${what}: the sink counted only ${this.count} of ${target}`));
        },
      };
      const timer = setTimeout(waiter.done, timeoutMs);
      this.#waiters.add(waiter);
      if (this.count >= target || this.#exited) waiter.done();
    });
  }
}

export interface SourceOptions {
  port: number;
  sessions: number;
  size: number;
  messages: number;
  recipient: string;
  /** A run not finished by then is killed and rejects: a failure, not a slow figure. */
  timeoutMs: number;
  /** Names the server in errors. */
  label: string;
}

/**
 * Postfix's smtp-source: `messages` messages of `size` bytes over `sessions` parallel sessions,
 * one connection per message. Resolves with the high-resolution time it exited.
 */
export function runSmtpSource(o: SourceOptions): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const child = spawn(
      'smtp-source',
      [
        '-s',
        String(o.sessions),
        '-l',
        String(o.size),
        '-m',
        String(o.messages),
        '-f',
        'sender@client.test',
        '-t',
        o.recipient,
        `127.0.0.1:${o.port}`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.on('exit', (code) => {
      const at = process.hrtime.bigint();
      clearTimeout(timer);
      if (code === 0) resolve(at);
      else if (code === null)
        reject(new Error(`${o.label}: smtp-source stopped after ${o.timeoutMs / 1000} s`));
      else reject(new Error(`${o.label}: smtp-source exited with ${code}`));
    });
  });
}
