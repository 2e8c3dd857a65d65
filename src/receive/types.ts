import type { MessageAuthenticator } from '../agents/email-auth/verifier.ts';
import type { AgentPipeline } from '../agents/pipeline.ts';
import type { Directory, ResolvedRecipient } from '../directory/types.ts';
import type { EventBus } from '../observe/events.ts';
import type {
  AuthResults,
  BodyType,
  BodyWriter,
  DsnEnvelope,
  DsnNotify,
  MessageOrigin,
} from '../queue/types.ts';
import type { BackPressureGate } from './back-pressure.ts';

/** A recipient the session accepted at RCPT, with what the directory resolved it to. */
export interface AcceptedRecipient {
  /** As the client gave it (domain lower-cased). */
  readonly address: string;
  /** RFC 3461 ORCPT as received (`rfc822;addr`), if any. */
  readonly orcpt?: string;
  readonly notify?: DsnNotify;
  readonly resolvesTo: ReadonlyArray<ResolvedRecipient>;
}

/** Everything the receive side hands over at the end of data. */
export interface ReceivedEnvelope {
  readonly sender: string;
  readonly recipients: ReadonlyArray<AcceptedRecipient>;
  readonly dsn: DsnEnvelope;
  readonly bodyType: BodyType;
  readonly smtpUtf8: boolean;
  readonly origin: MessageOrigin;
  readonly messageId?: string;
  readonly subject?: string;
  readonly authResults?: AuthResults;
}

/**
 * Where a receive session puts a message. `submit` resolves only once the message is durable;
 * the session answers 250 after that and never before.
 */
export interface MessageSink {
  openBody(): Promise<BodyWriter>;
  submit(body: BodyWriter, envelope: ReceivedEnvelope): Promise<{ queueId: string }>;
}

/** What a receive connector needs from the rest of the node. */
export interface ReceiveContext {
  readonly directory: Directory;
  readonly sink: MessageSink;
  /** The agents every session runs at each SMTP stage (src/agents/, docs/agents.md). */
  readonly agents: AgentPipeline;
  /** SPF, DKIM, DMARC and ARC on receipt (src/agents/email-auth/); absent: not checked. */
  readonly emailAuth?: MessageAuthenticator;
  /** Session, TLS and AUTH protocol events (src/observe/events.ts); absent: not observed. */
  readonly events?: EventBus;
  /** Back pressure: asked at every MAIL (src/receive/back-pressure.ts); absent: never refuses. */
  readonly backPressure?: BackPressureGate;
}
