import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { rootCertificates, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { AUTH_RESPONSE, endpoint, type SessionProtocolLog } from '../../../logging/session-log.ts';
import { parseMailbox } from '../../../smtp/address.ts';
import { encodeXtext } from '../../../smtp/xtext.ts';
import { BodyEncoder } from './body-encoder.ts';
import { replyError, SmtpClientError, type SmtpClientStage } from './errors.ts';
import { formatReply, ReplyFormatError, ReplyParser, type SmtpReply, syntheticReply } from './reply.ts';
import { certificateNames, matchCertificate } from './tls-names.ts';

export interface SmtpClientOptions {
  /** Peer name: logs, SNI, domain validation. */
  host: string;
  /** IP address to connect to. */
  address: string;
  port: number;
  ehloName: string;
  localAddress?: string;
  tls: {
    mode: 'none' | 'opportunistic' | 'required' | 'implicit';
    /**
     * `certificate`: the chain must validate; `domain`: the chain, and one of `matchNames` must
     * match the certificate (RFC 6125, wildcard as the whole leftmost label only).
     */
    verify: 'none' | 'certificate' | 'domain';
    /** SNI; default `host` (never sent for an IP address). */
    servername?: string;
    /** For verify `domain`; default `[host]`. */
    matchNames?: string[];
    /** Extra trust anchors, added to Node's root store. */
    ca?: string | Buffer | Array<string | Buffer>;
  };
  /** Sent only over TLS unless `allowPlaintextAuth`. */
  auth?: { username: string; password: string; mechanisms?: Array<'PLAIN' | 'LOGIN'> };
  allowPlaintextAuth?: boolean;
  /** Milliseconds; defaults from RFC 5321 §4.5.3.2. */
  timeouts?: Partial<SmtpClientTimeouts>;
  /** Use BDAT when the peer offers CHUNKING (default true; BINARYMIME always needs it). */
  chunking?: boolean;
  /** Bytes per BDAT chunk (default 64 KiB). */
  bdatChunkSize?: number;
  signal?: AbortSignal;
  /**
   * Protocol log: each command line sent (AUTH exchanges as the mechanism name only, content
   * never) and each reply received, in one line.
   */
  protocolLog?: (direction: 'out' | 'in', text: string) => void;
  /**
   * The send connector's protocol log (src/logging/): connect, every line, TLS, content sizes and
   * the disconnect, with the same redaction. Absent: nothing is logged.
   */
  sessionLog?: SessionProtocolLog;
}

export interface SmtpClientTimeouts {
  connect: number;
  greeting: number;
  command: number;
  dataChunk: number;
  dataEnd: number;
}

export const DEFAULT_TIMEOUTS: SmtpClientTimeouts = {
  connect: 30_000,
  greeting: 300_000,
  command: 300_000,
  dataChunk: 180_000,
  dataEnd: 600_000,
};

export interface OutboundRecipient {
  address: string;
  notify?: 'NEVER' | ReadonlyArray<'SUCCESS' | 'FAILURE' | 'DELAY'>;
  /** `type;address` as stored (`rfc822;a@b`), or a bare address (taken as rfc822). */
  orcpt?: string;
}

export interface OutboundEnvelope {
  /** '' is the null reverse path. */
  sender: string;
  recipients: OutboundRecipient[];
  size: number;
  bodyType: '7BIT' | '8BITMIME' | 'BINARYMIME';
  smtpUtf8: boolean;
  dsn: { ret?: 'FULL' | 'HDRS'; envid?: string };
}

export interface TransactionResult {
  mail: SmtpReply;
  /** Same order as the envelope's; a recipient never sent (MAIL refused) gets the MAIL reply. */
  recipients: SmtpReply[];
  /** Final reply to DATA / the last BDAT; absent when no recipient was accepted. */
  data?: SmtpReply;
}

export type SecureState =
  | { tls: false }
  | { tls: true; protocol: string; cipher: string; authorized: boolean; peerNames: string[] };

export interface SmtpClientConnection {
  readonly greeting: SmtpReply;
  /** EHLO keywords, upper-case, to their parameters ('' when none). */
  readonly extensions: ReadonlyMap<string, string>;
  readonly secure: SecureState;
  /** The identity AUTH succeeded with, if any. */
  readonly authenticated: string | undefined;
  /** False after a timeout, a protocol error, a 421, or close. */
  readonly usable: boolean;
  /** Transactions whose content the peer accepted. */
  readonly messagesSent: number;
  /** Throws SmtpClientError only when the connection broke; refusals are results. */
  send(envelope: OutboundEnvelope, body: () => Readable): Promise<TransactionResult>;
  /** RSET (send() does it itself after a transaction left open). */
  reset(): Promise<void>;
  /** QUIT, wait briefly for the reply, close. Never throws. */
  quit(): Promise<void>;
  /** Destroys the connection now. */
  close(): void;
}

/** How long quit() waits for the reply to QUIT. */
const QUIT_WAIT_MS = 2000;
/** BDAT chunks in flight before the client waits for the oldest reply (with PIPELINING). */
const BDAT_WINDOW = 8;
const CRLF = '\r\n';

interface Waiter {
  readonly stage: SmtpClientStage;
  readonly what: string;
  readonly timeoutMs: number;
  /** The timer starts only once released (the end of DATA waits for the content to be sent). */
  deferred: boolean;
  timer?: NodeJS.Timeout;
  settled: boolean;
  resolve(r: SmtpReply): void;
  reject(e: SmtpClientError): void;
}

interface Pending {
  readonly promise: Promise<SmtpReply>;
  readonly waiter: Waiter;
}

const isOk = (r: SmtpReply) => r.code >= 200 && r.code < 300;
// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting non-ASCII
const nonAscii = (s: string) => /[^\x00-\x7f]/.test(s);
const noop = () => undefined;

/**
 * Opens a connection: TCP (and TLS first for `implicit`), greeting, EHLO (HELO when EHLO is
 * refused with 5xx), STARTTLS per the TLS mode and a second EHLO, AUTH when configured.
 * Throws SmtpClientError; never leaves a socket open behind a throw.
 */
export async function openSmtpConnection(o: SmtpClientOptions): Promise<SmtpClientConnection> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  if (o.signal?.aborted) throw abortError('connect');
  let socket: Socket;
  try {
    socket = await connectTcp(o, timeouts.connect);
  } catch (error) {
    o.sessionLog?.info(error instanceof Error ? error.message : String(error), o.host);
    o.sessionLog?.disconnect('Local');
    throw error;
  }
  const connection = new Connection(o, timeouts, socket);
  try {
    await connection.start();
    return connection;
  } catch (error) {
    connection.close();
    throw error;
  }
}

function abortError(stage: SmtpClientStage): SmtpClientError {
  return new SmtpClientError(stage, '4.3.2', 'delivery attempt aborted locally', { permanent: false });
}

function peerLabel(o: SmtpClientOptions): string {
  return `${o.host}[${o.address}]:${o.port}`;
}

function connectTcp(o: SmtpClientOptions, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({
      host: o.address,
      port: o.port,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    const settle = (error?: SmtpClientError) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      o.signal?.removeEventListener('abort', onAbort);
      if (error) {
        socket.on('error', noop);
        socket.destroy();
        reject(error);
      } else resolve(socket);
    };
    const onConnect = () => settle();
    const onError = (e: NodeJS.ErrnoException) =>
      settle(
        new SmtpClientError('connect', '4.4.1', `cannot connect to ${peerLabel(o)}: ${e.code ?? e.message}`, {
          cause: e,
        }),
      );
    const onAbort = () => settle(abortError('connect'));
    const timer = setTimeout(
      () =>
        settle(new SmtpClientError('connect', '4.4.1', `no answer from ${peerLabel(o)} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', onConnect);
    socket.once('error', onError);
    o.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class Connection implements SmtpClientConnection {
  readonly #o: SmtpClientOptions;
  readonly #t: SmtpClientTimeouts;
  #socket: Socket;
  #parser = new ReplyParser();
  #waiters: Waiter[] = [];
  /** Set once the connection cannot be used any more; what every later call throws. */
  #broken: SmtpClientError | undefined;
  /** The 421 the peer closed with, handed to whatever was still waiting. */
  #closingReply: SmtpReply | undefined;
  /** Called when the connection breaks, so writes waiting for drain stop waiting. */
  readonly #onBreak = new Set<() => void>();
  #socketError: NodeJS.ErrnoException | undefined;
  #greeting: SmtpReply = { code: 0, lines: [] };
  #extensions = new Map<string, string>();
  #secure: SecureState = { tls: false };
  #authenticated: string | undefined;
  #messagesSent = 0;
  #needsReset = false;
  #busy = false;

  constructor(o: SmtpClientOptions, timeouts: SmtpClientTimeouts, socket: Socket) {
    this.#o = o;
    this.#t = timeouts;
    this.#socket = socket;
    socket.setNoDelay(true);
    o.sessionLog?.connect(
      endpoint(socket.localAddress, socket.localPort),
      endpoint(socket.remoteAddress, socket.remotePort),
      o.host,
    );
    this.#attach(socket);
    o.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  get greeting(): SmtpReply {
    return this.#greeting;
  }
  get extensions(): ReadonlyMap<string, string> {
    return this.#extensions;
  }
  get secure(): SecureState {
    return this.#secure;
  }
  get authenticated(): string | undefined {
    return this.#authenticated;
  }
  get usable(): boolean {
    return this.#broken === undefined;
  }
  get messagesSent(): number {
    return this.#messagesSent;
  }

  // ---- session setup ----

  async start(): Promise<void> {
    const mode = this.#o.tls.mode;
    // The greeting is awaited from the first byte: a peer talking before TLS is up is an error.
    if (mode === 'implicit') await this.#handshake();
    const greeting = this.#expect('greeting', 'the greeting', this.#t.greeting);
    this.#greeting = await greeting.promise;
    this.#checkGreeting(this.#greeting);
    await this.#hello();
    if ((mode === 'opportunistic' || mode === 'required') && !this.#secure.tls) {
      if (this.#extensions.has('STARTTLS')) {
        const r = await this.#command('STARTTLS', 'starttls', 'STARTTLS');
        if (r.code === 220) {
          // Anything the peer sent after its 220 and before the handshake would be read as if it
          // came over TLS (the response-injection attack): refuse it.
          if (this.#parser.pending) {
            throw this.#fail(
              new SmtpClientError('protocol', '4.5.0', 'data after the 220 reply to STARTTLS'),
            );
          }
          await this.#handshake();
          await this.#hello();
        } else if (r.code === 421) {
          throw this.#broken!;
        } else if (mode === 'required') {
          throw replyError('starttls', r, `STARTTLS refused by ${this.#o.host}, and TLS is required`, {
            status: r.enhanced ?? '4.7.4',
            permanent: false,
          });
        }
        // Opportunistic: a refused STARTTLS leaves the session in plaintext, as Postfix does.
      } else if (mode === 'required') {
        throw new SmtpClientError(
          'starttls',
          '4.7.4',
          `${this.#o.host} does not offer STARTTLS, and TLS is required`,
        );
      }
    }
    if (this.#o.auth) await this.#authenticate(this.#o.auth);
  }

  #checkGreeting(r: SmtpReply): void {
    if (r.code === 220) return;
    if (r.code === 421) throw replyError('greeting', r, `${this.#o.host} is not accepting connections`);
    if (r.code >= 400) {
      // RFC 5321 §3.1: after a 554 greeting the client should still say QUIT.
      this.#writeNow(`QUIT${CRLF}`);
      throw replyError('greeting', r, `${this.#o.host} refused the connection`);
    }
    throw this.#fail(replyError('protocol', r, 'unexpected greeting', { status: '4.5.0', permanent: false }));
  }

  async #hello(): Promise<void> {
    this.#extensions = new Map();
    const r = await this.#command(`EHLO ${this.#o.ehloName}`, 'ehlo', 'EHLO');
    if (r.code === 250) {
      this.#extensions = parseExtensions(r);
      return;
    }
    if (r.code === 421) throw this.#broken!;
    if (r.code >= 500) {
      const helo = await this.#command(`HELO ${this.#o.ehloName}`, 'ehlo', 'HELO');
      if (helo.code === 250) return;
      if (helo.code === 421) throw this.#broken!;
      throw replyError('ehlo', helo, `${this.#o.host} refused HELO`);
    }
    throw replyError('ehlo', r, `${this.#o.host} refused EHLO`);
  }

  async #handshake(): Promise<void> {
    this.#throwIfBroken();
    const o = this.#o;
    const plain = this.#socket;
    this.#detach(plain);
    plain.on('error', noop);
    const name = o.tls.servername ?? o.host;
    const extra = o.tls.ca === undefined ? [] : Array.isArray(o.tls.ca) ? o.tls.ca : [o.tls.ca];
    const secure: TLSSocket = tlsConnect({
      socket: plain,
      ...(isIP(name) ? {} : { servername: name }),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ...(extra.length > 0 ? { ca: [...rootCertificates, ...extra] } : {}),
    });
    this.#socket = secure;
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: SmtpClientError) => {
        clearTimeout(timer);
        secure.off('secureConnect', onSecure);
        secure.off('error', onError);
        secure.off('close', onClose);
        this.#onBreak.delete(onAbort);
        if (error) reject(this.#fail(error));
        else resolve();
      };
      const onSecure = () => settle();
      const onError = (e: Error) =>
        settle(
          new SmtpClientError('tls', '4.7.5', `TLS handshake with ${o.host} failed: ${e.message}`, {
            cause: e,
          }),
        );
      const onClose = () =>
        settle(
          new SmtpClientError('tls', '4.7.5', `${o.host} closed the connection during the TLS handshake`),
        );
      const onAbort = () => settle(this.#broken ?? abortError('tls'));
      const timer = setTimeout(
        () => settle(new SmtpClientError('tls', '4.4.2', `TLS handshake with ${o.host} timed out`)),
        this.#t.command,
      );
      secure.once('secureConnect', onSecure);
      secure.once('error', onError);
      secure.once('close', onClose);
      this.#onBreak.add(onAbort);
    });
    this.#parser = new ReplyParser();
    this.#attach(secure);
    const cert = secure.getPeerCertificate();
    const peerNames = certificateNames(cert);
    this.#secure = {
      tls: true,
      protocol: secure.getProtocol() ?? 'unknown',
      cipher: secure.getCipher()?.name ?? 'unknown',
      authorized: secure.authorized,
      peerNames,
    };
    o.sessionLog?.info(
      `TLS negotiated: version=${this.#secure.protocol} cipher=${this.#secure.cipher} certificate=${secure.authorized ? 'trusted' : 'not trusted'}`,
      o.tls.mode === 'implicit' ? 'implicit TLS' : 'STARTTLS',
    );
    if (o.tls.verify === 'none') return;
    if (!secure.authorized) {
      throw this.#fail(
        new SmtpClientError(
          'tls',
          '4.7.5',
          `certificate chain check failed for ${o.host}: ${String(secure.authorizationError ?? 'not trusted')}`,
        ),
      );
    }
    if (o.tls.verify === 'domain') {
      const wanted = o.tls.matchNames ?? [o.host];
      if (matchCertificate(peerNames, wanted) === undefined) {
        throw this.#fail(
          new SmtpClientError(
            'tls',
            '4.7.5',
            `certificate name check failed for ${o.host}: it names ${peerNames.join(', ') || 'nothing'}, expected ${wanted.join(' or ')}`,
          ),
        );
      }
    }
  }

  async #authenticate(auth: NonNullable<SmtpClientOptions['auth']>): Promise<void> {
    const host = this.#o.host;
    if (!this.#secure.tls && !this.#o.allowPlaintextAuth) {
      throw new SmtpClientError('auth', '4.7.0', `not sending credentials to ${host} without TLS`);
    }
    const params = this.#extensions.get('AUTH');
    if (params === undefined) throw new SmtpClientError('auth', '4.7.0', `${host} does not offer AUTH`);
    const offered = params.toUpperCase().split(/\s+/);
    const wanted = auth.mechanisms ?? ['PLAIN', 'LOGIN'];
    const mechanism = (['PLAIN', 'LOGIN'] as const).find((m) => wanted.includes(m) && offered.includes(m));
    if (!mechanism) {
      throw new SmtpClientError(
        'auth',
        '4.7.0',
        `${host} offers AUTH ${params}, none of ${wanted.join(' ')}`,
      );
    }
    const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
    let r: SmtpReply;
    // The `what` of these commands never carries the credentials: it ends up in error messages.
    if (mechanism === 'PLAIN') {
      const response = b64(`\0${auth.username}\0${auth.password}`);
      r = await this.#command(`AUTH PLAIN ${response}`, 'auth', 'AUTH PLAIN', 'AUTH PLAIN ****');
      if (r.code === 334) r = await this.#command(response, 'auth', 'AUTH PLAIN response', AUTH_RESPONSE);
    } else {
      r = await this.#command('AUTH LOGIN', 'auth', 'AUTH LOGIN', 'AUTH LOGIN');
      if (r.code === 334)
        r = await this.#command(b64(auth.username), 'auth', 'AUTH LOGIN username', AUTH_RESPONSE);
      if (r.code === 334)
        r = await this.#command(b64(auth.password), 'auth', 'AUTH LOGIN password', AUTH_RESPONSE);
    }
    if (r.code === 334) {
      // The peer wants yet another step: cancel the exchange (RFC 4954 §4).
      r = await this.#command('*', 'auth', 'AUTH cancellation', AUTH_RESPONSE);
    }
    if (r.code === 235) {
      this.#authenticated = auth.username;
      return;
    }
    if (r.code === 421) throw this.#broken!;
    const what = `authentication as ${auth.username} with ${mechanism} failed`;
    if (r.code === 535) throw replyError('auth', r, what, { status: '5.7.8', permanent: false });
    throw replyError('auth', r, what);
  }

  // ---- transactions ----

  async send(envelope: OutboundEnvelope, body: () => Readable): Promise<TransactionResult> {
    if (this.#busy) throw new Error('SmtpClientConnection.send() called while a transaction is running');
    const broken = this.#broken;
    if (broken) {
      throw new SmtpClientError('mail', broken.status, `connection not usable: ${broken.message}`, {
        permanent: false,
        cause: broken,
      });
    }
    this.#busy = true;
    try {
      if (this.#needsReset) await this.#reset('mail');
      return await this.#transaction(envelope, body);
    } finally {
      this.#busy = false;
    }
  }

  /** Refusals decided without asking the peer: it lacks what the message needs. */
  #refusal(env: OutboundEnvelope, needsUtf8: boolean): SmtpReply | undefined {
    const ext = this.#extensions;
    const host = this.#o.host;
    if (env.sender !== '' && !parseMailbox(env.sender, true).ok) {
      return syntheticReply(553, '5.1.7', `sender address <${printable(env.sender)}> is not valid`);
    }
    if (needsUtf8 && !ext.has('SMTPUTF8')) {
      return syntheticReply(554, '5.6.7', `${host} does not support SMTPUTF8, which the message needs`);
    }
    if (env.bodyType === 'BINARYMIME' && !(ext.has('CHUNKING') && ext.has('BINARYMIME'))) {
      return syntheticReply(
        554,
        '5.6.3',
        `${host} does not support BINARYMIME with CHUNKING, which the message needs`,
      );
    }
    const limit = Number(ext.get('SIZE') ?? '0');
    if (Number.isSafeInteger(limit) && limit > 0 && env.size > limit) {
      return syntheticReply(
        552,
        '5.3.4',
        `message of ${env.size} bytes exceeds the ${limit}-byte limit of ${host}`,
      );
    }
    return undefined;
  }

  async #transaction(env: OutboundEnvelope, body: () => Readable): Promise<TransactionResult> {
    const ext = this.#extensions;
    const needsUtf8 = env.smtpUtf8 || nonAscii(env.sender) || env.recipients.some((r) => nonAscii(r.address));
    const refusal = this.#refusal(env, needsUtf8);
    if (refusal) return { mail: refusal, recipients: env.recipients.map(() => refusal) };

    const useBdat = ext.has('CHUNKING') && (this.#o.chunking !== false || env.bodyType === 'BINARYMIME');
    const pipelining = ext.has('PIPELINING');
    const mailLine = this.#mailCommand(env, needsUtf8);
    // A recipient whose address could not be written safely is refused here and never sent.
    const recipients: Array<SmtpReply | undefined> = env.recipients.map((r) =>
      parseMailbox(r.address, true).ok
        ? undefined
        : syntheticReply(553, '5.1.3', `recipient address <${printable(r.address)}> is not valid`),
    );
    const toSend = env.recipients.flatMap((r, i) =>
      recipients[i] ? [] : [{ i, line: this.#rcptCommand(r) }],
    );
    if (toSend.length === 0) {
      const r = recipients[0] ?? syntheticReply(554, '5.5.1', 'no recipients');
      return { mail: r, recipients: recipients.map((x) => x ?? r) };
    }
    const t = this.#t;
    let mail: SmtpReply;
    let dataGo: SmtpReply | undefined;

    if (pipelining) {
      // RFC 2920: MAIL, every RCPT and DATA in one write; the replies come back in order.
      const mailP = this.#expect('mail', 'MAIL FROM', t.command);
      const rcptP = toSend.map(() => this.#expect('rcpt', 'RCPT TO', t.command));
      const dataP = useBdat ? undefined : this.#expect('data', 'DATA', t.command);
      this.#writeNow(
        [mailLine, ...toSend.map((r) => r.line), ...(useBdat ? [] : ['DATA'])].join(CRLF) + CRLF,
      );
      mail = await mailP.promise;
      for (const [k, p] of rcptP.entries()) recipients[toSend[k]!.i] = await p.promise;
      if (dataP) dataGo = await dataP.promise;
    } else {
      mail = await this.#command(mailLine, 'mail', 'MAIL FROM');
      if (isOk(mail)) {
        for (const { i, line } of toSend) {
          recipients[i] = this.#closingReply ?? (await this.#command(line, 'rcpt', 'RCPT TO'));
        }
      }
    }

    if (!isOk(mail)) {
      if (dataGo?.code === 354) await this.#emptyData();
      const sent = new Set(toSend.map((s) => s.i));
      return { mail, recipients: recipients.map((r, i) => (sent.has(i) || !r ? mail : r)) };
    }
    const results = recipients.map((r) => r!);
    const accepted = results.some(isOk);
    if (!accepted) {
      if (dataGo?.code === 354) await this.#emptyData();
      else if (!this.#closingReply) this.#needsReset = true; // MAIL was accepted: the transaction is open
      return { mail, recipients: results };
    }
    if (this.#closingReply) return { mail, recipients: results, data: this.#closingReply };

    let data: SmtpReply;
    try {
      if (useBdat) {
        data = await this.#sendBdat(body, env.bodyType === 'BINARYMIME', pipelining);
      } else {
        dataGo ??= await this.#command('DATA', 'data', 'DATA');
        if (dataGo.code !== 354) {
          if (!this.#closingReply) this.#needsReset = true;
          return { mail, recipients: results, data: dataGo };
        }
        data = await this.#sendData(body);
      }
    } catch (error) {
      if (this.#closingReply) return { mail, recipients: results, data: this.#closingReply };
      throw error;
    }
    if (isOk(data)) this.#messagesSent++;
    return { mail, recipients: results, data };
  }

  /** A 354 after no recipient was accepted (RFC 2920 §3.1): end the data at once, ignore the reply. */
  async #emptyData(): Promise<void> {
    const end = this.#expect('data', 'end of data', this.#t.dataEnd);
    this.#writeNow(`.${CRLF}`);
    await end.promise;
  }

  #mailCommand(env: OutboundEnvelope, needsUtf8: boolean): string {
    const ext = this.#extensions;
    let line = `MAIL FROM:<${env.sender}>`;
    if (ext.has('SIZE')) line += ` SIZE=${env.size}`;
    if (env.bodyType === '8BITMIME' && ext.has('8BITMIME')) line += ' BODY=8BITMIME';
    // Without 8BITMIME on the peer, 8-bit content is sent anyway (as Postfix does by default).
    if (env.bodyType === 'BINARYMIME') line += ' BODY=BINARYMIME';
    if (needsUtf8) line += ' SMTPUTF8';
    if (ext.has('DSN')) {
      if (env.dsn.ret) line += ` RET=${env.dsn.ret}`;
      if (env.dsn.envid !== undefined && env.dsn.envid !== '') line += ` ENVID=${xtext(env.dsn.envid)}`;
    }
    return line;
  }

  #rcptCommand(r: OutboundRecipient): string {
    let line = `RCPT TO:<${r.address}>`;
    if (this.#extensions.has('DSN')) {
      if (r.notify === 'NEVER') line += ' NOTIFY=NEVER';
      else if (r.notify && r.notify.length > 0) line += ` NOTIFY=${r.notify.join(',')}`;
      if (r.orcpt) line += ` ORCPT=${encodeOrcpt(r.orcpt)}`;
    }
    return line;
  }

  /** DATA content: dot-stuffed, CRLF only, streamed with back pressure, then `.CRLF`. */
  async #sendData(body: () => Readable): Promise<SmtpReply> {
    const encoder = new BodyEncoder({ dotStuffing: true });
    // Registered before the first byte goes out, so a reply in the middle of the content is
    // matched to it rather than being "unexpected"; its timer starts after the last byte.
    const final = this.#expect('data', 'end of data', this.#t.dataEnd, true);
    const early = () => final.waiter.settled;
    let sent = 0;
    try {
      for await (const chunk of body()) {
        if (early()) break;
        const out = encoder.encode(asBuffer(chunk));
        sent += out.length;
        if (out.length > 0) await this.#write(out, 'data');
        if (early()) break;
      }
      if (!early()) {
        const end = encoder.end();
        sent += end.length;
        await this.#write(end, 'data');
      }
    } catch (error) {
      if (!early()) throw this.#bodyFailure(error);
    }
    // Content is never logged, only its size (dot-stuffed, with the final `.`).
    this.#o.sessionLog?.info(`${sent} bytes of message content sent`, 'DATA');
    if (early()) return this.#earlyReply(await final.promise);
    this.#release(final.waiter);
    return final.promise;
  }

  /**
   * A reply before our end of content: the peer gave up on the message (552 and close, typically).
   * The conversation is out of step, so the connection is finished; a refusal is still a result,
   * a "success" before the end is a protocol error.
   */
  #earlyReply(r: SmtpReply): SmtpReply {
    const error = new SmtpClientError(
      'data',
      '4.5.0',
      `reply before the end of the message: ${formatReply(r)}`,
      {
        reply: r,
        permanent: false,
      },
    );
    this.#fail(error);
    if (r.code < 400) throw error;
    return r;
  }

  #bodyFailure(error: unknown): SmtpClientError {
    if (error instanceof SmtpClientError) return error;
    // Mid-DATA there is no way back to the command state but closing the connection.
    const message = error instanceof Error ? error.message : String(error);
    return this.#fail(
      new SmtpClientError('data', '4.3.0', `cannot read the message body: ${message}`, {
        permanent: false,
        cause: error,
      }),
    );
  }

  /** RFC 3030 BDAT chunks; text bodies get CRLF-normalised, BINARYMIME is sent as it is. */
  async #sendBdat(body: () => Readable, binary: boolean, pipelining: boolean): Promise<SmtpReply> {
    const encoder = binary ? undefined : new BodyEncoder({ dotStuffing: false });
    const chunkSize = Math.max(1, this.#o.bdatChunkSize ?? 64 * 1024);
    const t = this.#t;
    const inFlight: Pending[] = [];
    let failure: SmtpReply | undefined;
    let held: Buffer[] = [];
    let heldBytes = 0;
    let sent = 0;

    const sendChunk = async (data: Buffer, last: boolean): Promise<SmtpReply | undefined> => {
      const p = this.#expect('data', last ? 'BDAT LAST' : 'BDAT', last ? t.dataEnd : t.dataChunk);
      this.#writeNow(`BDAT ${data.length}${last ? ' LAST' : ''}${CRLF}`);
      sent += data.length;
      if (data.length > 0) await this.#write(data, 'data');
      if (last) return p.promise;
      if (!pipelining) {
        const r = await p.promise;
        if (!isOk(r)) failure ??= r;
        return undefined;
      }
      p.promise.then((r) => {
        if (!isOk(r)) failure ??= r;
      }, noop);
      inFlight.push(p);
      while (inFlight.length > 0 && (inFlight[0]!.waiter.settled || inFlight.length > BDAT_WINDOW)) {
        await inFlight.shift()!.promise;
      }
      return undefined;
    };

    let final: SmtpReply | undefined;
    try {
      for await (const chunk of body()) {
        const out = encoder ? encoder.encode(asBuffer(chunk)) : asBuffer(chunk);
        if (out.length === 0) continue;
        held.push(out);
        heldBytes += out.length;
        while (heldBytes >= chunkSize && !failure) {
          const all = held.length === 1 ? held[0]! : Buffer.concat(held);
          await sendChunk(all.subarray(0, chunkSize), false);
          held = all.length > chunkSize ? [all.subarray(chunkSize)] : [];
          heldBytes = all.length - chunkSize;
        }
        if (failure) break;
      }
      if (!failure) {
        if (encoder) {
          held.push(encoder.end());
        }
        final = await sendChunk(Buffer.concat(held), true);
      }
      for (const p of inFlight) await p.promise;
    } catch (error) {
      throw this.#bodyFailure(error);
    }
    this.#o.sessionLog?.info(`${sent} bytes of message content sent`, 'BDAT');
    if (failure) {
      // RFC 3030 §2: a failed chunk fails the transaction; what follows is discarded by the peer.
      if (!this.#closingReply) this.#needsReset = true;
      return failure;
    }
    return final!;
  }

  reset(): Promise<void> {
    return this.#reset('protocol');
  }

  /** Inside send() the stage is `mail`: a reused connection that fails here can be replaced. */
  async #reset(stage: SmtpClientStage): Promise<void> {
    this.#throwIfBroken();
    const r = await this.#command('RSET', stage, 'RSET');
    this.#needsReset = false;
    if (r.code === 421) throw this.#broken!;
    if (!isOk(r)) {
      throw this.#fail(replyError(stage, r, `${this.#o.host} refused RSET`, { permanent: false }));
    }
  }

  async quit(): Promise<void> {
    if (this.#broken) {
      this.close();
      return;
    }
    try {
      const p = this.#expect('protocol', 'QUIT', Math.min(QUIT_WAIT_MS, this.#t.command));
      this.#writeNow(`QUIT${CRLF}`);
      await p.promise;
    } catch {
      // A peer that does not answer QUIT changes nothing.
    }
    this.close();
  }

  close(): void {
    this.#fail(new SmtpClientError('protocol', '4.4.2', 'connection closed locally', { permanent: false }));
  }

  // ---- replies and the socket ----

  #attach(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  #detach(socket: Socket): void {
    socket.off('data', this.#onData);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
  }

  readonly #onData = (chunk: Buffer) => {
    if (this.#broken) return;
    let replies: SmtpReply[];
    try {
      replies = this.#parser.push(chunk);
    } catch (error) {
      // Whatever goes wrong reading the peer's bytes ends this connection, never the process.
      const message =
        error instanceof ReplyFormatError ? error.message : `unreadable reply (${String(error)})`;
      this.#fail(
        new SmtpClientError('protocol', '4.5.0', `${this.#o.host}: ${message}`, { permanent: false }),
      );
      return;
    }
    for (const r of replies) {
      if (this.#broken) return;
      this.#dispatch(r);
    }
  };

  readonly #onError = (error: NodeJS.ErrnoException) => {
    this.#socketError = error;
  };

  readonly #onClose = () => {
    const head = this.#waiters[0];
    const reason = this.#socketError ? ` (${this.#socketError.code ?? this.#socketError.message})` : '';
    const what = head ? ` while waiting for the reply to ${head.what}` : '';
    this.#fail(
      new SmtpClientError(
        head?.stage ?? 'protocol',
        '4.4.2',
        `${this.#o.host} closed the connection${what}${reason}`,
        {
          permanent: false,
        },
      ),
    );
  };

  readonly #onAbort = () => {
    this.#fail(abortError(this.#waiters[0]?.stage ?? 'protocol'));
  };

  #dispatch(r: SmtpReply): void {
    this.#log('in', formatReply(r));
    const w = this.#waiters.shift();
    if (!w) {
      this.#fail(
        new SmtpClientError('protocol', '4.5.0', `unexpected reply from ${this.#o.host}: ${formatReply(r)}`, {
          reply: r,
          permanent: false,
        }),
      );
      return;
    }
    settle(w);
    if (r.code === 421) {
      // The peer is closing: whatever else was waiting gets the same answer.
      this.#closingReply = r;
      const rest = this.#waiters.splice(0);
      w.resolve(r);
      for (const other of rest) {
        settle(other);
        other.resolve(r);
      }
      this.#fail(replyError(w.stage, r, `${this.#o.host} closed the connection`, { permanent: false }));
      return;
    }
    w.resolve(r);
    this.#armHead();
  }

  #expect(stage: SmtpClientStage, what: string, timeoutMs: number, deferred = false): Pending {
    let waiter!: Waiter;
    const promise = new Promise<SmtpReply>((resolve, reject) => {
      waiter = { stage, what, timeoutMs, deferred, settled: false, resolve, reject };
    });
    promise.catch(noop);
    if (this.#broken) {
      waiter.settled = true;
      waiter.reject(this.#broken);
    } else {
      this.#waiters.push(waiter);
      this.#armHead();
    }
    return { promise, waiter };
  }

  #release(w: Waiter): void {
    w.deferred = false;
    this.#armHead();
  }

  #armHead(): void {
    const w = this.#waiters[0];
    if (!w || w.deferred || w.timer) return;
    w.timer = setTimeout(() => {
      this.#fail(
        new SmtpClientError(
          w.stage,
          '4.4.2',
          `no reply from ${this.#o.host} to ${w.what} in ${w.timeoutMs} ms`,
          {
            permanent: false,
          },
        ),
      );
    }, w.timeoutMs);
  }

  /** `logAs` is what the protocol logs show instead of the line (AUTH lines never go there as sent). */
  #command(line: string, stage: SmtpClientStage, what: string, logAs?: string): Promise<SmtpReply> {
    const p = this.#expect(stage, what, this.#t.command);
    this.#writeNow(line + CRLF, logAs ?? (stage === 'auth' ? what : undefined));
    return p.promise;
  }

  #log(direction: 'out' | 'in', text: string, authPayload = false): void {
    const session = this.#o.sessionLog;
    if (session) {
      if (direction === 'out') session.sent(text, authPayload);
      else session.received(text);
    }
    const log = this.#o.protocolLog;
    if (!log) return;
    try {
      log(direction, text);
    } catch {
      // A failing logger must not break the conversation.
    }
  }

  /** Writes command lines; `logAs` replaces them in the protocol log (credentials). */
  #writeNow(text: string, logAs?: string): void {
    if (this.#broken || this.#socket.destroyed) return;
    if (logAs !== undefined) this.#log('out', logAs, logAs === AUTH_RESPONSE);
    else for (const line of text.split(CRLF)) if (line !== '') this.#log('out', line);
    this.#socket.write(Buffer.from(text, 'utf8'));
  }

  /** Writes content, waiting (up to the data-chunk timeout) while the socket's buffer is full. */
  async #write(data: Buffer, stage: SmtpClientStage): Promise<void> {
    this.#throwIfBroken();
    const socket = this.#socket;
    if (socket.write(data)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        socket.off('drain', done);
        this.#onBreak.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#fail(
          new SmtpClientError(stage, '4.4.2', `${this.#o.host} stopped reading for ${this.#t.dataChunk} ms`, {
            permanent: false,
          }),
        );
      }, this.#t.dataChunk);
      socket.on('drain', done);
      this.#onBreak.add(done);
    });
    this.#throwIfBroken();
  }

  #throwIfBroken(): void {
    if (this.#broken) throw this.#broken;
  }

  /** Marks the connection broken (the first reason wins), fails every waiter, destroys the socket. */
  #fail(error: SmtpClientError): SmtpClientError {
    if (this.#broken) return this.#broken;
    this.#broken = error;
    this.#o.sessionLog?.disconnect(error.message);
    for (const w of this.#waiters.splice(0)) {
      settle(w);
      w.reject(error);
    }
    for (const f of [...this.#onBreak]) f();
    this.#onBreak.clear();
    this.#o.signal?.removeEventListener('abort', this.#onAbort);
    this.#socket.on('error', noop);
    this.#socket.destroy();
    return error;
  }
}

function settle(w: Waiter): void {
  w.settled = true;
  if (w.timer) clearTimeout(w.timer);
}

function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('the message body must be a stream of Buffers');
}

function parseExtensions(r: SmtpReply): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of r.lines.slice(1)) {
    const [keyword = '', ...rest] = line.trim().split(/\s+/);
    let key = keyword.toUpperCase();
    let params = rest.join(' ');
    if (key.startsWith('AUTH=')) {
      // The pre-RFC 4954 form some servers still add next to `AUTH`.
      params = [keyword.slice(5), params].filter(Boolean).join(' ');
      key = 'AUTH';
      const known = map.get('AUTH');
      if (known !== undefined) params = [known, params].filter(Boolean).join(' ');
    }
    if (/^[A-Z0-9][A-Z0-9-]*$/.test(key)) map.set(key, params);
  }
  return map;
}

function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters
  return s.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 200);
}

/** xtext of an ASCII value; anything else as xtext of its UTF-8 bytes. */
function xtext(value: string): string {
  if (!nonAscii(value)) return encodeXtext(value);
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out +=
      byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d
        ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

/**
 * ORCPT (RFC 3461 §4.2): `rfc822;` + xtext; an address with non-ASCII characters as `utf-8;` with
 * RFC 6533 utf-8-addr-xtext (`\x{HEX}` for non-ASCII and for `+`, `=`, `\`, controls, space).
 */
export function encodeOrcpt(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  const typed = semi > 0 && /^[A-Za-z0-9-]+$/.test(orcpt.slice(0, semi));
  const type = typed ? orcpt.slice(0, semi) : 'rfc822';
  const address = typed ? orcpt.slice(semi + 1) : orcpt;
  if (!nonAscii(address)) return `${type};${encodeXtext(address)}`;
  let out = '';
  for (const ch of address) {
    const c = ch.codePointAt(0)!;
    out +=
      c < 0x21 || c > 0x7e || c === 0x2b || c === 0x3d || c === 0x5c
        ? `\\x{${c.toString(16).toUpperCase()}}`
        : ch;
  }
  return `utf-8;${out}`;
}
