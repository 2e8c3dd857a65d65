import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { MessageVerification } from '../agents/email-auth/verifier.ts';
import { editSection, HeaderSection } from '../agents/header-section.ts';
import type { AgentSession, Outcome } from '../agents/types.ts';
import type { Permission, ReceiveConnectorConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { endpoint, type SessionProtocolLog } from '../logging/session-log.ts';
import { nullEventBus, type ProtocolEvent } from '../observe/events.ts';
import { type AuthResults, type BodyWriter, type DsnNotify, QueueUnavailableError } from '../queue/types.ts';
import { parseMailbox } from '../smtp/address.ts';
import { BodyDecoder } from '../smtp/body-decoder.ts';
import { parsePathArgs, splitCommand } from '../smtp/command.ts';
import { formatEhlo, formatReply, type Reply, reply } from '../smtp/reply.ts';
import { decodeXtext } from '../smtp/xtext.ts';
import type { ServerTlsOptions } from '../tls/contexts.ts';
import type { ClientCertificateTrust, ClientCertificateVerdict } from './auth/client-certificates.ts';
import { type AuthServices, SASL_MECHANISMS, type SaslOutcome, startSasl } from './auth/sasl.ts';
import { fieldAddresses, maySendAs } from './auth/send-as.ts';
import { HeaderScanner } from './header-scanner.ts';
import { InputQueue } from './input-queue.ts';
import { normalizeIp } from './ip-ranges.ts';
import { receivedHeader } from './received-header.ts';
import type { AcceptedRecipient, ReceiveContext } from './types.ts';

export interface SessionSettings {
  readonly connector: ReceiveConnectorConfig;
  readonly fqdn: string;
  /** The certificates for a handshake starting now (they change when certificates are reloaded). */
  readonly tls: () => ServerTlsOptions;
  readonly context: ReceiveContext;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly sessionId: string;
  /** Lockout and token checks, shared by every session of the server (src/receive/auth/). */
  readonly auth: AuthServices;
  /** The connector's client-certificate trust, when it asks for client certificates. */
  readonly clientCertificates?: ClientCertificateTrust;
  /** The protocol log of this session (connector with protocolLogging: verbose); absent: none. */
  readonly protocolLog?: SessionProtocolLog;
}

const CR = 0x0d;
const LF = 0x0a;
/** Stop reading from the socket while this much unprocessed input waits (bytes plus a cost per chunk). */
const INPUT_HIGH_WATER = 256 * 1024;
/** Stop processing commands while this much output waits for the client to read it. */
const OUTPUT_HIGH_WATER = 256 * 1024;
const MAX_ENVID = 100;
const MAX_ORCPT = 500;
/** How long a closing session waits for its last reply to drain before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

type Mode = 'pregreet' | 'command' | 'data' | 'bdat' | 'auth' | 'tls-handshake' | 'closed';

/** RFC 2920 §3.1: a command after which the client must wait for the reply (the last of a group). */
const ENDS_GROUP = new Set(['EHLO', 'DATA', 'VRFY', 'EXPN', 'TURN', 'QUIT', 'NOOP']);

interface Transaction {
  sender: string;
  bodyType: '7BIT' | '8BITMIME' | 'BINARYMIME';
  smtpUtf8: boolean;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  recipients: AcceptedRecipient[];
  /** Set once content starts (DATA or the first BDAT). */
  content?: Content;
  usedBdat: boolean;
}

interface Content {
  body: BodyWriter | undefined;
  decoder: BodyDecoder;
  scanner: HeaderScanner;
  /** Holds the header section back until the end-of-headers agents have seen it. */
  headers: HeaderSection;
  /** The first reason to refuse the message; content is still read to its end. */
  failure?: Reply;
  /** An agent asked to close the connection after the failure reply. */
  disconnect?: boolean;
  /** Email authentication of this message, fed the content as received (src/agents/email-auth/). */
  auth?: MessageVerification;
}

type AuthStep = (line: string) => Promise<void>;

const R = {
  ok: reply(250, '2.0.0', 'Ok'),
  badSequence: (text: string) => reply(503, '5.5.1', text),
  syntax: (text: string) => reply(501, '5.5.4', text),
  /** RFC 5321 §4.1.1.11 / RFC 1869: an ESMTP parameter that is unknown, repeated or malformed. */
  badParam: (text: string) => reply(555, '5.5.4', text),
  tooBig: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  resources: reply(452, '4.3.1', 'Insufficient system resources'),
  localError: reply(451, '4.3.0', 'Local error in processing; try again later'),
};

/**
 * One SMTP conversation on a receive connector (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
 * BINARYMIME, CHUNKING, SMTPUTF8, ENHANCEDSTATUSCODES, DSN, STARTTLS and AUTH).
 *
 * Input is processed strictly in order from one bounded buffer; replies are batched into few
 * writes; reading pauses while input or output piles up, so a client that floods the session
 * costs bounded memory. Nothing in here throws to the socket: every failure becomes a reply.
 */
export class SmtpSession {
  readonly #s: SessionSettings;
  #socket: Socket;
  readonly #remoteIp: string;
  readonly #onClose: () => void;
  #tls: boolean;
  #mode: Mode = 'command';
  readonly #input = new InputQueue();
  #discardingLine = false;
  #outbox: string[] = [];
  #busy = false;
  #helo: string | undefined;
  #esmtp = false;
  #authUser: string | undefined;
  #authStep: AuthStep | undefined;
  #tx: Transaction | undefined;
  #bdatRemaining = 0;
  #bdatLast = false;
  #bdatSize = 0;
  /** Octets of message content read so far (DATA as on the wire, BDAT chunks), for the protocol log. */
  #contentBytes = 0;
  #protocolErrors = 0;
  #logonFailures = 0;
  /** The SASL mechanism of the AUTH command in progress, for its protocol event. */
  #authMechanism = '';
  /** The verdict on the client's certificate, on a connector that asks for one. */
  #certificate: ClientCertificateVerdict | undefined;
  #connectionTimer: NodeJS.Timeout | undefined;
  #greetTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /**
   * The client has stopped sending (FIN, reset or socket error). What it sent before still
   * counts: a message whose CRLF.CRLF arrived is committed, as if only our 250 got lost.
   */
  #peerGone = false;
  #greetDue = false;
  #rejectedRecipients = 0;
  readonly #agentSession: AgentSession;

  constructor(
    socket: Socket,
    remoteIp: string,
    tls: boolean,
    settings: SessionSettings,
    onClose: () => void,
  ) {
    this.#socket = socket;
    this.#remoteIp = remoteIp;
    this.#tls = tls;
    this.#s = settings;
    this.#onClose = onClose;
    this.#agentSession = this.#describeForAgents();
  }

  /** The session as agents see it: live views of its state. */
  #describeForAgents(): AgentSession {
    const self = this;
    const marks = new Set<string>();
    return {
      id: this.#s.sessionId,
      connector: this.#s.connector,
      remoteIp: this.#remoteIp,
      localFqdn: this.#s.fqdn,
      marks,
      get helo() {
        return self.#helo;
      },
      get tls() {
        return self.#tls;
      },
      get authUser() {
        return self.#authUser;
      },
      get permissions() {
        return self.#permissions();
      },
      get rejectedRecipients() {
        return self.#rejectedRecipients;
      },
    };
  }

  /** Waits out the agents' tarpit, then sends their refusal if any; true when the command may go on. */
  async #agentsAllow(outcome: Outcome): Promise<boolean> {
    if (outcome.delayMs > 0) await this.#tarpit(outcome.delayMs);
    if (this.#closed) return false;
    const refusal = outcome.reject;
    if (!refusal) return true;
    if (refusal.disconnect) this.#closeWith(refusal.reply);
    else this.#send(refusal.reply);
    return false;
  }

  async #tarpit(ms: number): Promise<void> {
    // Replies already due go out first: only the reply to this command is held back.
    this.#flush();
    await new Promise((r) => setTimeout(r, ms));
  }

  /** Connection agents run before the banner; a refusal is the greeting, then the connection closes. */
  async #connectAgents(): Promise<void> {
    this.#greetDue = false;
    const outcome = await this.#s.context.agents.connect({ session: this.#agentSession });
    if (outcome.delayMs > 0) await this.#tarpit(outcome.delayMs);
    if (this.#closed) return;
    if (outcome.reject) return this.#closeWith(outcome.reject.reply);
    const banner = this.#s.connector.banner ?? `${this.#s.fqdn} Ferrymail ESMTP service ready`;
    this.#send(reply(220, undefined, banner));
    this.#flush();
  }

  get #limits() {
    return this.#s.connector.limits;
  }

  start(): void {
    const log = this.#s.protocolLog;
    if (log) {
      const s = this.#socket;
      log.connect(endpoint(s.localAddress, s.localPort), endpoint(s.remoteAddress, s.remotePort));
      if (this.#tls) log.info(`TLS negotiated: ${tlsDescription(s)}`, 'implicit TLS');
    }
    this.#attach();
    if (this.#tls) this.#checkClientCertificate();
    this.#connectionTimer = setTimeout(
      () => this.#closeWith(reply(421, '4.4.2', `${this.#s.fqdn} Error: connection time limit exceeded`)),
      this.#limits.connectionTimeout,
    );
    this.#connectionTimer.unref();
    const delay = this.#limits.greetDelay;
    if (delay <= 0) {
      this.#greet();
      return;
    }
    // Input before the greeting comes from a client that does not wait for replies (#onData).
    this.#mode = 'pregreet';
    this.#greetTimer = setTimeout(() => {
      if (this.#mode !== 'pregreet') return;
      this.#mode = 'command';
      this.#greet();
    }, delay);
  }

  #greet(): void {
    // The banner goes out from the processing loop, once the connection agents have spoken.
    this.#greetDue = true;
    this.#kick();
  }

  /** A client that sends before it may (pre-greet, or past a command it must wait for): dropped. */
  #unsynchronized(after: string): void {
    this.#s.logger.info(
      { session: this.#s.sessionId, ip: this.#remoteIp, after },
      'SMTP protocol synchronization error: client sent before waiting for a reply',
    );
    this.#input.clear();
    this.#closeWith(reply(554, '5.5.0', `${this.#s.fqdn} Error: SMTP protocol synchronization`));
  }

  /** Ends the session from outside (shutdown). */
  shutdown(): void {
    this.#closeWith(reply(421, '4.3.2', `${this.#s.fqdn} Service shutting down`));
  }

  // ---- socket plumbing ----

  readonly #onData = (chunk: Buffer) => {
    if (this.#closed || this.#mode === 'tls-handshake') return;
    if (this.#mode === 'pregreet') return this.#unsynchronized('connect');
    this.#input.push(chunk);
    if (this.#input.footprint > INPUT_HIGH_WATER) this.#socket.pause();
    this.#kick();
  };
  readonly #onTimeout = () => {
    this.#closeWith(reply(421, '4.4.2', `${this.#s.fqdn} Error: timeout exceeded`));
  };
  readonly #onEnd = () => this.#peerLeft();
  readonly #onError = (error: Error) => {
    this.#s.logger.debug({ err: error, session: this.#s.sessionId }, 'receive socket error');
    this.#peerLeft();
  };

  #peerLeft(): void {
    this.#peerGone = true;
    // A busy loop finishes what is already buffered and then ends the session itself.
    if (!this.#busy) this.#finish();
  }

  #attach(): void {
    this.#socket.on('data', this.#onData);
    this.#socket.on('end', this.#onEnd);
    this.#socket.on('close', this.#onEnd);
    this.#socket.on('error', this.#onError);
    this.#socket.on('timeout', this.#onTimeout);
    this.#socket.setTimeout(this.#limits.inactivityTimeout);
  }

  #detach(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.off('timeout', this.#onTimeout);
    this.#socket.setTimeout(0);
    // The error listener stays: an error during the TLS upgrade must not become uncaught.
  }

  #send(r: Reply): void {
    const text = formatReply(r);
    this.#outbox.push(text);
    this.#s.protocolLog?.sent(text);
  }

  #flush(): void {
    if (this.#peerGone) this.#outbox = [];
    if (this.#outbox.length === 0 || this.#closed) return;
    const text = this.#outbox.join('');
    this.#outbox = [];
    this.#socket.write(text);
  }

  #closeWith(r: Reply): void {
    if (this.#closed) return;
    this.#send(r);
    this.#flush();
    this.#mode = 'closed';
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS).unref();
    this.#finish('Local');
  }

  /** `reason`: who ended the session, for the protocol log (`Local` when we closed it). */
  #finish(reason = 'Remote'): void {
    if (this.#closed) return;
    this.#s.protocolLog?.disconnect(reason);
    this.#closed = true;
    this.#mode = 'closed';
    this.#input.clear();
    clearTimeout(this.#connectionTimer);
    clearTimeout(this.#greetTimer);
    void this.#abortContent();
    this.#onClose();
  }

  // ---- the processing loop ----

  #kick(): void {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    this.#loop()
      .catch((error: unknown) => {
        this.#s.logger.error({ err: error, session: this.#s.sessionId }, 'receive session failed');
        this.#closeWith(R.localError);
      })
      .finally(() => {
        this.#busy = false;
        if (this.#peerGone) return this.#finish();
        if (!this.#closed && this.#input.footprint < INPUT_HIGH_WATER && this.#mode !== 'tls-handshake') {
          this.#socket.resume();
        }
      });
  }

  async #loop(): Promise<void> {
    if (this.#greetDue) await this.#connectAgents();
    while (!this.#closed) {
      let progressed: boolean;
      if (this.#mode === 'command' || this.#mode === 'auth') progressed = await this.#nextLine();
      else if (this.#mode === 'data') progressed = await this.#feedData();
      else if (this.#mode === 'bdat') progressed = await this.#feedBdat();
      else progressed = false;
      if (!progressed) break;
      if (this.#outbox.length > 64 || this.#socket.writableLength > 0) this.#flush();
      if (this.#socket.writableLength > OUTPUT_HIGH_WATER && !this.#peerGone) await this.#drained();
    }
    this.#flush();
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.once('drain', done);
      this.#socket.once('close', done);
    });
  }

  /** Takes one CRLF-terminated line from the input and handles it; false when none is complete. */
  async #nextLine(): Promise<boolean> {
    const buffer = this.#input.front();
    const lf = buffer.indexOf(LF);
    if (this.#discardingLine) {
      if (lf < 0) {
        this.#input.consumeFront(buffer.length);
        return this.#input.length > 0;
      }
      this.#input.consumeFront(lf + 1);
      this.#discardingLine = false;
      return true;
    }
    if (lf < 0) {
      if (buffer.length > this.#limits.maxCommandLength) {
        this.#input.consumeFront(buffer.length);
        this.#discardingLine = true;
        this.#protocolError(reply(500, '5.5.2', 'Line too long'));
        return true;
      }
      if (!this.#input.hasMoreThanFront()) return false;
      // The line goes on in the next chunk: join the two and look again.
      this.#input.joinFront();
      return true;
    }
    this.#input.consumeFront(lf + 1);
    if (lf === 0 || buffer[lf - 1] !== CR) {
      // Commands end in CRLF only (RFC 5321 §2.3.8): a bare LF is refused, never taken as a line end.
      this.#protocolError(reply(500, '5.5.2', 'Bare LF received; lines must end with CRLF'));
      return true;
    }
    const raw = buffer.subarray(0, lf - 1);
    if (raw.length > this.#limits.maxCommandLength) {
      this.#protocolError(reply(500, '5.5.2', 'Line too long'));
      return true;
    }
    if (raw.includes(CR) || raw.includes(0)) {
      this.#protocolError(reply(500, '5.5.2', 'Bare CR or NUL in command'));
      return true;
    }
    const line = raw.toString('utf8');
    // In the auth mode the line is a SASL response: the log says so, never what it was.
    this.#s.protocolLog?.received(line, this.#mode === 'auth');
    if (this.#mode === 'auth' && this.#authStep) {
      const step = this.#authStep;
      this.#authStep = undefined;
      this.#mode = 'command';
      await step(line);
      return true;
    }
    if (this.#input.length > 0 && this.#s.connector.forbidUnauthPipelining) {
      // More input is already here, sent before this command's reply: allowed only where
      // PIPELINING was offered (after EHLO) and the command does not end a group. BDAT's chunk
      // follows it by design; behind STARTTLS, input is thrown away (#startTls).
      const { verb } = splitCommand(line);
      if (this.#esmtp ? ENDS_GROUP.has(verb) : verb !== 'BDAT' && verb !== 'STARTTLS') {
        this.#unsynchronized(verb || line.slice(0, 16));
        return true;
      }
    }
    await this.#command(line);
    return true;
  }

  #protocolError(r: Reply): void {
    this.#protocolErrors++;
    if (this.#protocolErrors > this.#limits.maxProtocolErrors) {
      this.#send(r);
      this.#closeWith(reply(421, '4.7.0', `${this.#s.fqdn} Too many errors; closing connection`));
      return;
    }
    this.#send(r);
  }

  // ---- commands ----

  async #command(line: string): Promise<void> {
    const { verb, args } = splitCommand(line);
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.#hello(verb, args.trim());
      case 'MAIL':
        return this.#mail(args);
      case 'RCPT':
        return this.#rcpt(args);
      case 'DATA':
        return this.#data(args);
      case 'BDAT':
        return this.#bdat(args);
      case 'RSET':
        if (args.trim() !== '') return this.#protocolError(R.syntax('Syntax: RSET'));
        await this.#resetTransaction();
        return this.#send(R.ok);
      case 'NOOP':
        return this.#send(R.ok);
      case 'QUIT':
        return this.#closeWith(reply(221, '2.0.0', `${this.#s.fqdn} Bye`));
      case 'VRFY':
        return this.#send(
          reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery'),
        );
      case 'EXPN':
        return this.#send(reply(502, '5.5.1', 'EXPN not available'));
      case 'HELP':
        return this.#send(
          reply(
            214,
            '2.0.0',
            'Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH HELP',
          ),
        );
      case 'STARTTLS':
        return this.#startTls(args);
      case 'AUTH':
        return this.#auth(args);
      default:
        return this.#protocolError(reply(500, '5.5.2', 'Command unrecognized'));
    }
  }

  #permissions(): Set<Permission> {
    const groups = this.#s.connector.permissionGroups;
    const granted = new Set<Permission>(groups.anonymous ?? []);
    if (this.#authUser) for (const p of groups.authenticatedUsers ?? []) granted.add(p);
    const certified = this.#certificate?.group;
    if (certified) for (const p of groups[certified] ?? []) granted.add(p);
    return granted;
  }

  #authOffered(): boolean {
    const groups = this.#s.connector.permissionGroups;
    return groups.authenticatedUsers !== undefined && this.#s.connector.auth.mechanisms.length > 0;
  }

  #startTlsOffered(): boolean {
    return this.#s.connector.tls.mode === 'starttls' && !this.#tls;
  }

  async #hello(verb: 'EHLO' | 'HELO', domain: string): Promise<void> {
    if (domain === '' || /\s/.test(domain)) return this.#protocolError(R.syntax(`Syntax: ${verb} hostname`));
    const helo = { session: this.#agentSession, verb, domain };
    if (!(await this.#agentsAllow(await this.#s.context.agents.helo(helo)))) return;
    await this.#resetTransaction();
    this.#helo = domain;
    this.#esmtp = verb === 'EHLO';
    const greeting = `${this.#s.fqdn} Hello ${domain} [${this.#remoteIp}]`;
    if (verb === 'HELO') return this.#send(reply(250, undefined, greeting));
    const max = this.#limits.maxMessageSize;
    const lines = [
      greeting,
      `SIZE ${max}`,
      'PIPELINING',
      'DSN',
      'ENHANCEDSTATUSCODES',
      '8BITMIME',
      'BINARYMIME',
      'CHUNKING',
      'SMTPUTF8',
    ];
    if (this.#startTlsOffered()) lines.push('STARTTLS');
    if (this.#authOffered() && !this.#authUser && (this.#tls || !this.#s.connector.auth.requireTls)) {
      lines.push(`AUTH ${this.#s.connector.auth.mechanisms.join(' ')}`);
    }
    lines.push('HELP');
    const text = formatEhlo(lines);
    this.#outbox.push(text);
    this.#s.protocolLog?.sent(text);
  }

  async #mail(args: string): Promise<void> {
    if (!this.#helo) return this.#protocolError(R.badSequence('Send hello first'));
    if (this.#tx) return this.#protocolError(R.badSequence('Nested MAIL command'));
    const connector = this.#s.connector;
    if (connector.tls.required && !this.#tls) {
      return this.#send(reply(530, '5.7.0', 'Must issue a STARTTLS command first'));
    }
    if (connector.tls.clientCertificates?.required && !this.#certificate?.verified) {
      return this.#send(reply(530, '5.7.0', 'A trusted client certificate is required'));
    }
    if (connector.auth.required && !this.#authUser) {
      return this.#send(reply(530, '5.7.0', 'Authentication required'));
    }
    const permissions = this.#permissions();
    if (!permissions.has('submit')) {
      const authWouldHelp =
        !this.#authUser && (connector.permissionGroups.authenticatedUsers ?? []).includes('submit');
      return this.#send(
        authWouldHelp
          ? reply(530, '5.7.0', 'Authentication required')
          : reply(550, '5.7.1', 'Not permitted to send'),
      );
    }
    const parsed = parsePathArgs(args, 'FROM');
    if (!parsed.ok) {
      return parsed.reason === 'param'
        ? this.#protocolError(R.badParam('Malformed MAIL FROM parameters'))
        : this.#protocolError(reply(501, '5.5.4', 'Syntax: MAIL FROM:<address>'));
    }
    const tx: Transaction = {
      sender: '',
      bodyType: '7BIT',
      smtpUtf8: false,
      recipients: [],
      usedBdat: false,
    };
    for (const [key, value] of parsed.params) {
      if (!this.#esmtp) return this.#protocolError(R.badParam('Parameters need EHLO'));
      switch (key) {
        case 'SIZE': {
          if (value === true || !/^\d{1,15}$/.test(value))
            return this.#protocolError(R.badParam('Bad SIZE parameter'));
          if (Number(value) > this.#limits.maxMessageSize && !permissions.has('bypassSizeLimit')) {
            return this.#send(R.tooBig);
          }
          break;
        }
        case 'BODY': {
          const body = value === true ? '' : value.toUpperCase();
          if (body !== '7BIT' && body !== '8BITMIME' && body !== 'BINARYMIME') {
            return this.#protocolError(R.badParam('BODY must be 7BIT, 8BITMIME or BINARYMIME'));
          }
          tx.bodyType = body;
          break;
        }
        case 'SMTPUTF8':
          if (value !== true) return this.#protocolError(R.badParam('SMTPUTF8 takes no value'));
          tx.smtpUtf8 = true;
          break;
        case 'RET': {
          const ret = value === true ? '' : value.toUpperCase();
          if (ret !== 'FULL' && ret !== 'HDRS')
            return this.#protocolError(R.badParam('RET must be FULL or HDRS'));
          tx.ret = ret;
          break;
        }
        case 'ENVID': {
          const envid = value === true ? undefined : decodeXtext(value);
          if (envid === undefined || envid.length > MAX_ENVID)
            return this.#protocolError(R.badParam('Bad ENVID parameter'));
          tx.envid = envid;
          break;
        }
        case 'AUTH':
          // RFC 4954 §5: we do not trust another server's claim of who submitted the message.
          break;
        default:
          return this.#protocolError(R.badParam(`Unsupported parameter ${key}`));
      }
    }
    if (parsed.path !== '') {
      const sender = parseMailbox(parsed.path, tx.smtpUtf8);
      if (!sender.ok) {
        return sender.problem === 'utf8'
          ? this.#protocolError(reply(553, '5.6.7', 'Non-ASCII address needs SMTPUTF8'))
          : this.#protocolError(reply(501, '5.1.7', 'Bad sender address syntax'));
      }
      tx.sender = sender.address;
    }
    const pressure = this.#s.context.backPressure?.refusal({
      connector: connector.name,
      remoteIp: this.#remoteIp,
      helo: this.#helo,
      sender: tx.sender,
      authUser: this.#authUser,
      certificateGroup: this.#certificate?.group,
    });
    if (pressure) {
      this.#s.protocolLog?.info(pressure.reason, 'MAIL');
      return this.#send(pressure.reply);
    }
    const notOwned = this.#senderRefusal(tx.sender);
    if (notOwned) return this.#send(notOwned);
    const mail = { session: this.#agentSession, sender: tx.sender, params: parsed.params };
    if (!(await this.#agentsAllow(await this.#s.context.agents.mail(mail)))) return;
    this.#tx = tx;
    this.#send(reply(250, '2.1.0', 'Ok'));
  }

  async #rcpt(args: string): Promise<void> {
    const tx = this.#tx;
    if (!tx) return this.#protocolError(R.badSequence('Need MAIL before RCPT'));
    if (tx.content) return this.#protocolError(R.badSequence('RCPT not allowed during message content'));
    const parsed = parsePathArgs(args, 'TO');
    if (!parsed.ok) {
      return parsed.reason === 'param'
        ? this.#protocolError(R.badParam('Malformed RCPT TO parameters'))
        : this.#protocolError(reply(501, '5.5.4', 'Syntax: RCPT TO:<address>'));
    }
    let notify: DsnNotify | undefined;
    let orcpt: string | undefined;
    for (const [key, value] of parsed.params) {
      if (!this.#esmtp) return this.#protocolError(R.badParam('Parameters need EHLO'));
      if (key === 'NOTIFY') {
        const parts = value === true ? [] : value.toUpperCase().split(',');
        const valid = ['SUCCESS', 'FAILURE', 'DELAY'];
        if (parts.length === 1 && parts[0] === 'NEVER') notify = 'NEVER';
        else if (
          parts.length > 0 &&
          parts.every((p) => valid.includes(p)) &&
          new Set(parts).size === parts.length
        ) {
          notify = parts as Array<'SUCCESS' | 'FAILURE' | 'DELAY'>;
        } else return this.#protocolError(R.badParam('Bad NOTIFY parameter'));
      } else if (key === 'ORCPT') {
        const semi = value === true ? -1 : value.indexOf(';');
        const decoded = semi > 0 && value !== true ? decodeXtext(value.slice(semi + 1)) : undefined;
        if (value === true || decoded === undefined || decoded === '' || value.length > MAX_ORCPT) {
          return this.#protocolError(R.badParam('Bad ORCPT parameter'));
        }
        orcpt = `${value.slice(0, semi)};${decoded}`;
      } else {
        return this.#protocolError(R.badParam(`Unsupported parameter ${key}`));
      }
    }
    let address: string;
    const defaultDomain = this.#s.context.directory.defaultDomain();
    if (parsed.path.toLowerCase() === 'postmaster' && defaultDomain) {
      address = `postmaster@${defaultDomain}`;
    } else {
      const mailbox = parseMailbox(parsed.path, tx.smtpUtf8);
      if (!mailbox.ok) {
        return mailbox.problem === 'utf8'
          ? this.#protocolError(reply(553, '5.6.7', 'Non-ASCII address needs SMTPUTF8'))
          : this.#protocolError(reply(501, '5.1.3', 'Bad recipient address syntax'));
      }
      address = mailbox.address;
    }
    if (tx.recipients.length >= this.#limits.maxRecipients) {
      return this.#send(reply(452, '4.5.3', 'Too many recipients'));
    }
    const resolution = this.#s.context.directory.resolve(address);
    let proposed = reply(250, '2.1.5', 'Ok');
    if (resolution.kind === 'unknown') {
      proposed = reply(550, '5.1.1', `<${address}>: Recipient address rejected: User unknown`);
    } else if (resolution.kind === 'external' && !this.#permissions().has('relay')) {
      proposed = reply(550, '5.7.1', 'Unable to relay');
    }
    const event = {
      session: this.#agentSession,
      sender: tx.sender,
      recipient: address,
      resolution,
      proposed,
    };
    const outcome = await this.#s.context.agents.rcpt(event);
    if (outcome.delayMs > 0) await this.#tarpit(outcome.delayMs);
    if (this.#closed) return;
    const refusal = outcome.reject?.reply ?? (proposed.code >= 400 ? proposed : undefined);
    if (refusal) {
      this.#rejectedRecipients++;
      return outcome.reject?.disconnect ? this.#closeWith(refusal) : this.#send(refusal);
    }
    if (resolution.kind === 'external') {
      tx.recipients.push({
        address,
        resolvesTo: [{ address: address.toLowerCase(), local: false }],
        ...dsn(orcpt, notify),
      });
    } else if (resolution.kind === 'internal') {
      tx.recipients.push({ address, resolvesTo: resolution.recipients, ...dsn(orcpt, notify) });
    }
    this.#send(reply(250, '2.1.5', 'Ok'));
  }

  // ---- message content ----

  /** Checks shared by DATA and the first BDAT; returns a refusal, or undefined to go on. */
  #contentRefusal(usingBdat: boolean): Reply | undefined {
    const tx = this.#tx;
    if (!tx) return R.badSequence('Need MAIL command');
    if (tx.recipients.length === 0) return reply(554, '5.5.1', 'No valid recipients');
    if (!usingBdat && tx.usedBdat) return R.badSequence('DATA not allowed after BDAT');
    // RFC 3030 §3: binary content cannot be dot-stuffed, so it can only come in BDAT chunks.
    if (!usingBdat && tx.bodyType === 'BINARYMIME') return R.badSequence('BODY=BINARYMIME requires BDAT');
    return undefined;
  }

  async #openContent(tx: Transaction, dotTransparency: boolean): Promise<Content> {
    const policy = tx.bodyType === 'BINARYMIME' ? 'allow' : this.#s.connector.bareLineEndings;
    const content: Content = {
      body: undefined,
      decoder: new BodyDecoder({
        dotTransparency,
        bareLineEndings: policy,
        // Binary content (RFC 3030) has no lines to measure.
        ...(tx.bodyType === 'BINARYMIME' ? {} : { maxLineLength: this.#limits.maxDataLineLength }),
      }),
      scanner: new HeaderScanner(),
      headers: new HeaderSection(),
    };
    tx.content = content;
    try {
      content.body = await this.#s.context.sink.openBody();
      await content.body.write(
        receivedHeader({
          helo: this.#helo ?? 'unknown',
          clientIp: this.#remoteIp,
          fqdn: this.#s.fqdn,
          protocol: `${this.#esmtp ? 'E' : ''}SMTP${this.#esmtp && this.#tls ? 'S' : ''}${this.#esmtp && this.#authUser ? 'A' : ''}`,
          queueId: content.body.id,
          ...(tx.recipients.length === 1 ? { recipient: tx.recipients[0]!.address } : {}),
          ...(this.#tls ? { tls: tlsDescription(this.#socket) } : {}),
          date: new Date(this.#s.clock.now()),
        }),
      );
      // Only where the store can put the Authentication-Results header on top at the end.
      if (content.body.prepend) content.auth = this.#beginEmailAuth(tx);
    } catch (error) {
      content.failure = this.#storageFailure(error);
    }
    return content;
  }

  #beginEmailAuth(tx: Transaction): MessageVerification | undefined {
    return this.#s.context.emailAuth?.begin({
      sessionId: this.#s.sessionId,
      connector: this.#s.connector,
      remoteIp: this.#remoteIp,
      helo: this.#helo ?? '',
      sender: tx.sender,
      authUser: this.#authUser,
      permissions: this.#permissions(),
    });
  }

  #storageFailure(error: unknown): Reply {
    if (error instanceof QueueUnavailableError) return R.resources;
    this.#s.logger.error({ err: error, session: this.#s.sessionId }, 'could not store message content');
    return R.localError;
  }

  async #data(args: string): Promise<void> {
    if (args.trim() !== '') return this.#protocolError(R.syntax('Syntax: DATA'));
    const refusal = this.#contentRefusal(false);
    if (refusal) return this.#protocolError(refusal);
    const tx = this.#tx!;
    const content = await this.#openContent(tx, true);
    if (content.failure) {
      await this.#resetTransaction();
      return this.#send(content.failure);
    }
    this.#mode = 'data';
    this.#send(reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'));
    this.#flush();
  }

  async #feedData(): Promise<boolean> {
    if (this.#input.length === 0) return false;
    const content = this.#tx!.content!;
    // One chunk at a time, decoded where it lies (src/receive/input-queue.ts says why).
    const result = content.decoder.decode(this.#input.front());
    this.#input.consumeFront(result.consumed);
    this.#contentBytes += result.consumed;
    await this.#accept(content, result.output);
    if (result.ended) {
      this.#mode = 'command';
      // Content is never logged, only its size.
      this.#s.protocolLog?.info(`${this.#contentBytes} bytes of message content received`, 'DATA');
      this.#contentBytes = 0;
      await this.#finishMessage();
    }
    return true;
  }

  async #bdat(args: string): Promise<void> {
    const m = /^(\d{1,15})(?: +(LAST))? *$/i.exec(args);
    if (!m) return this.#protocolError(R.syntax('Syntax: BDAT <size> [LAST]'));
    this.#bdatSize = Number(m[1]);
    this.#bdatRemaining = this.#bdatSize;
    this.#bdatLast = m[2] !== undefined;
    this.#mode = 'bdat';
    const tx = this.#tx;
    if (tx && !tx.content) {
      const refusal = this.#contentRefusal(true);
      if (!refusal) {
        tx.usedBdat = true;
        await this.#openContent(tx, false);
      }
    }
    await this.#feedBdat();
  }

  async #feedBdat(): Promise<boolean> {
    if (this.#bdatRemaining > 0) {
      if (this.#input.length === 0) return false;
      const front = this.#input.front();
      const take = Math.min(this.#bdatRemaining, front.length);
      const chunk = front.subarray(0, take);
      this.#input.consumeFront(take);
      this.#bdatRemaining -= take;
      const content = this.#tx?.content;
      if (content) await this.#accept(content, content.decoder.decode(chunk).output);
    }
    if (this.#bdatRemaining > 0) return true;
    this.#mode = 'command';
    this.#contentBytes += this.#bdatSize;
    if (this.#bdatLast) {
      this.#s.protocolLog?.info(`${this.#contentBytes} bytes of message content received`, 'BDAT');
      this.#contentBytes = 0;
    }
    const tx = this.#tx;
    if (!tx?.content) {
      // The chunk had to be read all the same (RFC 3030 §2); now say why it was refused.
      const refusal = this.#contentRefusal(true) ?? R.badSequence('Bad sequence of commands');
      this.#protocolError(refusal);
      return true;
    }
    if (this.#bdatLast) {
      await this.#accept(tx.content, tx.content.decoder.finish());
      await this.#finishMessage();
    } else if (tx.content.failure) {
      this.#send(tx.content.failure);
    } else {
      this.#send(reply(250, '2.0.0', `${this.#bdatSize} octets received`));
    }
    return true;
  }

  /** Checks decoded content against the limits and writes it to the body. */
  async #accept(content: Content, output: Buffer): Promise<void> {
    if (content.failure) return;
    const limits = this.#limits;
    const body = content.body!;
    if (content.decoder.lineTooLong) {
      // The rest is still read to the end of data, and refused there (or at each BDAT chunk).
      content.failure = reply(
        554,
        '5.6.0',
        `Message line too long (limit ${limits.maxDataLineLength} octets)`,
      );
      await body.abort();
      return;
    }
    if (output.length === 0) return;
    const size = body.size + content.headers.held + output.length;
    if (size > limits.maxMessageSize && !this.#permissions().has('bypassSizeLimit')) {
      content.failure = R.tooBig;
    } else if (!content.scanner.done) {
      content.scanner.push(output);
      if (content.scanner.headerBytes > limits.maxHeaderSize) {
        content.failure = reply(552, '5.3.4', 'Header size exceeds limit');
      } else if (content.scanner.receivedCount > limits.maxHopCount) {
        content.failure = reply(554, '5.4.6', 'Too many hops (Received headers); possible mail loop');
      } else if (content.scanner.done) {
        content.failure = this.#fromRefusal(content.scanner);
      }
    }
    if (content.failure) {
      await body.abort();
      return;
    }
    if (content.auth) await content.auth.write(output);
    let rest = output;
    if (!content.headers.done) {
      const section = content.headers.push(output);
      if (!section) return;
      await this.#endOfHeaders(content, section.headers);
      rest = section.rest;
    }
    if (!content.failure && rest.length > 0) await this.#write(content, rest);
  }

  async #write(content: Content, bytes: Buffer): Promise<void> {
    const body = content.body!;
    try {
      await body.write(bytes);
    } catch (error) {
      content.failure = this.#storageFailure(error);
      await body.abort();
    }
  }

  /** Fields an end-of-data agent adds go on top of the stored message, where the store allows it. */
  #prependHeaders(content: Content, fields: ReadonlyArray<string>): void {
    const body = content.body!;
    if (!body.prepend) {
      this.#s.logger.warn(
        { session: this.#s.sessionId, fields: fields.length },
        'header fields added at end of data dropped: this queue store cannot prepend',
      );
      return;
    }
    body.prepend(editSection(Buffer.alloc(0), fields, []).bytes);
  }

  /** The header section is complete: the agents see it, and it is written as they edited it. */
  async #endOfHeaders(content: Content, headers: Buffer): Promise<void> {
    const tx = this.#tx!;
    const outcome = await this.#s.context.agents.endOfHeaders({
      session: this.#agentSession,
      sender: tx.sender,
      recipients: tx.recipients.map((r) => r.address),
      // A copy: agents read it, and what is stored is edited from the original.
      headers: Buffer.from(headers),
    });
    if (outcome.delayMs > 0) await this.#tarpit(outcome.delayMs);
    // The session may have ended while the agents ran (timeout, shutdown): its body is aborted.
    if (this.#closed) return;
    if (outcome.reject) {
      content.failure = outcome.reject.reply;
      if (outcome.reject.disconnect) content.disconnect = true;
      await content.body!.abort();
      return;
    }
    const edited = editSection(headers, outcome.addHeaders, outcome.removeHeaders);
    if (edited.removed.length > 0) {
      this.#s.logger.info(
        { session: this.#s.sessionId, removed: edited.removed },
        'headers removed by agents',
      );
    }
    if (edited.bytes.length > 0) await this.#write(content, edited.bytes);
  }

  async #finishMessage(): Promise<void> {
    const tx = this.#tx!;
    const content = tx.content!;
    if (
      !content.failure &&
      content.decoder.bareLineEnding &&
      this.#s.connector.bareLineEndings === 'reject'
    ) {
      content.failure = reply(554, '5.6.11', 'Message contains bare CR or LF; rejected');
    }
    if (!content.failure && !content.scanner.done) {
      // The header section never ended: its last line still counts for the From: check.
      content.scanner.push(Buffer.from('\r\n'));
      content.failure = this.#fromRefusal(content.scanner);
    }
    // A message that ended inside its header section (no body): the agents still see it.
    if (!content.failure && !content.headers.done)
      await this.#endOfHeaders(content, content.headers.finish());
    const authResults = content.failure ? undefined : await this.#finishEmailAuth(content);
    // Verification and the agents can take seconds; a session that ended meanwhile (timeout,
    // shutdown) has aborted the body and must not hand it to the queue.
    if (this.#closed) return;
    if (!content.failure) {
      const outcome = await this.#s.context.agents.endOfData({
        session: this.#agentSession,
        sender: tx.sender,
        recipients: tx.recipients.map((r) => r.address),
        size: content.body!.size,
      });
      if (outcome.delayMs > 0) await this.#tarpit(outcome.delayMs);
      if (this.#closed) return;
      if (outcome.reject) {
        content.failure = outcome.reject.reply;
        if (outcome.reject.disconnect) content.disconnect = true;
      } else if (outcome.addHeaders.length > 0) {
        this.#prependHeaders(content, outcome.addHeaders);
      }
    }
    if (content.failure) {
      const failure = content.failure;
      const disconnect = content.disconnect === true;
      await this.#resetTransaction();
      return disconnect ? this.#closeWith(failure) : this.#send(failure);
    }
    const body = content.body!;
    // From here the body belongs to the queue: a client that disconnects while we commit must
    // not have it aborted under the commit (the message is then kept, as if the 250 was lost).
    content.body = undefined;
    try {
      const { queueId } = await this.#s.context.sink.submit(body, {
        sender: tx.sender,
        recipients: tx.recipients,
        dsn: { ...(tx.ret ? { ret: tx.ret } : {}), ...(tx.envid !== undefined ? { envid: tx.envid } : {}) },
        bodyType: tx.bodyType,
        smtpUtf8: tx.smtpUtf8,
        origin: {
          connector: this.#s.connector.name,
          clientIp: this.#remoteIp,
          clientHelo: this.#helo ?? '',
          tls: this.#tls,
          ...(this.#authUser ? { authUser: this.#authUser } : {}),
          ...(this.#socket.localAddress ? { serverIp: normalizeIp(this.#socket.localAddress) } : {}),
        },
        ...(content.scanner.messageId ? { messageId: content.scanner.messageId } : {}),
        ...(authResults ? { authResults } : {}),
        ...(content.scanner.subject ? { subject: content.scanner.subject } : {}),
      });
      this.#tx = undefined;
      this.#send(reply(250, '2.0.0', `Ok: queued as ${queueId}`));
    } catch (error) {
      await this.#resetTransaction();
      this.#send(this.#storageFailure(error));
    }
  }

  /**
   * The verdict of email authentication: its headers go on top of the stored message (before
   * the 250), or the DMARC policy refuses it. A verification problem never refuses by itself.
   */
  async #finishEmailAuth(content: Content): Promise<AuthResults | undefined> {
    const auth = content.auth;
    if (!auth) return undefined;
    content.auth = undefined;
    const verdict = await auth.finish();
    if (verdict.reject) {
      content.failure = verdict.reject;
      return undefined;
    }
    content.body!.prepend!(Buffer.from(verdict.headers.map((h) => `${h}\r\n`).join('')));
    return verdict.results;
  }

  async #abortContent(): Promise<void> {
    this.#tx?.content?.auth?.abort();
    const body = this.#tx?.content?.body;
    if (body) await body.abort().catch(() => undefined);
  }

  async #resetTransaction(): Promise<void> {
    await this.#abortContent();
    this.#tx = undefined;
    this.#contentBytes = 0;
  }

  // ---- STARTTLS ----

  async #startTls(args: string): Promise<void> {
    if (args.trim() !== '') return this.#protocolError(R.syntax('Syntax: STARTTLS'));
    if (this.#tls) return this.#protocolError(R.badSequence('TLS already active'));
    if (this.#s.connector.tls.mode !== 'starttls')
      return this.#send(reply(502, '5.5.1', 'STARTTLS not available'));
    if (!this.#helo) return this.#protocolError(R.badSequence('Send EHLO first'));
    this.#send(reply(220, '2.0.0', 'Ready to start TLS'));
    this.#flush();
    // Anything the client pipelined behind STARTTLS was sent in the clear: it is thrown away
    // (the STARTTLS command-injection attack, CVE-2011-0411), and the session starts afresh.
    this.#input.clear();
    this.#mode = 'tls-handshake';
    this.#detach();
    const plain = this.#socket;
    plain.pause();
    const secure = new TLSSocket(plain, { isServer: true, ...this.#s.tls() });
    const handshakeTimer = setTimeout(() => secure.destroy(), this.#limits.inactivityTimeout);
    handshakeTimer.unref();
    secure.once('secure', () => {
      clearTimeout(handshakeTimer);
      this.#observe({
        kind: 'tls',
        direction: 'receive',
        outcome: 'established',
        protocol: secure.getProtocol() ?? 'TLS',
      });
      this.#s.protocolLog?.info(`TLS negotiated: ${tlsDescription(secure)}`, 'STARTTLS');
      this.#socket = secure;
      this.#tls = true;
      this.#helo = undefined;
      this.#esmtp = false;
      this.#authUser = undefined;
      this.#tx = undefined;
      this.#mode = 'command';
      this.#checkClientCertificate();
      this.#attach();
      secure.resume();
    });
    secure.on('error', (error) => {
      clearTimeout(handshakeTimer);
      this.#s.logger.debug({ err: error, session: this.#s.sessionId }, 'TLS handshake failed');
      if (!this.#tls) this.#observe({ kind: 'tls', direction: 'receive', outcome: 'failed' });
      this.#s.protocolLog?.info(`TLS negotiation failed: ${error.message}`, 'STARTTLS');
      secure.destroy();
      plain.destroy();
      this.#finish();
    });
    secure.on('close', () => this.#peerLeft());
  }

  /** A protocol event of this session's connector (src/observe/events.ts). */
  #observe(event: SessionProtocolEvent): void {
    const connector = this.#s.connector.name;
    (this.#s.context.events ?? nullEventBus).emit({ ...event, connector } as ProtocolEvent);
  }

  // ---- client certificates and send-as ----

  #checkClientCertificate(): void {
    const trust = this.#s.clientCertificates;
    if (!trust || !(this.#socket instanceof TLSSocket)) return;
    const verdict = trust.evaluate(this.#socket, this.#s.clock.now());
    this.#certificate = verdict;
    this.#s.logger.info(
      { session: this.#s.sessionId, ip: this.#remoteIp, clientCertificate: verdict },
      'client certificate',
    );
  }

  /** Send-as applies to authenticated users on connectors that enforce it, unless they may use any sender. */
  #sendAsEnforced(): string | undefined {
    const user = this.#authUser;
    if (user === undefined) return undefined;
    const auth = this.#s.connector.auth;
    if (!(auth.sendAs ?? auth.required) || this.#permissions().has('acceptAnySender')) return undefined;
    return user;
  }

  #senderRefusal(sender: string): Reply | undefined {
    const user = this.#sendAsEnforced();
    if (user === undefined || maySendAs(this.#s.context.directory, user, sender)) return undefined;
    return sender === ''
      ? reply(550, '5.7.1', 'The null sender is not allowed for authenticated submission')
      : reply(550, '5.7.1', `<${sender}>: Sender address rejected: not owned by user ${user}`);
  }

  /** Every From: address must be one the user may send as; a field that cannot be read fails. */
  #fromRefusal(scanner: HeaderScanner): Reply | undefined {
    const user = this.#sendAsEnforced();
    if (user === undefined) return undefined;
    const refused = reply(550, '5.7.1', `From: header address rejected: not owned by user ${user}`);
    if (scanner.fromOverflow) return refused;
    for (const field of scanner.fromFields) {
      const addresses = fieldAddresses(field);
      if (addresses === undefined) return refused;
      for (const a of addresses) if (!maySendAs(this.#s.context.directory, user, a)) return refused;
    }
    return undefined;
  }

  // ---- AUTH ----

  async #auth(args: string): Promise<void> {
    const connector = this.#s.connector;
    if (!this.#authOffered())
      return this.#protocolError(R.badSequence('AUTH not available on this connector'));
    if (!this.#helo || !this.#esmtp) return this.#protocolError(R.badSequence('Send EHLO first'));
    if (this.#authUser) return this.#protocolError(R.badSequence('Already authenticated'));
    if (this.#tx) return this.#protocolError(R.badSequence('AUTH not allowed during a mail transaction'));
    if (!this.#tls && connector.auth.requireTls) {
      return this.#send(reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'));
    }
    const [mechanism = '', initial] = args.trim().split(/ +/);
    const mech = mechanism.toUpperCase();
    this.#authMechanism = mech;
    if (!(connector.auth.mechanisms as string[]).includes(mech)) {
      return this.#protocolError(reply(504, '5.5.4', 'Unrecognized authentication mechanism'));
    }
    // A locked-out source gets no chance to present credentials (src/receive/auth/lockout.ts).
    if (this.#s.auth.lockout.ipLocked(this.#remoteIp)) return this.#failLogin(undefined, { locked: true });
    if (SASL_MECHANISMS.has(mech)) {
      const { directory } = this.#s.context;
      const context = { directory, services: this.#s.auth, fqdn: this.#s.fqdn, clock: this.#s.clock };
      return this.#sasl(await startSasl(mech, initial, context));
    }
    if (mech === 'PLAIN') {
      if (initial !== undefined) return this.#plain(initial);
      return this.#challenge('', (line) => this.#plain(line));
    }
    const askPassword = (username: string) =>
      this.#challenge('UGFzc3dvcmQ6', async (line) => {
        const password = decodeBase64(line);
        if (password === undefined) return this.#badBase64();
        await this.#verify(username, password);
      });
    if (initial !== undefined) {
      const username = decodeBase64(initial);
      return username === undefined ? this.#badBase64() : askPassword(username);
    }
    return this.#challenge('VXNlcm5hbWU6', async (line) => {
      const username = decodeBase64(line);
      return username === undefined ? this.#badBase64() : askPassword(username);
    });
  }

  #challenge(text: string, next: (line: string) => Promise<void>): void {
    this.#send(reply(334, undefined, text));
    this.#mode = 'auth';
    this.#authStep = async (line) => {
      if (line === '*') return this.#send(reply(501, '5.7.0', 'Authentication cancelled'));
      await next(line);
    };
  }

  #badBase64(): void {
    this.#send(reply(501, '5.5.2', 'Cannot decode response'));
  }

  async #plain(response: string): Promise<void> {
    const decoded = response === '=' ? '' : decodeBase64(response);
    if (decoded === undefined) return this.#badBase64();
    const [authzid, authcid, password, extra] = decoded.split('\0');
    if (authcid === undefined || password === undefined || extra !== undefined) {
      return this.#send(reply(501, '5.5.2', 'Malformed PLAIN response'));
    }
    if (authzid && authzid.toLowerCase() !== authcid.toLowerCase()) {
      return this.#failLogin(authcid);
    }
    await this.#verify(authcid, password);
  }

  async #verify(username: string, password: string): Promise<void> {
    if (this.#s.auth.lockout.accountLocked(username)) return this.#failLogin(undefined, { locked: true });
    const result = await this.#s.context.directory.authenticate(username, password);
    if (result.ok) return this.#loggedIn(result.user);
    await this.#failLogin(username);
  }

  async #loggedIn(user: string): Promise<void> {
    const outcome = await this.#s.context.agents.auth({ session: this.#agentSession, user });
    if (!(await this.#agentsAllow(outcome))) return;
    this.#s.auth.lockout.recordSuccess(user);
    this.#authUser = user;
    this.#s.protocolLog?.info(`authenticated as ${user}`, 'AUTH');
    this.#observe({ kind: 'auth', mechanism: this.#authMechanism, outcome: 'success' });
    this.#s.logger.info({ session: this.#s.sessionId, user }, 'authenticated');
    return this.#send(reply(235, '2.7.0', 'Authentication successful'));
  }

  /** Drives CRAM-MD5, XOAUTH2 and OAUTHBEARER (src/receive/auth/sasl.ts) step by step. */
  async #sasl(outcome: SaslOutcome): Promise<void> {
    switch (outcome.kind) {
      case 'challenge':
        return this.#challenge(outcome.text, async (line) => this.#sasl(await outcome.next(line)));
      case 'success':
        return this.#loggedIn(outcome.user);
      case 'locked':
        return this.#failLogin(undefined, { locked: true });
      case 'reply':
        return this.#send(outcome.reply);
      case 'failure': {
        if (outcome.challenge === undefined) return this.#failLogin(outcome.account);
        // RFC 7628 §3.2.2: the error document, then 535 to whatever the client answers. The
        // failure counts now: a client that hangs up or cancels instead must not get it free.
        this.#s.auth.lockout.recordFailure(this.#remoteIp, outcome.account);
        this.#send(reply(334, undefined, outcome.challenge));
        this.#mode = 'auth';
        this.#authStep = () => this.#failLogin(outcome.account, { recorded: true });
        return;
      }
    }
  }

  /**
   * A failed or refused login: counted against the source IP and `account` in the shared lockout
   * (unless already `recorded`, or refused because `locked`), tarpitted, answered 535 5.7.8 (454
   * 4.7.0 when locked out), and the session ends after the connector's maxLogonFailures.
   */
  async #failLogin(account?: string, how: { recorded?: boolean; locked?: boolean } = {}): Promise<void> {
    if (!how.recorded && !how.locked) this.#s.auth.lockout.recordFailure(this.#remoteIp, account);
    this.#observe({
      kind: 'auth',
      mechanism: this.#authMechanism,
      outcome: how.locked ? 'locked' : 'failure',
    });
    this.#logonFailures++;
    this.#s.logger.info(
      { session: this.#s.sessionId, ip: this.#remoteIp, ...(how.locked ? { lockedOut: true } : {}) },
      'authentication failed',
    );
    const tarpit = this.#limits.tarpitInterval;
    if (tarpit > 0) await new Promise((r) => setTimeout(r, tarpit));
    if (this.#closed) return;
    this.#send(
      how.locked
        ? reply(454, '4.7.0', 'Too many failed logins; try again later')
        : reply(535, '5.7.8', 'Authentication credentials invalid'),
    );
    if (this.#logonFailures >= this.#limits.maxLogonFailures && this.#limits.maxLogonFailures > 0) {
      this.#closeWith(reply(421, '4.7.0', `${this.#s.fqdn} Too many authentication failures`));
    }
  }
}

/** The TLS and AUTH events a session reports, without the connector it adds itself. */
type SessionProtocolEvent =
  | Omit<Extract<ProtocolEvent, { kind: 'tls' }>, 'connector'>
  | Omit<Extract<ProtocolEvent, { kind: 'auth' }>, 'connector'>;

function dsn(orcpt: string | undefined, notify: DsnNotify | undefined) {
  return { ...(orcpt !== undefined ? { orcpt } : {}), ...(notify !== undefined ? { notify } : {}) };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(text: string): string | undefined {
  return BASE64.test(text) ? Buffer.from(text, 'base64').toString('utf8') : undefined;
}

function tlsDescription(socket: Socket): string {
  if (!(socket instanceof TLSSocket)) return '';
  const cipher = socket.getCipher();
  return `version=${socket.getProtocol() ?? 'TLS'} cipher=${cipher.name}`;
}
