import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import {
  createSecureContext,
  createServer as createTlsServer,
  type SecureContext,
  TLSSocket,
} from 'node:tls';
import { BodyDecoder } from '../../src/smtp/body-decoder.ts';
import { parsePathArgs, splitCommand } from '../../src/smtp/command.ts';

/**
 * A scriptable SMTP server on 127.0.0.1 for tests of outbound delivery: it offers or hides
 * extensions, answers each command as the test says, can drop the connection or stall at any
 * stage, and records every transaction with the exact bytes that came over the wire.
 */

export type SinkStage =
  /** On accept, before the greeting. */
  | 'connect'
  | 'ehlo'
  | 'helo'
  | 'starttls'
  /** After the 220 to STARTTLS, before the handshake (a truncated handshake). */
  | 'tls'
  | 'auth'
  | 'mail'
  | 'rcpt'
  | 'data'
  /** The first bytes of content (DATA or BDAT). */
  | 'body'
  /** The end of content (`.` or the last BDAT chunk), before the final reply. */
  | 'dot'
  | 'bdat'
  | 'rset'
  | 'quit';

export interface SinkExtensions {
  pipelining: boolean;
  chunking: boolean;
  binaryMime: boolean;
  dsn: boolean;
  eightBitMime: boolean;
  smtpUtf8: boolean;
  enhancedStatusCodes: boolean;
  /** SIZE with this limit (0: SIZE without a limit), or false to hide it. */
  size: number | false;
}

export type SinkParams = Record<string, string | true>;

export interface SinkRecipient {
  readonly address: string;
  readonly params: SinkParams;
  readonly line: string;
  readonly reply: string;
}

export interface SinkTransaction {
  readonly connection: number;
  readonly tls: boolean;
  readonly helo: string | undefined;
  readonly authUser: string | undefined;
  readonly mailLine: string;
  readonly sender: string;
  readonly mailParams: SinkParams;
  readonly recipients: SinkRecipient[];
  /** Addresses whose RCPT got a 2xx. */
  readonly accepted: string[];
  readonly method: 'DATA' | 'BDAT';
  /** Content as it came over the wire: DATA up to and including `.CRLF`; BDAT chunks joined. */
  readonly raw: Buffer;
  /** Content decoded: dots removed for DATA. */
  readonly body: Buffer;
  /** BDAT chunk sizes, in order. */
  readonly chunks: number[];
  /** Decoded content length (kept even when `keepContent` is false). */
  readonly size: number;
  /** Our final reply to the content. */
  readonly reply: string;
}

export interface SinkConnection {
  readonly index: number;
  /** The client's address as the sink saw it. */
  readonly remoteAddress: string | undefined;
  tls: boolean;
  helo: string | undefined;
  authUser: string | undefined;
  readonly authAttempts: Array<{ mechanism: string; username: string; ok: boolean }>;
  /** Every command line (content excluded), in order. */
  readonly commands: string[];
  /** Every byte received, in order (after decryption once TLS is up); empty without `keepContent`. */
  readonly received: Buffer[];
  bytesReceived: number;
  closed: boolean;
}

export interface SmtpSinkOptions {
  hostname?: string;
  /** The whole greeting line(s), e.g. `554 5.7.1 go away`; default `220 <hostname> ESMTP sink`. */
  banner?: string;
  extensions?: Partial<SinkExtensions>;
  /** Extra EHLO keyword lines, as they should appear (e.g. `AUTH=LOGIN`). */
  extraEhloLines?: string[];
  /** Answer EHLO with this instead of the extension list (e.g. `502 5.5.2 Error: command not recognized`). */
  ehloReply?: string;
  /** STARTTLS offered with this certificate (or, with `implicit`, TLS from the first byte). */
  tls?: {
    cert: string | Buffer;
    key: string | Buffer;
    implicit?: boolean;
    offerStartTls?: boolean;
    starttlsReply?: string;
  };
  /** AUTH PLAIN / LOGIN, offered only over TLS unless `requireTls` is false. */
  auth?: {
    mechanisms?: Array<'PLAIN' | 'LOGIN'>;
    check: (username: string, password: string) => boolean;
    requireTls?: boolean;
  };
  mailReply?: (sender: string, params: SinkParams) => string;
  rcptReply?: (address: string, params: SinkParams) => string;
  /** The final reply to the content of a transaction. */
  dataReply?: (tx: SinkTransaction) => string;
  /** The reply to a BDAT chunk that is not the last one. */
  bdatReply?: (chunkIndex: number, size: number) => string;
  /** Close the connection without a reply at this stage (in every connection, or the one given). */
  drop?: { at: SinkStage; connection?: number };
  /** Keep the bytes received and the content (default true; false for very large messages). */
  keepContent?: boolean;
  /** Wait this long (ms) before replying at a stage (`connect`: the greeting). */
  delay?: Partial<Record<SinkStage, number>>;
}

const DEFAULT_EXTENSIONS: SinkExtensions = {
  pipelining: true,
  chunking: true,
  binaryMime: true,
  dsn: true,
  eightBitMime: true,
  smtpUtf8: true,
  enhancedStatusCodes: true,
  size: 10 * 1024 * 1024,
};

export class SmtpSink {
  readonly transactions: SinkTransaction[] = [];
  readonly connections: SinkConnection[] = [];
  readonly #server: Server;
  readonly #o: SmtpSinkOptions;
  readonly #secureContext: SecureContext | undefined;
  readonly #sockets = new Set<Socket>();
  #changed: Array<() => void> = [];

  private constructor(options: SmtpSinkOptions) {
    this.#o = options;
    const tls = options.tls;
    this.#secureContext = tls ? createSecureContext({ cert: tls.cert, key: tls.key }) : undefined;
    this.#server =
      tls?.implicit && this.#secureContext
        ? createTlsServer({ cert: tls.cert, key: tls.key }, (s) => this.#accept(s, true))
        : createTcpServer((s) => this.#accept(s, false));
    this.#server.on('tlsClientError', () => undefined);
  }

  static async start(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
    const sink = new SmtpSink(options);
    await new Promise<void>((resolve, reject) => {
      sink.#server.once('error', reject);
      sink.#server.listen(0, '127.0.0.1', () => resolve());
    });
    return sink;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Every byte one connection sent us. */
  wire(connection = 0): Buffer {
    return Buffer.concat(this.connections[connection]?.received ?? []);
  }

  /** Resolves once `test()` holds, re-checked whenever the sink records something. */
  async waitFor(test: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('smtp sink: condition not reached in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#changed.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  notify(): void {
    for (const f of this.#changed.splice(0)) f();
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket, tls: boolean): void {
    const record: SinkConnection = {
      index: this.connections.length,
      remoteAddress: socket.remoteAddress,
      tls,
      helo: undefined,
      authUser: undefined,
      authAttempts: [],
      commands: [],
      received: [],
      bytesReceived: 0,
      closed: false,
    };
    this.connections.push(record);
    this.#sockets.add(socket);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      record.closed = true;
      this.notify();
    });
    new SinkSession(this, this.#o, this.#secureContext, socket, record).start();
  }

  /** @internal */
  record(tx: SinkTransaction): void {
    this.transactions.push(tx);
    this.notify();
  }
}

interface OpenTransaction {
  mailLine: string;
  sender: string;
  mailParams: SinkParams;
  recipients: SinkRecipient[];
  accepted: string[];
  raw: Buffer[];
  body: Buffer[];
  chunks: number[];
  size: number;
}

type Mode = 'command' | 'data' | 'bdat' | 'auth-plain' | 'auth-login-user' | 'auth-login-pass' | 'closed';

class SinkSession {
  readonly #sink: SmtpSink;
  readonly #o: SmtpSinkOptions;
  readonly #ext: SinkExtensions;
  readonly #context: SecureContext | undefined;
  readonly #r: SinkConnection;
  #socket: Socket;
  #input: Buffer = Buffer.alloc(0);
  #mode: Mode = 'command';
  #busy = false;
  #tx: OpenTransaction | undefined;
  #decoder: BodyDecoder | undefined;
  #bdatLeft = 0;
  #bdatLast = false;
  #bdatBad = false;
  #loginUser = '';
  #gotContent = false;

  constructor(
    sink: SmtpSink,
    o: SmtpSinkOptions,
    context: SecureContext | undefined,
    socket: Socket,
    record: SinkConnection,
  ) {
    this.#sink = sink;
    this.#o = o;
    this.#ext = { ...DEFAULT_EXTENSIONS, ...o.extensions };
    this.#context = context;
    this.#socket = socket;
    this.#r = record;
  }

  get #hostname(): string {
    return this.#o.hostname ?? 'sink.test';
  }

  start(): void {
    this.#listen(this.#socket);
    if (this.#drops('connect')) return;
    void this.#reply('connect', this.#o.banner ?? `220 ${this.#hostname} ESMTP sink`);
  }

  #listen(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('error', () => undefined);
  }

  readonly #onData = (chunk: Buffer) => {
    this.#r.bytesReceived += chunk.length;
    if (this.#o.keepContent !== false) this.#r.received.push(chunk);
    this.#input = this.#input.length === 0 ? chunk : Buffer.concat([this.#input, chunk]);
    void this.#pump();
  };

  #drops(stage: SinkStage): boolean {
    const drop = this.#o.drop;
    if (!drop || drop.at !== stage) return false;
    if (drop.connection !== undefined && drop.connection !== this.#r.index) return false;
    this.#mode = 'closed';
    this.#socket.destroy();
    return true;
  }

  async #reply(stage: SinkStage, text: string): Promise<void> {
    const delay = this.#o.delay?.[stage];
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
    if (this.#socket.destroyed) return;
    this.#socket.write(`${text.replace(/\r?\n/g, '\r\n')}\r\n`);
  }

  async #pump(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#mode !== 'closed' && this.#input.length > 0) {
        if (this.#mode === 'data') {
          if (!this.#content()) break;
          const decoded = this.#decoder!.decode(this.#input);
          this.#keep(this.#input.subarray(0, decoded.consumed), decoded.output);
          this.#input = this.#input.subarray(decoded.consumed);
          if (!decoded.ended) continue;
          this.#mode = 'command';
          await this.#endOfContent('DATA');
          continue;
        }
        if (this.#mode === 'bdat') {
          if (!this.#content()) break;
          const take = Math.min(this.#bdatLeft, this.#input.length);
          const piece = this.#input.subarray(0, take);
          if (this.#tx && !this.#bdatBad) this.#keep(piece, piece);
          this.#input = this.#input.subarray(take);
          this.#bdatLeft -= take;
          if (this.#bdatLeft > 0) continue;
          await this.#endOfChunk();
          continue;
        }
        const lf = this.#input.indexOf(0x0a);
        if (lf < 0) break;
        let line = this.#input.subarray(0, lf);
        this.#input = this.#input.subarray(lf + 1);
        if (line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
        await this.#line(line.toString('utf8'));
      }
    } finally {
      this.#busy = false;
    }
  }

  #keep(raw: Buffer, decoded: Buffer): void {
    const tx = this.#tx!;
    tx.size += decoded.length;
    if (this.#o.keepContent === false) return;
    tx.raw.push(raw);
    tx.body.push(decoded);
  }

  /** False when the connection was dropped on the first content bytes. */
  #content(): boolean {
    if (!this.#gotContent) {
      this.#gotContent = true;
      if (this.#drops('body')) return false;
    }
    return true;
  }

  async #line(line: string): Promise<void> {
    if (this.#mode !== 'command') {
      this.#r.commands.push(this.#mode.startsWith('auth') ? '(auth response)' : line);
      return this.#authStep(line);
    }
    this.#r.commands.push(line);
    const { verb, args } = splitCommand(line);
    switch (verb) {
      case 'EHLO':
        return this.#ehlo(args);
      case 'HELO':
        if (this.#drops('helo')) return;
        this.#r.helo = args;
        this.#tx = undefined;
        return this.#reply('helo', `250 ${this.#hostname}`);
      case 'STARTTLS':
        return this.#startTls();
      case 'AUTH':
        return this.#auth(args);
      case 'MAIL':
        return this.#mail(line, args);
      case 'RCPT':
        return this.#rcpt(line, args);
      case 'DATA':
        return this.#data();
      case 'BDAT':
        return this.#bdat(args);
      case 'RSET':
        if (this.#drops('rset')) return;
        this.#tx = undefined;
        return this.#reply('rset', '250 2.0.0 Ok');
      case 'NOOP':
        return this.#reply('rset', '250 2.0.0 Ok');
      case 'QUIT':
        if (this.#drops('quit')) return;
        await this.#reply('quit', '221 2.0.0 Bye');
        this.#mode = 'closed';
        this.#socket.end();
        return;
      default:
        return this.#reply('mail', '502 5.5.2 Error: command not recognized');
    }
  }

  #ehloLines(): string[] {
    const e = this.#ext;
    const secure = this.#socket instanceof TLSSocket;
    const lines = [this.#hostname];
    if (e.pipelining) lines.push('PIPELINING');
    if (e.size !== false) lines.push(e.size > 0 ? `SIZE ${e.size}` : 'SIZE');
    if (e.eightBitMime) lines.push('8BITMIME');
    if (e.chunking && e.binaryMime) lines.push('BINARYMIME');
    if (e.chunking) lines.push('CHUNKING');
    if (e.dsn) lines.push('DSN');
    if (e.smtpUtf8) lines.push('SMTPUTF8');
    if (e.enhancedStatusCodes) lines.push('ENHANCEDSTATUSCODES');
    if (this.#context && !secure && this.#o.tls?.offerStartTls !== false) lines.push('STARTTLS');
    const auth = this.#o.auth;
    if (auth && (secure || auth.requireTls === false)) {
      lines.push(`AUTH ${(auth.mechanisms ?? ['PLAIN', 'LOGIN']).join(' ')}`);
    }
    lines.push(...(this.#o.extraEhloLines ?? []));
    return lines;
  }

  async #ehlo(args: string): Promise<void> {
    if (this.#drops('ehlo')) return;
    if (this.#o.ehloReply) return this.#reply('ehlo', this.#o.ehloReply);
    this.#r.helo = args;
    this.#tx = undefined;
    const lines = this.#ehloLines();
    return this.#reply(
      'ehlo',
      lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`).join('\r\n'),
    );
  }

  async #startTls(): Promise<void> {
    if (this.#drops('starttls')) return;
    const context = this.#context;
    if (!context || this.#socket instanceof TLSSocket)
      return this.#reply('starttls', '502 5.5.1 Error: TLS not offered');
    const answer = this.#o.tls?.starttlsReply ?? '220 2.0.0 Ready to start TLS';
    await this.#reply('starttls', answer);
    if (!answer.startsWith('220')) return;
    if (this.#drops('tls')) return;
    // Whatever was pipelined behind STARTTLS is discarded (RFC 3207 §4.2).
    this.#input = Buffer.alloc(0);
    const plain = this.#socket;
    plain.off('data', this.#onData);
    const secure = new TLSSocket(plain, { isServer: true, secureContext: context });
    this.#socket = secure;
    this.#r.helo = undefined;
    this.#tx = undefined;
    secure.on('secure', () => {
      this.#r.tls = true;
    });
    this.#listen(secure);
  }

  async #auth(args: string): Promise<void> {
    if (this.#drops('auth')) return;
    const auth = this.#o.auth;
    const [mechanism = '', initial] = args.split(' ');
    const offered = auth?.mechanisms ?? ['PLAIN', 'LOGIN'];
    if (!auth || !offered.includes(mechanism.toUpperCase() as 'PLAIN')) {
      return this.#reply('auth', '504 5.5.4 Error: mechanism not supported');
    }
    if (mechanism.toUpperCase() === 'PLAIN') {
      if (initial === undefined) {
        this.#mode = 'auth-plain';
        return this.#reply('auth', '334 ');
      }
      return this.#plain(initial);
    }
    this.#mode = 'auth-login-user';
    return this.#reply('auth', '334 VXNlcm5hbWU6');
  }

  async #authStep(line: string): Promise<void> {
    if (line === '*') {
      this.#mode = 'command';
      return this.#reply('auth', '501 5.7.0 Authentication cancelled');
    }
    if (this.#mode === 'auth-plain') {
      this.#mode = 'command';
      return this.#plain(line);
    }
    if (this.#mode === 'auth-login-user') {
      this.#loginUser = Buffer.from(line, 'base64').toString('utf8');
      this.#mode = 'auth-login-pass';
      return this.#reply('auth', '334 UGFzc3dvcmQ6');
    }
    this.#mode = 'command';
    return this.#check('LOGIN', this.#loginUser, Buffer.from(line, 'base64').toString('utf8'));
  }

  #plain(response: string): Promise<void> {
    const [, username = '', password = ''] = Buffer.from(response, 'base64').toString('utf8').split('\0');
    return this.#check('PLAIN', username, password);
  }

  #check(mechanism: string, username: string, password: string): Promise<void> {
    const ok = this.#o.auth!.check(username, password);
    this.#r.authAttempts.push({ mechanism, username, ok });
    if (!ok) return this.#reply('auth', '535 5.7.8 Error: authentication failed');
    this.#r.authUser = username;
    return this.#reply('auth', '235 2.7.0 Authentication successful');
  }

  async #mail(line: string, args: string): Promise<void> {
    if (this.#drops('mail')) return;
    if (this.#r.helo === undefined) return this.#reply('mail', '503 5.5.1 Error: send HELO/EHLO first');
    if (this.#tx) return this.#reply('mail', '503 5.5.1 Error: nested MAIL command');
    const parsed = parsePathArgs(args, 'FROM');
    if (!parsed.ok) return this.#reply('mail', '501 5.5.4 Syntax: MAIL FROM:<address>');
    const params = Object.fromEntries(parsed.params);
    const limit = this.#ext.size;
    if (limit !== false && limit > 0 && typeof params.SIZE === 'string' && Number(params.SIZE) > limit) {
      return this.#reply('mail', '552 5.3.4 Message size exceeds fixed limit');
    }
    const reply = this.#o.mailReply?.(parsed.path, params) ?? '250 2.1.0 Ok';
    if (reply.startsWith('2')) {
      this.#tx = {
        mailLine: line,
        sender: parsed.path,
        mailParams: params,
        recipients: [],
        accepted: [],
        raw: [],
        body: [],
        chunks: [],
        size: 0,
      };
    }
    return this.#reply('mail', reply);
  }

  async #rcpt(line: string, args: string): Promise<void> {
    if (this.#drops('rcpt')) return;
    const tx = this.#tx;
    if (!tx) return this.#reply('rcpt', '503 5.5.1 Error: need MAIL command');
    const parsed = parsePathArgs(args, 'TO');
    if (!parsed.ok) return this.#reply('rcpt', '501 5.5.4 Syntax: RCPT TO:<address>');
    const params = Object.fromEntries(parsed.params);
    const reply = this.#o.rcptReply?.(parsed.path, params) ?? '250 2.1.5 Ok';
    tx.recipients.push({ address: parsed.path, params, line, reply });
    if (reply.startsWith('2')) tx.accepted.push(parsed.path);
    return this.#reply('rcpt', reply);
  }

  async #data(): Promise<void> {
    if (this.#drops('data')) return;
    if (!this.#tx) return this.#reply('data', '503 5.5.1 Error: need RCPT command');
    if (this.#tx.accepted.length === 0) return this.#reply('data', '554 5.5.1 Error: no valid recipients');
    this.#decoder = new BodyDecoder({ dotTransparency: true, bareLineEndings: 'allow' });
    this.#gotContent = false;
    this.#mode = 'data';
    return this.#reply('data', '354 End data with <CR><LF>.<CR><LF>');
  }

  async #bdat(args: string): Promise<void> {
    if (this.#drops('bdat')) return;
    const m = /^(\d+)( LAST)?$/i.exec(args.trim());
    if (!m) return this.#reply('bdat', '501 5.5.4 Syntax: BDAT count [LAST]');
    if (this.#tx && this.#tx.chunks.length === 0) this.#gotContent = false;
    this.#bdatLeft = Number(m[1]);
    this.#bdatLast = m[2] !== undefined;
    this.#bdatBad = !this.#tx || this.#tx.accepted.length === 0;
    this.#tx?.chunks.push(this.#bdatLeft);
    this.#mode = 'bdat';
    if (this.#bdatLeft === 0) {
      await this.#endOfChunk();
    }
  }

  async #endOfChunk(): Promise<void> {
    this.#mode = 'command';
    if (this.#bdatBad) {
      return this.#reply(
        'bdat',
        this.#tx ? '554 5.5.1 Error: no valid recipients' : '503 5.5.1 Error: need MAIL command',
      );
    }
    if (this.#bdatLast) return this.#endOfContent('BDAT');
    const tx = this.#tx!;
    const size = tx.chunks[tx.chunks.length - 1] ?? 0;
    return this.#reply(
      'bdat',
      this.#o.bdatReply?.(tx.chunks.length - 1, size) ?? `250 2.0.0 ${size} octets received`,
    );
  }

  async #endOfContent(method: 'DATA' | 'BDAT'): Promise<void> {
    if (this.#drops('dot')) return;
    const open = this.#tx!;
    this.#tx = undefined;
    const draft = {
      connection: this.#r.index,
      tls: this.#socket instanceof TLSSocket,
      helo: this.#r.helo,
      authUser: this.#r.authUser,
      mailLine: open.mailLine,
      sender: open.sender,
      mailParams: open.mailParams,
      recipients: open.recipients,
      accepted: open.accepted,
      method,
      raw: Buffer.concat(open.raw),
      body: Buffer.concat(open.body),
      chunks: open.chunks,
      size: open.size,
      reply: '',
    };
    const reply =
      this.#o.dataReply?.(draft) ?? `250 2.0.0 Ok: queued as S${this.#sink.transactions.length + 1}`;
    this.#sink.record({ ...draft, reply });
    return this.#reply('dot', reply);
  }
}
