import type { Permission, ReceiveConnectorConfig } from '../config/schema.ts';
import type { Resolution } from '../directory/types.ts';
import type { Reply } from '../smtp/reply.ts';

/**
 * The agent interface: typed events named after the SMTP stages of a receive session. Built-in
 * features (IP lists, DNS block lists, rate limits, the sender filter, the tarpit, the header
 * firewall) are agents written against this interface, exactly as a user's own agent would be.
 * How to write one: docs/agents.md.
 */

/** What an agent sees of the session it is called for. One object per session, stable across events. */
export interface AgentSession {
  readonly id: string;
  readonly connector: ReceiveConnectorConfig;
  /** The client's address (IPv4 dotted, or IPv6; `::ffff:` mapped addresses are given as IPv4). */
  readonly remoteIp: string;
  /** The name this session announces (the connector's FQDN or the node's). */
  readonly localFqdn: string;
  readonly helo: string | undefined;
  readonly tls: boolean;
  readonly authUser: string | undefined;
  /** The rights the session has now (anonymous, plus authenticatedUsers once authenticated). */
  readonly permissions: ReadonlySet<Permission>;
  /** RCPT commands of this session answered with a 4xx or 5xx so far. */
  readonly rejectedRecipients: number;
  /**
   * Marks agents leave for those after them, for the whole session. Built in: `allowListed`
   * (the IP allow list matched: DNSBL and rate limits skip the session).
   */
  readonly marks: Set<string>;
}

export interface ConnectEvent {
  readonly session: AgentSession;
}

export interface HeloEvent {
  readonly session: AgentSession;
  readonly verb: 'EHLO' | 'HELO';
  readonly domain: string;
}

export interface AuthEvent {
  readonly session: AgentSession;
  /** The user that has just authenticated. */
  readonly user: string;
}

export interface MailEvent {
  readonly session: AgentSession;
  /** The reverse path, '' for the null sender `<>`. */
  readonly sender: string;
  /** ESMTP parameters, keys upper-cased; `true` for a parameter without a value. */
  readonly params: ReadonlyMap<string, string | true>;
}

export interface RcptEvent {
  readonly session: AgentSession;
  readonly sender: string;
  readonly recipient: string;
  /** What the directory resolved the recipient to. */
  readonly resolution: Resolution;
  /** The reply the session gives if every agent continues (250, or the directory's rejection). */
  readonly proposed: Reply;
}

export interface EndOfHeadersEvent {
  readonly session: AgentSession;
  readonly sender: string;
  readonly recipients: ReadonlyArray<string>;
  /**
   * The message's header section as received, up to and including the empty line that ends it
   * (bounded by the connector's maxHeaderSize). Read-only: change headers with directives.
   */
  readonly headers: Buffer;
}

export interface EndOfDataEvent {
  readonly session: AgentSession;
  readonly sender: string;
  readonly recipients: ReadonlyArray<string>;
  /** Bytes of the message as stored (our Received header included). */
  readonly size: number;
}

/** Go on with the next agent and, when all continue, with the session's own answer. */
export interface Continue {
  readonly action: 'continue';
}

/**
 * Refuse with this reply (a 4xx or 5xx with an enhanced status code). At connect the reply is
 * the greeting and the connection is closed; elsewhere the session goes on unless `disconnect`.
 * No further agent is called for the event.
 */
export interface Reject {
  readonly action: 'reject';
  readonly reply: Reply;
  readonly disconnect?: boolean;
}

/** Delay the reply to this command by `delayMs`; the following agents are still called. */
export interface Tarpit {
  readonly action: 'tarpit';
  readonly delayMs: number;
}

/** A header field to remove: by name (case-insensitive), and only where `matches` says so. */
export interface HeaderRemoval {
  readonly name: string;
  /** Given the unfolded value (after the colon); absent: every field of that name. */
  readonly matches?: (value: string) => boolean;
}

/**
 * Header directives (end of headers only; the following agents are still called). Added fields
 * are written after our Received header, before the message's own header section; each is one
 * complete field without its line ending, such as `X-Scanned: yes` (folded lines separated by
 * CRLF + whitespace are allowed).
 */
export interface EditHeaders {
  readonly action: 'editHeaders';
  readonly addHeaders?: ReadonlyArray<string>;
  readonly removeHeaders?: ReadonlyArray<HeaderRemoval>;
}

/**
 * Header fields to add at the end of data, when the header section is already stored: they go on
 * top of the message (above our Received header), where the store can put them (BodyWriter.prepend).
 */
export interface AddHeaders {
  readonly action: 'editHeaders';
  readonly addHeaders: ReadonlyArray<string>;
  readonly removeHeaders?: never;
}

export type Verdict = Continue | Reject | Tarpit;
export type HeaderVerdict = Verdict | EditHeaders;
export type EndOfDataVerdict = Verdict | AddHeaders;

type Result<T> = T | undefined | Promise<T | undefined>;

/**
 * An agent: any subset of handlers. A handler that returns nothing continues. A handler that
 * throws is logged and taken as `continue` (or as `451 4.7.0` when agents fail closed).
 *
 * The header section is on its way into the queue when endOfHeaders runs: its directives are
 * applied to the byte stream. endOfData runs after the whole body is stored and before the
 * commit: it can refuse the message, or add fields on top, but no longer remove any.
 */
export interface Agent {
  readonly name: string;
  connect?(event: ConnectEvent): Result<Verdict>;
  helo?(event: HeloEvent): Result<Verdict>;
  auth?(event: AuthEvent): Result<Verdict>;
  mail?(event: MailEvent): Result<Verdict>;
  rcpt?(event: RcptEvent): Result<Verdict>;
  endOfHeaders?(event: EndOfHeadersEvent): Result<HeaderVerdict>;
  endOfData?(event: EndOfDataEvent): Result<EndOfDataVerdict>;
}

export type AgentEventName = 'connect' | 'helo' | 'auth' | 'mail' | 'rcpt' | 'endOfHeaders' | 'endOfData';

/** The pipeline's combined answer for one event. */
export interface Outcome {
  /** Set when an agent refused (the first one to do so). */
  readonly reject?: Reject;
  /** The longest tarpit any agent asked for; 0 for none. */
  readonly delayMs: number;
}

export interface HeaderOutcome extends Outcome {
  readonly addHeaders: ReadonlyArray<string>;
  readonly removeHeaders: ReadonlyArray<HeaderRemoval>;
}

export const CONTINUE: Continue = { action: 'continue' };

export function rejectWith(reply: Reply, options: { disconnect?: boolean } = {}): Reject {
  return { action: 'reject', reply, ...(options.disconnect ? { disconnect: true } : {}) };
}

export function tarpit(delayMs: number): Tarpit {
  return { action: 'tarpit', delayMs };
}
