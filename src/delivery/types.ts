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
}
