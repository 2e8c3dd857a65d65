import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/core/logger.ts';
import type { TrackingEvent } from '../../src/observe/events.ts';
import { SqliteTrackingLog, type SqliteTrackingLogOptions } from '../../src/tracking/sqlite-tracking-log.ts';
import type { StoredTrackingEvent, TrackingLog, TrackingQuery } from '../../src/tracking/types.ts';

export const T0 = Date.UTC(2026, 10, 1, 12, 0, 0);

/** A RECEIVE event with every field set; `overrides` change or add fields. */
export function trackingEvent(overrides: Partial<TrackingEvent> = {}): TrackingEvent {
  return {
    time: T0,
    eventId: 'RECEIVE',
    source: 'SMTP',
    internalId: 'q-0001',
    messageId: '<m-0001@client.example.net>',
    clientIp: '192.0.2.10',
    clientHostname: 'client.example.net',
    serverIp: '127.0.0.1',
    serverHostname: 'mx.example.test',
    connector: 'Default',
    sender: 'someone@example.net',
    returnPath: 'someone@example.net',
    recipients: ['alice@example.test'],
    recipientStatus: ['250 2.1.5 Recipient OK'],
    size: 1234,
    subject: 'Quarterly report',
    directionality: 'Incoming',
    ...overrides,
  };
}

export function logPath(dir: string): string {
  return join(dir, 'tracking', 'tracking.db');
}

export function openLog(
  dir: string,
  options: Partial<SqliteTrackingLogOptions> = {},
): Promise<SqliteTrackingLog> {
  return SqliteTrackingLog.open({ path: logPath(dir), ...options });
}

/** Every event a query matches, page after page (each page `limit` long). */
export async function searchAll(log: TrackingLog, query: TrackingQuery): Promise<StoredTrackingEvent[]> {
  const all: StoredTrackingEvent[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await log.search({ ...query, ...(cursor ? { cursor } : {}) });
    all.push(...page.events);
    if (!page.nextCursor) return all;
    cursor = page.nextCursor;
  }
  throw new Error('pagination never ended');
}

/** A logger that keeps its records, to check what was logged (and how often). */
export function capturingLogger(): { logger: Logger; records: Array<{ level: number; msg: string }> } {
  const records: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), records };
}
