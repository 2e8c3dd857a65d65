import type { Clock } from '../../core/clock.ts';
import { reply } from '../../smtp/reply.ts';
import { type Agent, type AgentSession, rejectWith } from '../types.ts';
import { ALLOW_LISTED } from './ip-lists.ts';

const WINDOW_MS = 60_000;

/** Events per key over the last minute (a sliding window), forgetting keys that went quiet. */
class SlidingWindow {
  readonly #events = new Map<string, number[]>();
  #lastSweep = 0;

  /** Counts an event unless `limit` events already happened in the window; true when it was counted. */
  take(key: string, limit: number, now: number): boolean {
    this.#sweep(now);
    const times = (this.#events.get(key) ?? []).filter((t) => now - t < WINDOW_MS);
    if (times.length >= limit) {
      this.#events.set(key, times);
      return false;
    }
    times.push(now);
    this.#events.set(key, times);
    return true;
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < WINDOW_MS) return;
    this.#lastSweep = now;
    for (const [key, times] of this.#events) {
      if (times.every((t) => now - t >= WINDOW_MS)) this.#events.delete(key);
    }
  }
}

function exempt(session: AgentSession): boolean {
  return session.marks.has(ALLOW_LISTED) || session.authUser !== undefined;
}

/**
 * Per-source rates, counted per connector and client IP over a sliding minute: connections
 * (refused at connect) and messages (MAIL commands; Exchange's MessageRateLimit), both with
 * 421 4.7.0 and a disconnect. Authenticated and allow-listed sessions are not limited.
 */
export function rateLimitsAgent(options: {
  messagesPerMinutePerSource?: number | undefined;
  connectionsPerMinutePerSource?: number | undefined;
  clock: Clock;
}): Agent {
  const connections = new SlidingWindow();
  const messages = new SlidingWindow();
  const key = (s: AgentSession) => `${s.connector.name}\u0000${s.remoteIp}`;
  return {
    name: 'rateLimits',
    connect({ session }) {
      const limit = options.connectionsPerMinutePerSource;
      if (limit === undefined || exempt(session)) return undefined;
      if (connections.take(key(session), limit, options.clock.now())) return undefined;
      return rejectWith(
        reply(
          421,
          '4.7.0',
          `${session.localFqdn} Too many connections from [${session.remoteIp}]; try again later`,
        ),
        { disconnect: true },
      );
    },
    mail({ session }) {
      const limit = options.messagesPerMinutePerSource;
      if (limit === undefined || exempt(session)) return undefined;
      if (messages.take(key(session), limit, options.clock.now())) return undefined;
      return rejectWith(
        reply(
          421,
          '4.7.0',
          `${session.localFqdn} Message rate limit exceeded for [${session.remoteIp}]; try again later`,
        ),
        { disconnect: true },
      );
    },
  };
}
