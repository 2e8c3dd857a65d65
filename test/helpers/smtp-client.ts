import { type Socket, connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';

/** A certificate and key the client presents (mutual TLS). */
export interface ClientCertificate {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface TestReply {
  readonly code: number;
  /** Each line's text after the code and separator. */
  readonly lines: string[];
  /** The last line's text (where the enhanced status code and the id are). */
  readonly text: string;
}

/**
 * A deliberately raw SMTP client for tests: it sends exactly the bytes it is given (so tests can
 * send malformed input) and parses replies, multi-line ones included.
 */
export class SmtpTestClient {
  #socket: Socket | TLSSocket;
  #buffer = '';
  #replies: TestReply[] = [];
  #waiters: Array<{ resolve: (r: TestReply) => void; reject: (e: Error) => void }> = [];
  #closed = false;
  #closedPromise: Promise<void>;
  #resolveClosed!: () => void;

  private constructor(socket: Socket | TLSSocket) {
    this.#closedPromise = new Promise((r) => {
      this.#resolveClosed = r;
    });
    this.#socket = socket;
    this.#listen(socket);
  }

  static async connect(
    port: number,
    options: {
      host?: string;
      tls?: boolean;
      localAddress?: string;
      clientCertificate?: ClientCertificate;
    } = {},
  ): Promise<SmtpTestClient> {
    const host = options.host ?? '127.0.0.1';
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s = options.tls
        ? tlsConnect(
            {
              port,
              host,
              rejectUnauthorized: false,
              ...(options.localAddress ? { localAddress: options.localAddress } : {}),
              ...options.clientCertificate,
            },
            () => resolve(s),
          )
        : tcpConnect(
            { port, host, ...(options.localAddress ? { localAddress: options.localAddress } : {}) },
            () => resolve(s),
          );
      s.once('error', reject);
    });
    return new SmtpTestClient(socket);
  }

  #listen(socket: Socket | TLSSocket): void {
    socket.setEncoding('latin1');
    socket.on('data', this.#onData);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#resolveClosed();
      for (const w of this.#waiters.splice(0)) w.reject(new Error('connection closed'));
    });
  }

  readonly #onData = (data: string) => {
    this.#buffer += data;
    for (;;) {
      const lines: string[] = [];
      let offset = 0;
      let complete: TestReply | undefined;
      for (;;) {
        const end = this.#buffer.indexOf('\r\n', offset);
        if (end < 0) break;
        const line = this.#buffer.slice(offset, end);
        offset = end + 2;
        lines.push(line.slice(4));
        if (line[3] !== '-') {
          complete = { code: Number(line.slice(0, 3)), lines, text: line.slice(4) };
          break;
        }
      }
      if (!complete) return;
      this.#buffer = this.#buffer.slice(offset);
      const waiter = this.#waiters.shift();
      if (waiter) waiter.resolve(complete);
      else this.#replies.push(complete);
    }
  };

  /** The next reply (already received or still to come). */
  reply(timeoutMs = 10_000): Promise<TestReply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply in time')), timeoutMs);
      this.#waiters.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  greeting(): Promise<TestReply> {
    return this.reply();
  }

  /** Sends `line` + CRLF and waits for its reply. */
  async command(line: string): Promise<TestReply> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  write(data: string | Buffer): void {
    this.#socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** STARTTLS, then the TLS handshake on the same socket. */
  async startTls(clientCertificate?: ClientCertificate): Promise<TestReply> {
    const r = await this.command('STARTTLS');
    if (r.code === 220) await this.upgradeTls(clientCertificate);
    return r;
  }

  /** The TLS handshake alone, for tests that sent STARTTLS themselves (with extra bytes behind it). */
  async upgradeTls(clientCertificate?: ClientCertificate): Promise<void> {
    const plain = this.#socket;
    plain.off('data', this.#onData);
    plain.removeAllListeners('close');
    this.#socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, ...clientCertificate }, () =>
        resolve(s),
      );
      s.once('error', reject);
    });
    this.#listen(this.#socket);
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    return this.#closedPromise;
  }

  close(): void {
    this.#socket.destroy();
  }
}
