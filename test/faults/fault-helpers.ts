import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { SqliteQueueStore, type SqliteQueueStoreOptions } from '../../src/queue/sqlite-store.ts';
import { SmtpTestClient, type TestReply } from '../helpers/smtp-client.ts';

/** The short form runs in `npm test`; FERRYMAIL_FAULTS=full (npm run test:faults) runs the full one. */
export const FULL = process.env.FERRYMAIL_FAULTS === 'full';

export const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Connects and reads the greeting, retrying while the node is (re)starting. */
export async function connectWhenReady(port: number, timeoutMs = 20_000): Promise<SmtpTestClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const c = await SmtpTestClient.connect(port);
      const greeting = await c.greeting();
      if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.text}`);
      return c;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

export interface Submission {
  readonly from: string;
  readonly to: ReadonlyArray<string>;
  /** Header lines without line endings. */
  readonly headers?: ReadonlyArray<string>;
  readonly body?: string;
}

/** The replies of one transaction: MAIL, each RCPT, DATA and the end of data (absent once one failed). */
export interface TransactionReplies {
  readonly mail: TestReply;
  readonly rcpt: TestReply[];
  readonly data?: TestReply;
  readonly end?: TestReply;
}

export function messageText(m: Submission): string {
  const headers = [...(m.headers ?? []), `From: <${m.from}>`, `To: ${m.to.map((t) => `<${t}>`).join(', ')}`];
  return `${headers.join('\r\n')}\r\n\r\n${m.body ?? 'fault test body'}\r\n.\r\n`;
}

/**
 * One transaction on a session already past EHLO (and AUTH), pipelined as RFC 2920 allows:
 * MAIL, RCPT… and DATA in one write, then the content. The session is left ready for the next.
 */
export async function transaction(c: SmtpTestClient, m: Submission): Promise<TransactionReplies> {
  c.write(`MAIL FROM:<${m.from}>\r\n${m.to.map((t) => `RCPT TO:<${t}>\r\n`).join('')}DATA\r\n`);
  const mail = await c.reply();
  const rcpt: TestReply[] = [];
  for (let i = 0; i < m.to.length; i++) rcpt.push(await c.reply());
  const data = await c.reply();
  if (data.code !== 354) {
    if (mail.code === 250) await c.command('RSET');
    return { mail, rcpt, data };
  }
  c.write(messageText(m));
  return { mail, rcpt, data, end: await c.reply() };
}

/** A fresh session (EHLO, AUTH PLAIN when `auth` is given), one transaction, QUIT. */
export async function sendOne(
  port: number,
  m: Submission,
  auth?: { user: string; password: string },
): Promise<TransactionReplies> {
  const c = await connectWhenReady(port);
  try {
    const ehlo = await c.command('EHLO fault.test');
    if (ehlo.code !== 250) throw new Error(`EHLO: ${ehlo.code} ${ehlo.text}`);
    if (auth) {
      const r = await c.command(`AUTH PLAIN ${b64(`\0${auth.user}\0${auth.password}`)}`);
      if (r.code !== 235) throw new Error(`AUTH: ${r.code} ${r.text}`);
    }
    const replies = await transaction(c, m);
    c.write('QUIT\r\n');
    return replies;
  } finally {
    c.close();
  }
}

/** Polls `test` until it holds; fails with `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  test: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await test();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`not reached in ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A relay node like config/examples/relay-smarthost.yaml: anonymous relay from loopback on
 * `port`, everything out through the smart host on `smartHostPort`; retries come quickly.
 */
export function relayConfig(
  dir: string,
  options: { port: number; smartHostPort: number; queue?: Record<string, unknown> },
) {
  return {
    node: {
      name: 'fault',
      fqdn: 'relay.fault.test',
      dataDir: `${dir}/data`,
      logLevel: process.env.FERRYMAIL_FAULTS_LOG ? 'info' : 'silent',
    },
    acceptedDomains: [{ name: 'relay.fault.test', type: 'externalRelay', default: true }],
    receiveConnectors: [
      {
        name: 'Relay',
        bindings: [`127.0.0.1:${options.port}`],
        remoteRanges: ['127.0.0.0/8'],
        permissionGroups: { anonymous: ['submit', 'relay'] },
        tls: { mode: 'none' },
      },
    ],
    sendConnectors: [
      {
        name: 'SmartHost',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${options.smartHostPort}`] },
        tls: { mode: 'none' },
        limits: { connectTimeout: '2s', commandTimeout: '10s', idleTimeout: '1s' },
      },
    ],
    queue: {
      retry: { glitchInterval: '300ms', transientInterval: '300ms', messageRetryInterval: '300ms' },
      ...options.queue,
    },
    emailAuthentication: { trustedRanges: ['127.0.0.0/8'] },
  };
}

/** The subject marker on which test/faults/crashing-node.ts kills itself. */
export const POISON_MARKER = 'POISON-PILL';

/** Opens the queue in `dir` (a stopped node's `<dataDir>/queue`) on the real clock, to look inside. */
export async function openQueue(
  dir: string,
  options: Partial<SqliteQueueStoreOptions> = {},
): Promise<SqliteQueueStore> {
  const store = new SqliteQueueStore({
    dir,
    clock: systemClock,
    ids: createIdGenerator(systemClock),
    messageExpiration: 86_400_000,
    ...options,
  });
  await store.open();
  return store;
}
