import { formatReply, type SmtpReply } from './reply.ts';

export type SmtpClientStage =
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'starttls'
  | 'tls'
  | 'auth'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'protocol';

/**
 * The connection could not be used (or broke): `status` is the RFC 3463 code to record for every
 * recipient the attempt was for, `permanent` whether retrying the same peer can help.
 */
export class SmtpClientError extends Error {
  readonly stage: SmtpClientStage;
  readonly status: string;
  readonly permanent: boolean;
  readonly reply?: SmtpReply;

  constructor(
    stage: SmtpClientStage,
    status: string,
    message: string,
    options: { permanent?: boolean; reply?: SmtpReply; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SmtpClientError';
    this.stage = stage;
    this.status = status;
    this.permanent = options.permanent ?? status.startsWith('5');
    if (options.reply) this.reply = options.reply;
  }
}

/** An error carrying the peer's refusal; the status is the reply's, or `X.0.0` from its code. */
export function replyError(
  stage: SmtpClientStage,
  reply: SmtpReply,
  what: string,
  options: { status?: string; permanent?: boolean } = {},
): SmtpClientError {
  const status = options.status ?? reply.enhanced ?? `${Math.floor(reply.code / 100)}.0.0`;
  return new SmtpClientError(stage, status, `${what}: ${formatReply(reply)}`, {
    reply,
    permanent: options.permanent ?? reply.code >= 500,
  });
}
