/**
 * One SMTP session's lines in the protocol log (Exchange's SMTP protocol logging), and the
 * redaction that keeps authentication secrets out of it.
 *
 * Redaction does not trust the caller alone. The session says when a line is an AUTH payload,
 * and this class also follows the exchange itself: from a client's `AUTH` command until the
 * server's first reply that is not `334`, every client line is logged as
 * `<authentication response>` and every 334 challenge as `<authentication challenge>`. So a
 * session that loses track of its own state (a refused line in the middle of an exchange) still
 * cannot put a password in the log.
 */

/** The hooks a receive session or an outbound connection calls; absent = nothing is logged. */
export interface SessionProtocolLog {
  readonly sessionId: string;
  /** `+`: the connection is up. Endpoints are `ip:port` (`[v6]:port`). */
  connect(localEndpoint: string, remoteEndpoint: string, context?: string): void;
  /** `>`: a line we sent (a reply on the receive side, a command on the send side). */
  sent(text: string, authPayload?: boolean): void;
  /** `<`: a line we received. `authPayload`: the session knows it is a SASL response. */
  received(text: string, authPayload?: boolean): void;
  /** `*`: something that is neither sent nor received (TLS, byte counts, decisions). */
  info(data: string, context?: string): void;
  /** `-`: the connection is gone; `context` says who ended it and why. Later calls are ignored. */
  disconnect(context: string): void;
}

/** Where a finished log line goes (the writer of the SmtpReceive or SmtpSend folder). */
export interface LineSink {
  append(line: string): void;
}

export const AUTH_RESPONSE = '<authentication response>';
export const AUTH_CHALLENGE = '<authentication challenge>';
/** Longest data field written; longer text is cut (replies can be 64 KB). */
const MAX_DATA = 4096;

/**
 * `1.2.3.4:25`, `[::1]:25`; an IPv4-mapped address (a dual-stack listener) as plain IPv4; empty
 * when the socket has no address (closed).
 */
export function endpoint(address: string | undefined, port: number | undefined): string {
  if (!address) return '';
  const plain = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
  const host = plain.includes(':') ? `[${plain}]` : plain;
  return port === undefined ? host : `${host}:${port}`;
}

/** A CSV field: quoted when it holds a comma, a quote or a line break (quotes doubled). */
export function csvField(value: string): string {
  if (!/[",\r\n]/.test(value)) return value;
  return `"${value.replace(/"/g, '""')}"`;
}

/**
 * One line of text for the log: a multi-line reply becomes `250-first second third` (as
 * Exchange writes EHLO replies), control characters become `?`, and it is cut at MAX_DATA.
 */
export function oneLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  let out = lines[0] ?? '';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    // `250-SIZE 100` → `SIZE 100`: the code is said once, at the front.
    out += ` ${/^\d{3}[ -]/.test(line) ? line.slice(4) : line}`;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters never reach the file
  out = out.replace(/[\x00-\x1f\x7f]/g, '?');
  return out.length > MAX_DATA ? `${out.slice(0, MAX_DATA)}...` : out;
}

/**
 * `AUTH PLAIN dGVzdA==` → `AUTH PLAIN ****`: the mechanism stays, any initial response goes.
 * Undefined when the line is not an AUTH command.
 */
export function redactAuthCommand(line: string): string | undefined {
  const m = /^\s*AUTH(?:\s+(\S+)(\s+\S.*)?)?\s*$/is.exec(line);
  if (!m) return /^\s*AUTH\b/i.test(line) ? 'AUTH ****' : undefined;
  if (m[1] === undefined) return 'AUTH';
  return `AUTH ${m[1].toUpperCase()}${m[2] !== undefined ? ' ****' : ''}`;
}

export interface SessionLogOptions {
  readonly sink: LineSink;
  /** `receive`: the peer is the client; `send`: we are. Decides which lines can carry secrets. */
  readonly role: 'receive' | 'send';
  readonly connector: string;
  readonly sessionId: string;
  readonly now: () => number;
  /** Text that must never appear in a line (a smart-host password and its encodings). */
  readonly secrets?: ReadonlyArray<string>;
}

export class SessionLog implements SessionProtocolLog {
  readonly sessionId: string;
  readonly #sink: LineSink;
  readonly #role: 'receive' | 'send';
  /** connector and session id, already as CSV fields, with their commas. */
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #secrets: ReadonlyArray<string>;
  #seq = 0;
  #endpoints = ',';
  #inAuth = false;
  #closed = false;

  constructor(o: SessionLogOptions) {
    this.sessionId = o.sessionId;
    this.#sink = o.sink;
    this.#role = o.role;
    this.#prefix = `${csvField(o.connector)},${csvField(o.sessionId)},`;
    this.#now = o.now;
    this.#secrets = (o.secrets ?? []).filter((s) => s.length >= 3);
  }

  connect(localEndpoint: string, remoteEndpoint: string, context = ''): void {
    this.#endpoints = `${csvField(localEndpoint)},${csvField(remoteEndpoint)}`;
    this.#line('+', '', context);
  }

  sent(text: string, authPayload = false): void {
    if (this.#role === 'send') this.#clientLine('>', text, authPayload);
    else this.#serverLine('>', text);
  }

  received(text: string, authPayload = false): void {
    if (this.#role === 'receive') this.#clientLine('<', text, authPayload);
    else this.#serverLine('<', text);
  }

  info(data: string, context = ''): void {
    this.#line('*', oneLine(data), context);
  }

  disconnect(context: string): void {
    this.#line('-', '', context);
    this.#closed = true;
  }

  #clientLine(event: '<' | '>', text: string, authPayload: boolean): void {
    if (authPayload || this.#inAuth) {
      this.#line(event, AUTH_RESPONSE, '');
      return;
    }
    const auth = redactAuthCommand(text);
    if (auth !== undefined) this.#inAuth = true;
    this.#line(event, auth ?? oneLine(text), '');
  }

  #serverLine(event: '<' | '>', text: string): void {
    if (this.#inAuth) {
      if (/^\s*334(?:[ -]|\r?\n|$)/.test(text)) {
        this.#line(event, `334 ${AUTH_CHALLENGE}`, '');
        return;
      }
      this.#inAuth = false;
    }
    this.#line(event, oneLine(text), '');
  }

  #line(event: string, data: string, context: string): void {
    if (this.#closed) return;
    let d = data;
    let c = context === '' ? '' : oneLine(context);
    for (const secret of this.#secrets) {
      if (d.includes(secret)) d = d.split(secret).join('****');
      if (c.includes(secret)) c = c.split(secret).join('****');
    }
    const time = new Date(this.#now()).toISOString();
    this.#sink.append(
      `${time},${this.#prefix}${this.#seq++},${this.#endpoints},${event},${csvField(d)},${csvField(c)}\r\n`,
    );
  }
}
