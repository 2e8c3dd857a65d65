import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exchangeSchedulePolicy, fixedIntervalPolicy } from '../../src/queue/retry-policy.ts';
import type { QueuedRecipient } from '../../src/queue/types.ts';

const MINUTE = 60_000;
const NOW = Date.UTC(2026, 10, 24);

/** A recipient that has been tried `attempts` times before the attempt that just failed. */
const tried = (attempts: number): QueuedRecipient => ({
  index: 0,
  address: 'a@remote.test',
  nextHop: { type: 'smtp', domain: 'remote.test' },
  status: 'active',
  attempts,
  nextAttemptAt: NOW,
  updatedAt: NOW,
});

describe('retry policies', () => {
  it('mailbox delivery retries after the same interval every time', () => {
    const policy = fixedIntervalPolicy(5 * MINUTE);
    for (const attempts of [0, 1, 10, 500]) {
      assert.equal(policy.nextAttemptAt(tried(attempts), NOW), NOW + 5 * MINUTE);
    }
  });

  it('the Exchange schedule retries 4 times after 1 minute, 6 times after 5 minutes, then every 15 minutes', () => {
    const policy = exchangeSchedulePolicy();
    const delays = Array.from(
      { length: 13 },
      (_, attempts) => policy.nextAttemptAt(tried(attempts), NOW) - NOW,
    );
    assert.deepEqual(delays, [
      ...Array<number>(4).fill(MINUTE),
      ...Array<number>(6).fill(5 * MINUTE),
      ...Array<number>(3).fill(15 * MINUTE),
    ]);
  });

  it('the Exchange schedule takes its counts and intervals from its options', () => {
    const policy = exchangeSchedulePolicy({
      glitchRetries: 1,
      glitchInterval: 1000,
      transientRetries: 2,
      transientInterval: 2000,
      messageRetryInterval: 9000,
    });
    const delays = [0, 1, 2, 3, 4].map((attempts) => policy.nextAttemptAt(tried(attempts), NOW) - NOW);
    assert.deepEqual(delays, [1000, 2000, 2000, 9000, 9000]);
  });
});
