import type { QueuedRecipient } from './types.ts';

/** When to try a recipient again after a transient failure. */
export interface RetryPolicy {
  nextAttemptAt(recipient: QueuedRecipient, now: number): number;
}

/** The same interval every time: Exchange's mailbox delivery retry (5 minutes by default). */
export function fixedIntervalPolicy(interval: number): RetryPolicy {
  return { nextAttemptAt: (_recipient, now) => now + interval };
}

export interface ExchangeScheduleOptions {
  glitchRetries: number;
  glitchInterval: number;
  transientRetries: number;
  transientInterval: number;
  messageRetryInterval: number;
}

/** Exchange's defaults: 4 × 1 min, then 6 × 5 min, then every 15 min. */
export const EXCHANGE_SCHEDULE: ExchangeScheduleOptions = {
  glitchRetries: 4,
  glitchInterval: 60_000,
  transientRetries: 6,
  transientInterval: 5 * 60_000,
  messageRetryInterval: 15 * 60_000,
};

/**
 * Exchange's outbound schedule. `attempts` counts attempts already made (the failed one
 * included), so the first retry after the first failure is a glitch retry.
 */
export function exchangeSchedulePolicy(options: ExchangeScheduleOptions = EXCHANGE_SCHEDULE): RetryPolicy {
  return {
    nextAttemptAt(recipient, now) {
      const failures = recipient.attempts + 1;
      if (failures <= options.glitchRetries) return now + options.glitchInterval;
      if (failures <= options.glitchRetries + options.transientRetries)
        return now + options.transientInterval;
      return now + options.messageRetryInterval;
    },
  };
}
