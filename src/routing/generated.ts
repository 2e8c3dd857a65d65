import type { Readable } from 'node:stream';
import { type Logger, silentLogger } from '../core/logger.ts';
import type { Directory, ResolvedRecipient } from '../directory/types.ts';
import type { BodyType } from '../queue/types.ts';
import type { MessageSink } from '../receive/types.ts';

/** The envelope of a message the node makes itself (an NDR, a delay notice). */
export interface GeneratedEnvelope {
  /** Always the null reverse-path: a report about a report is never sent. */
  readonly sender: '';
  readonly recipient: string;
  readonly bodyType: BodyType;
  readonly smtpUtf8: boolean;
  /** Header values, for tracking and the queue viewer. */
  readonly messageId: string;
  readonly subject: string;
}

/**
 * Puts a message made by the node (an NDR, a delay notice) into the queue like any message,
 * routed normally. Resolves once the message is durable; `queueId` is undefined when the
 * recipient does not exist (the message was dropped, and trying again would not help).
 */
export interface GeneratedMessageSubmitter {
  submit(envelope: GeneratedEnvelope, body: Readable): Promise<{ readonly queueId: string | undefined }>;
}

export interface SinkSubmitterOptions {
  readonly sink: MessageSink;
  readonly directory: Directory;
  /** Our host name: the HELO recorded in the generated message's origin. */
  readonly reportingMta: string;
  readonly logger?: Logger;
}

/**
 * The submitter over the same hand-over a receive session uses (categorize, commit, wake
 * delivery), so a report to a local sender lands in a mailbox and one to a remote sender leaves
 * through a send connector. The body is streamed into the queue as it is produced.
 */
export class SinkSubmitter implements GeneratedMessageSubmitter {
  readonly #o: SinkSubmitterOptions & { logger: Logger };

  constructor(options: SinkSubmitterOptions) {
    this.#o = { logger: silentLogger, ...options };
  }

  async submit(envelope: GeneratedEnvelope, body: Readable): Promise<{ queueId: string | undefined }> {
    const resolvesTo = this.#resolve(envelope.recipient);
    if (!resolvesTo) {
      body.destroy();
      this.#o.logger.warn(
        { recipient: envelope.recipient, messageId: envelope.messageId },
        'generated message dropped: its recipient does not exist',
      );
      return { queueId: undefined };
    }
    const writer = await this.#o.sink.openBody();
    try {
      // Awaiting each write is the back pressure: the report (and the original inside it) is
      // read no faster than the queue stores it.
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        await writer.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      }
    } catch (error) {
      body.destroy();
      await writer.abort();
      throw error;
    }
    return this.#o.sink.submit(writer, {
      sender: envelope.sender,
      recipients: [{ address: envelope.recipient, resolvesTo }],
      dsn: {},
      bodyType: envelope.bodyType,
      smtpUtf8: envelope.smtpUtf8,
      origin: {
        connector: 'dsn',
        clientIp: '127.0.0.1',
        clientHelo: this.#o.reportingMta,
        tls: false,
        generated: true,
      },
      messageId: envelope.messageId,
      subject: envelope.subject,
    });
  }

  #resolve(address: string): ReadonlyArray<ResolvedRecipient> | undefined {
    const resolution = this.#o.directory.resolve(address);
    switch (resolution.kind) {
      case 'internal':
        return resolution.recipients.length > 0 ? resolution.recipients : undefined;
      case 'external':
        return [{ address: lowerDomain(address), local: false }];
      case 'unknown':
        return undefined;
    }
  }
}

/** The domain is case-insensitive; the local part is kept as the sender gave it. */
function lowerDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(0, at) + address.slice(at).toLowerCase();
}
