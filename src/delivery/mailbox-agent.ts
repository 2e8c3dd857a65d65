import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { DeliveryJob } from '../queue/types.ts';
import { deliverToMaildir, mailboxFolder } from './maildir.ts';
import { MaildirWriterPool } from './maildir-pool.ts';
import type { AttemptResult, DeliveryAgent } from './types.ts';

/** Errors that say the mailbox (or its disk) is full, and those that say the disk is gone. */
const FULL = new Set(['EDQUOT']);
const NO_SPACE = new Set(['ENOSPC']);
/** Bodies up to this size are read into memory once per job and written by the writer threads. */
const IN_MEMORY_BODY_LIMIT = 1024 * 1024;

/**
 * Delivers local recipients into their Maildir: one copy per recipient, each beginning with
 * `Return-Path` and `Delivered-To`, followed by the stored message (which starts with the
 * `Received` header the receiving session wrote).
 */
export class MailboxDeliveryAgent implements DeliveryAgent {
  readonly hopType = 'mailbox' as const;
  readonly #root: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #pool = new MaildirWriterPool();

  constructor(options: { mailboxRoot: string; nodeFqdn: string; clock: Clock; logger: Logger }) {
    this.#root = options.mailboxRoot;
    this.#clock = options.clock;
    this.#logger = options.logger;
  }

  async deliver(job: DeliveryJob, openBody: () => Readable): Promise<ReadonlyMap<number, AttemptResult>> {
    const results = new Map<number, AttemptResult>();
    const sender = job.message.sender;
    // Small bodies are read once per job; larger ones are streamed from the queue for each copy.
    const inMemory = job.message.size <= IN_MEMORY_BODY_LIMIT ? await readAll(openBody()) : undefined;
    await Promise.all(
      job.recipients.map(async (recipient) => {
        const address = recipient.nextHop.type === 'mailbox' ? recipient.nextHop.mailbox : recipient.address;
        const folder = mailboxFolder(this.#root, address);
        if (!folder) {
          results.set(recipient.index, {
            kind: 'permanent',
            response: `550 5.1.1 <${address}>: no such mailbox`,
          });
          return;
        }
        const prefix = Buffer.from(`Return-Path: <${sender}>\r\nDelivered-To: ${address}\r\n`);
        try {
          const name = inMemory
            ? await this.#pool.write(folder, prefix, inMemory, this.#clock.now())
            : await deliverToMaildir(folder, prefix, openBody(), this.#clock.now());
          results.set(recipient.index, {
            kind: 'delivered',
            response: `250 2.0.0 Ok: delivered to Maildir as ${name}`,
          });
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
          this.#logger.warn(
            { err: error, queueId: job.message.id, recipient: address },
            'mailbox delivery failed',
          );
          const response = FULL.has(code)
            ? '452 4.2.2 Mailbox full'
            : NO_SPACE.has(code)
              ? '452 4.3.1 Insufficient system resources'
              : `451 4.3.0 Mailbox delivery failed (${code})`;
          results.set(recipient.index, { kind: 'transient', response });
        }
      }),
    );
    return results;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
