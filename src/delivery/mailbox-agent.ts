import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { DeliveryJob } from '../queue/types.ts';
import { deliverToMaildir, ensureMaildir, mailboxFolder } from './maildir.ts';
import { errorCode, replyForBodyError, replyForWriteError } from './maildir-errors.ts';
import { MaildirWriterPool } from './maildir-pool.ts';
import type { AttemptResult, DeliveryAgent } from './types.ts';

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
    const targets: Array<{ index: number; address: string; folder: string }> = [];
    for (const recipient of job.recipients) {
      const address = recipient.nextHop.type === 'mailbox' ? recipient.nextHop.mailbox : recipient.address;
      const folder = mailboxFolder(this.#root, address);
      if (folder) targets.push({ index: recipient.index, address, folder });
      else
        results.set(recipient.index, {
          kind: 'permanent',
          response: `550 5.1.1 <${address}>: no such mailbox`,
        });
    }
    if (targets.length === 0) return results;

    // Small bodies are read once per job; larger ones are streamed from the queue for each copy.
    let inMemory: Buffer | undefined;
    if (job.message.size <= IN_MEMORY_BODY_LIMIT) {
      try {
        inMemory = await readAtMost(openBody(), IN_MEMORY_BODY_LIMIT);
      } catch (error) {
        const response = replyForBodyError(errorCode(error));
        this.#logger.warn({ err: error, queueId: job.message.id }, 'queued body unreadable');
        for (const { index } of targets) results.set(index, { kind: 'transient', response });
        return results;
      }
    }

    const returnPath = `Return-Path: <${withoutControls(job.message.sender)}>\r\n`;
    await Promise.all(
      targets.map(async ({ index, address, folder }) => {
        const prefix = Buffer.from(`${returnPath}Delivered-To: ${address}\r\n`);
        try {
          // Once per mailbox: its folders are created and made durable before the first copy.
          const ready = ensureMaildir(folder);
          if (ready) await ready;
          const name = inMemory
            ? await this.#pool.write(folder, prefix, inMemory, this.#clock.now())
            : await deliverToMaildir(folder, prefix, openBody(), this.#clock.now());
          results.set(index, {
            kind: 'delivered',
            response: `250 2.0.0 Ok: delivered to Maildir as ${name}`,
          });
        } catch (error) {
          this.#logger.warn(
            { err: error, queueId: job.message.id, recipient: address },
            'mailbox delivery failed',
          );
          results.set(index, { kind: 'transient', response: replyForWriteError(errorCode(error)) });
        }
      }),
    );
    return results;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/**
 * The whole stream, or undefined once it passes `limit` (the stored size was wrong): the caller
 * then streams instead, so a body never has to fit in memory.
 */
async function readAtMost(stream: Readable, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      stream.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** The envelope sender was checked on receipt; this keeps a header line a header line regardless. */
function withoutControls(address: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  return address.replace(/[\x00-\x1f\x7f]/g, '');
}
