import type { Readable } from 'node:stream';
import type { DeliveryJob, NextHop } from '../queue/types.ts';

/** The result of one attempt for one recipient, before the retry policy turns it into an outcome. */
export type AttemptResult =
  | { readonly kind: 'delivered'; readonly response: string }
  | { readonly kind: 'transient'; readonly response: string }
  | { readonly kind: 'permanent'; readonly response: string };

/** Delivers jobs of one next-hop type (mailbox now; SMTP later). */
export interface DeliveryAgent {
  readonly hopType: NextHop['type'];
  /** One result per recipient of the job, keyed by the recipient's index. */
  deliver(job: DeliveryJob, openBody: () => Readable): Promise<ReadonlyMap<number, AttemptResult>>;
  /**
   * Jobs of one queue (the queue of `hop`, src/queue/queue-name.ts) worth running at once: more
   * would only wait inside the agent (for a connection to the destination) while holding a
   * scheduler slot other queues could use. The scheduler claims no more than this per queue.
   * Absent: no limit besides the agent's concurrency.
   */
  maxConcurrentJobs?(hop: NextHop): number;
}
