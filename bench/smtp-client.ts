import { connect, type Socket } from 'node:net';

export interface Reply {
  code: number;
  text: string;
}

/**
 * A minimal SMTP client for the benches: replies are read as they come (multi-line ones joined),
 * commands written as they are. Small per connection, so thousands can be held by one process.
 */
export class BenchConnection {
  readonly socket: Socket;
  #buffer = '';
  #lines: string[] = [];
  readonly #waiting: Array<{ resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  readonly #ready: Reply[] = [];
  #error: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.#read(chunk));
    const fail = (error: Error) => {
      this.#error ??= error;
      for (const w of this.#waiting.splice(0)) w.reject(this.#error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  /** Connects and resolves once the socket is open (the greeting is read with reply()). */
  static open(port: number, localAddress?: string, timeoutMs = 30_000): Promise<BenchConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
      const timer = setTimeout(
        () => socket.destroy(new Error(`connect timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new BenchConnection(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const nl = this.#buffer.indexOf('\n');
      if (nl < 0) return;
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(nl + 1);
      this.#lines.push(line);
      if (line[3] === '-') continue;
      const reply = { code: Number(line.slice(0, 3)), text: this.#lines.join('\n') };
      this.#lines = [];
      const w = this.#waiting.shift();
      if (w) w.resolve(reply);
      else this.#ready.push(reply);
    }
  }

  /** The next reply from the server. */
  reply(): Promise<Reply> {
    const ready = this.#ready.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Writes and resolves once the bytes are handed to the kernel (waits for drain when needed). */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.write(data)) resolve();
      else {
        const onDrain = () => {
          this.socket.off('error', onError);
          resolve();
        };
        const onError = (e: Error) => {
          this.socket.off('drain', onDrain);
          reject(e);
        };
        this.socket.once('drain', onDrain);
        this.socket.once('error', onError);
      }
    });
  }

  /** Sends a command line and returns its reply, failing unless the code is `expect`. */
  async command(line: string, expect: number): Promise<Reply> {
    await this.write(`${line}\r\n`);
    return this.expect(expect, line);
  }

  /** Reads a reply and fails unless its code is `expect`. */
  async expect(code: number, what: string): Promise<Reply> {
    const r = await this.reply();
    if (r.code !== code) throw new Error(`${what}: expected ${code}, got ${r.text}`);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}
