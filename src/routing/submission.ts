import type { Logger } from '../core/logger.ts';
import { type EventBus, nullEventBus } from '../observe/events.ts';
import { trackSubmission } from '../observe/pipeline-events.ts';
import type { BodyWriter, QueuedMessage, QueueStore } from '../queue/types.ts';
import type { MessageSink, ReceivedEnvelope } from '../receive/types.ts';
import { categorize } from './categorizer.ts';
import type { Router } from './router.ts';

/**
 * The hand-over from a receive session to the queue: categorize, commit durably, then wake
 * delivery. The session answers 250 only after `submit` resolves.
 */
export class SubmissionSink implements MessageSink {
  readonly #store: QueueStore;
  readonly #router: Router;
  readonly #onQueued: () => void;
  readonly #events: EventBus;
  readonly #serverHostname: string | undefined;
  readonly #logger: Logger | undefined;

  constructor(options: {
    store: QueueStore;
    router: Router;
    onQueued: () => void;
    /** RECEIVE and the routing events (RESOLVE, EXPAND, REDIRECT) of every committed message. */
    events?: EventBus;
    /** Our name, for the RECEIVE event's ServerHostname. */
    serverHostname?: string;
    logger?: Logger;
  }) {
    this.#logger = options.logger;
    this.#store = options.store;
    this.#router = options.router;
    this.#onQueued = options.onQueued;
    this.#events = options.events ?? nullEventBus;
    this.#serverHostname = options.serverHostname;
  }

  openBody(): Promise<BodyWriter> {
    return this.#store.openBody();
  }

  async submit(body: BodyWriter, envelope: ReceivedEnvelope): Promise<{ queueId: string }> {
    const { recipients, ...rest } = envelope;
    let queued: QueuedMessage;
    try {
      queued = await this.#store.commit(body, {
        ...rest,
        recipients: categorize(recipients, this.#router, body.size),
      });
    } catch (error) {
      // Whatever failed, the partial body must not linger (abort is idempotent).
      await body.abort();
      throw error;
    }
    // The message is durable from here: nothing after this may turn the 250 into an error, or
    // the client would send it again and it would be delivered twice.
    try {
      this.#onQueued();
      trackSubmission(this.#events, queued, recipients, { hostname: this.#serverHostname });
    } catch (error) {
      this.#logger?.error({ err: error, queueId: queued.id }, 'after queueing a message');
    }
    return { queueId: queued.id };
  }
}
