/**
 * A deep queue: --deferred (1,000,000) deferred messages in a node's queue, then
 *  1. accept rate (smtp-source, 4 KB, 20 sessions, relayed to smtp-sink) of that node against the
 *     same node with an empty queue, both running, rounds alternating;
 *  2. time to list a page of the queue viewer: the admin API (GET /api/v1/messages?limit=100,
 *     filtered by recipient, a page deep in the queue with `after`, GET /api/v1/queues) when the
 *     node serves it, else the store's own queries (SqliteQueueStore.listMessages, countRecipients)
 *     on the stopped node's folder; p50 / p99 of --loads (20) loads each.
 *
 *   npm run bench:deep-queue -- [--deferred 1000000] [--deferred-size 4096] [--messages 5000]
 *                               [--rounds 3] [--sessions 20] [--warmup 1000] [--loads 20]
 *
 * The deferred messages are made the way the node makes them, then copied in SQL: one message is
 * sent to the node while its smart host is down, so the node itself commits it and records the
 * deferral (attempts 1, the 4xx response, a next attempt); the node is stopped and that
 * message's rows in `messages`, `message_bodies` and `recipients` are copied --deferred − 1 times
 * with a new queue id, a recipient rcpt<i>@remote<i mod 100>.test, and the next attempt moved
 * 6 hours ahead (every row otherwise equal to what commit and the deferral wrote, whatever
 * columns the schema has). The data set lives in a temp folder removed at the end.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config/load.ts';
import { systemClock } from '../src/core/clock.ts';
import { createIdGenerator } from '../src/core/ids.ts';
import { SqliteQueueStore } from '../src/queue/sqlite-store.ts';
import { relayNodeConfig } from './ferrymail-config.ts';
import { startFerrymailProcess, stopChild } from './ferrymail-process.ts';
import { percentile, sleep, wholeNumber, withCleanup } from './lifecycle.ts';
import { ensurePostfix } from './postfix.ts';
import { type Figure, median, printFigures, reportFigures, writeResults } from './report.ts';
import { BenchConnection } from './smtp-client.ts';
import { runSmtpSource, Sink } from './smtp-tools.ts';
import { freePorts, waitForListener } from './wait.ts';

const { values } = parseArgs({
  options: {
    deferred: { type: 'string', default: '1000000' },
    'deferred-size': { type: 'string', default: '4096' },
    messages: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
    sessions: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '1000' },
    loads: { type: 'string', default: '20' },
  },
});
const DEFERRED = wholeNumber('deferred', values.deferred);
const DEFERRED_SIZE = wholeNumber('deferred-size', values['deferred-size'], 100);
const MESSAGES = wholeNumber('messages', values.messages);
const ROUNDS = wholeNumber('rounds', values.rounds);
const SESSIONS = wholeNumber('sessions', values.sessions);
const WARMUP = wholeNumber('warmup', values.warmup, 0);
const LOADS = wholeNumber('loads', values.loads);
const ROUND_TIMEOUT_MS = 120_000;

/** Sends one message of about `size` bytes; the node answers 250 once it is queued. */
async function sendOne(port: number, size: number): Promise<void> {
  const c = await BenchConnection.open(port);
  try {
    await c.expect(220, 'greeting');
    await c.command('EHLO deep.bench.test', 250);
    await c.command('MAIL FROM:<sender@client.test>', 250);
    await c.command('RCPT TO:<rcpt0@remote0.test>', 250);
    await c.command('DATA', 354);
    const line = `${'x'.repeat(76)}\r\n`;
    await c.write(
      `From: <sender@client.test>\r\nTo: <rcpt0@remote0.test>\r\nSubject: deferred\r\n\r\n${line.repeat(Math.max(1, Math.floor(size / line.length)))}`,
    );
    await c.command('.', 250);
    await c.command('QUIT', 221).catch(() => undefined);
  } finally {
    c.close();
  }
}

const columns = (db: DatabaseSync, table: string) =>
  (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name);

/**
 * Copies the template message's rows `count` times in three INSERT … SELECT statements over a
 * generated series: new id (the template id's time part and an 8-digit counter, so ids still sort
 * by arrival), recipient address spread over 100 domains, next attempt 6 h ahead; other columns
 * copied as they are.
 */
function cloneTemplate(dbPath: string, templateId: string, count: number): void {
  const db = new DatabaseSync(dbPath);
  try {
    // Nothing else has the database open; a crash here just loses the temp data set.
    // Out of WAL mode for the bulk copy, or every page is written twice (WAL, then checkpoint);
    // a rollback journal holds only the few pages that existed before. (node:sqlite's defensive
    // mode refuses journal_mode OFF.)
    const mode = db.prepare('PRAGMA journal_mode = DELETE').get() as { journal_mode: string };
    if (mode.journal_mode !== 'delete') console.error(`bulk copy in journal mode ${mode.journal_mode}`);
    db.exec('PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;');
    const series = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})`;
    const copy = (table: string, key: string, replace: Record<string, string>) => {
      const cols = columns(db, table);
      const newId = `substr(t.${key}, 1, 10) || printf('%08d', n.i)`;
      const select = cols.map((c) => (c === key ? newId : (replace[c] ?? `t.${c}`)));
      db.prepare(
        `${series} INSERT INTO ${table} (${cols.join(', ')}) SELECT ${select.join(', ')} FROM n, ${table} t WHERE t.${key} = ?`,
      ).run(templateId);
    };
    const nextAttempt = Date.now() + 6 * 3_600_000;
    db.exec('BEGIN');
    copy('messages', 'id', {});
    copy('message_bodies', 'id', {});
    copy('recipients', 'message_id', {
      address: `'rcpt' || n.i || '@remote' || (n.i % 100) || '.test'`,
      next_attempt_at: `${nextAttempt} + n.i`,
    });
    db.prepare('UPDATE recipients SET next_attempt_at = ? WHERE message_id = ?').run(nextAttempt, templateId);
    db.exec('COMMIT');
    db.exec('PRAGMA journal_mode = WAL');
    // The node starts on a checkpointed database, as after a clean stop.
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}

interface Round {
  queue: 'deep' | 'empty';
  acceptedPerSecond: number;
  relayedPerSecond: number;
}

interface PageTimes {
  what: string;
  p50: number;
  p99: number;
  max: number;
  /** Items on the page (messages), to show the page was not empty. */
  items: number;
}

async function timeLoads(what: string, load: () => Promise<number>): Promise<PageTimes> {
  await load(); // a first, uncounted load: prepared statements, caches
  const times: number[] = [];
  let items = 0;
  for (let i = 0; i < LOADS; i++) {
    const t0 = performance.now();
    items = await load();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { what, p50: percentile(times, 0.5), p99: percentile(times, 0.99), max: times.at(-1)!, items };
}

/** True when this tree's config schema takes an `admin:` section (the admin API exists). */
function adminApiAvailable(yaml: string): boolean {
  if (!existsSync(new URL('../src/admin/', import.meta.url))) return false;
  try {
    parseConfig(yaml, 'probe.yaml');
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  ensurePostfix(); // for smtp-source and smtp-sink
  const rounds: Round[] = [];
  const pages: PageTimes[] = [];
  let generationSeconds = 0;
  let pageSource = '';
  await withCleanup(async (defer) => {
    const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-deep-'));
    defer(() => rm(root, { recursive: true, force: true }));
    const [sinkPort, deepPort, emptyPort, adminPort] = (await freePorts(4)) as [
      number,
      number,
      number,
      number,
    ];
    const admin = `admin:\n  listen: ["127.0.0.1:${adminPort}"]\n`;
    // Back pressure counts every recipient not final, deferred ones included: with its default
    // high watermark (10,000) the deep node would refuse all anonymous mail with 452 4.3.1. The
    // watermarks are raised above the data set (its sampling, countRecipients every 2 s, stays on
    // and is measured), on both nodes alike.
    const queueYaml = `queue:\n  backPressure:\n    highWatermark: ${DEFERRED * 2 + 100_000}\n    lowWatermark: ${DEFERRED * 2}\n`;
    const deep = relayNodeConfig({ root, port: deepPort, sinkPort, name: 'deep', extra: queueYaml });
    const useApi = adminApiAvailable(
      relayNodeConfig({ root, port: deepPort, sinkPort, name: 'deep', extra: queueYaml + admin }).yaml,
    );
    const deepYaml = useApi
      ? relayNodeConfig({ root, port: deepPort, sinkPort, name: 'deep', extra: queueYaml + admin }).yaml
      : deep.yaml;
    const empty = relayNodeConfig({ root, port: emptyPort, sinkPort, name: 'empty', extra: queueYaml });
    await writeFile(join(root, 'deep.yaml'), deepYaml);
    await writeFile(join(root, 'empty.yaml'), empty.yaml);
    const children: ChildProcess[] = [];
    defer(() => Promise.all(children.map((c) => stopChild(c))));
    const start = async (name: 'deep' | 'empty') => {
      let child: ChildProcess | undefined;
      await startFerrymailProcess(join(root, `${name}.yaml`), name === 'deep' ? deepPort : emptyPort, (c) => {
        child = c;
        children.push(c);
      });
      return child!;
    };

    // 1. The template: committed and deferred by the node itself (nothing listens on the sink port yet).
    const t0 = performance.now();
    let node = await start('deep');
    await sendOne(deepPort, DEFERRED_SIZE);
    const dbPath = join(deep.dataDir, 'queue', 'queue.db');
    let templateId: string | undefined;
    const deadline = Date.now() + 60_000;
    while (!templateId) {
      if (Date.now() > deadline) throw new Error('the node did not defer the template message within 60 s');
      await sleep(200);
      const db = new DatabaseSync(dbPath, { readOnly: true });
      const row = db
        .prepare('SELECT message_id FROM recipients WHERE attempts >= 1 AND status = ? LIMIT 1')
        .get('pending') as { message_id: string } | undefined;
      db.close();
      templateId = row?.message_id;
    }
    await stopChild(node);
    children.splice(children.indexOf(node), 1);
    // 2. The copies.
    const t1 = performance.now();
    cloneTemplate(dbPath, templateId, DEFERRED - 1);
    generationSeconds = (performance.now() - t0) / 1000;
    console.error(
      `${DEFERRED} deferred messages generated in ${generationSeconds.toFixed(1)} s (copies: ${((performance.now() - t1) / 1000).toFixed(1)} s)`,
    );

    // 3. Accept rate, deep against empty, alternating.
    const sink = new Sink(sinkPort);
    defer(() => stopChild(sink.child));
    await waitForListener(sinkPort);
    const tStart = performance.now();
    node = await start('deep');
    console.error(`deep node listening ${((performance.now() - tStart) / 1000).toFixed(1)} s after start`);
    await start('empty');
    const round = async (queue: Round['queue'], messages: number): Promise<Round> => {
      await sleep(2000);
      const target = sink.count + messages;
      const started = process.hrtime.bigint();
      const relayed = sink.until(target, ROUND_TIMEOUT_MS, `${queue} queue`);
      relayed.catch(() => undefined);
      const accepted = await runSmtpSource({
        port: queue === 'deep' ? deepPort : emptyPort,
        sessions: SESSIONS,
        size: 4096,
        messages,
        recipient: 'rcpt@remote.test',
        timeoutMs: ROUND_TIMEOUT_MS,
        label: `${queue} queue`,
      });
      const done = await relayed;
      const s = (t: bigint) => Number(t - started) / 1e9;
      return { queue, acceptedPerSecond: messages / s(accepted), relayedPerSecond: messages / s(done) };
    };
    if (WARMUP > 0) for (const q of ['deep', 'empty'] as const) await round(q, WARMUP);
    for (let r = 0; r < ROUNDS; r++) {
      for (const q of ['deep', 'empty'] as const) {
        const result = await round(q, MESSAGES);
        rounds.push(result);
        console.error(
          `round ${r + 1} ${q} queue: accepted ${result.acceptedPerSecond.toFixed(0)}/s, relayed ${result.relayedPerSecond.toFixed(0)}/s`,
        );
      }
    }

    // 4. The queue viewer's page loads.
    const deepId = `${templateId.slice(0, 10)}${String(Math.floor(DEFERRED * 0.9)).padStart(8, '0')}`;
    let apiProblem = useApi ? '' : 'no admin API in this tree yet';
    if (useApi) {
      const token = (await readFile(join(deep.dataDir, 'admin', 'token'), 'utf8')).trim();
      /** Loads a page; resolves with the number of messages (or queues) in it. */
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
        const body = (await res.json()) as { messages?: unknown[]; queues?: unknown[] } | unknown[];
        if (Array.isArray(body)) return body.length;
        return (body.messages ?? body.queues ?? [body]).length;
      };
      try {
        await get('/api/v1/messages?limit=1');
      } catch (error) {
        apiProblem = `the admin API did not list messages (${error instanceof Error ? error.message : error})`;
      }
      if (!apiProblem) {
        pageSource = 'admin API over HTTP (the running deep node)';
        pages.push(
          await timeLoads('GET /api/v1/messages?limit=100', () => get('/api/v1/messages?limit=100')),
        );
        // One of the copies, half way in (the filter must find it, not return an empty page).
        const i = Math.max(1, Math.floor(DEFERRED / 2) + 7);
        const rcpt = `rcpt${i}@remote${i % 100}.test`;
        pages.push(
          await timeLoads(`… &recipient=${rcpt}`, () =>
            get(`/api/v1/messages?limit=100&recipient=${encodeURIComponent(rcpt)}`),
          ),
        );
        pages.push(
          await timeLoads(`… &after=<id of message ${Math.floor(DEFERRED * 0.9)}>`, () =>
            get(`/api/v1/messages?limit=100&after=${deepId}`),
          ),
        );
        pages.push(await timeLoads('GET /api/v1/queues', () => get('/api/v1/queues')));
      } else console.error(`${apiProblem}: measuring the store's queries instead`);
    }
    await Promise.all(children.map((c) => stopChild(c)));
    children.length = 0;
    if (apiProblem) {
      pageSource = `SqliteQueueStore in process on the stopped deep node's folder (${apiProblem})`;
      const store = new SqliteQueueStore({
        dir: join(deep.dataDir, 'queue'),
        clock: systemClock,
        ids: createIdGenerator(systemClock),
        messageExpiration: 2 * 86_400_000,
      });
      await store.open();
      defer(() => store.close());
      pages.push(
        await timeLoads(
          'store.listMessages({limit:100})',
          async () => (await store.listMessages({ limit: 100 })).length,
        ),
      );
      pages.push(
        await timeLoads(
          `store.listMessages({limit:100, after: <id of message ${Math.floor(DEFERRED * 0.9)}>})`,
          async () => (await store.listMessages({ limit: 100, after: deepId })).length,
        ),
      );
      pages.push(
        await timeLoads('store.countRecipients() (queue summary)', async () => {
          await store.countRecipients();
          return 1;
        }),
      );
    }
    for (const p of pages)
      console.error(`${p.what}: p50 ${p.p50.toFixed(2)} ms, p99 ${p.p99.toFixed(2)} ms (${p.items} items)`);
  });

  const pick = (q: Round['queue']) =>
    median(rounds.filter((r) => r.queue === q).map((r) => r.acceptedPerSecond));
  const figures: Figure[] = [
    {
      name: `deep queue (${DEFERRED} deferred): accepted/s`,
      unit: 'msg/s',
      ferrymail: pick('deep'),
      reference: pick('empty'),
      referenceLabel: 'the same node with an empty queue',
      goal: { kind: 'ratio-at-least', value: 0.8 },
    },
    ...pages.map(
      (p): Figure => ({
        name: `deep queue page: ${p.what} p99`,
        unit: 'ms',
        ferrymail: p.p99,
        goal: { kind: 'at-most', value: 100 },
        note: `p50 ${p.p50.toFixed(1)} ms, ${p.items} items`,
      }),
    ),
  ];
  const title = `deep queue: ${DEFERRED} deferred messages (generated in ${generationSeconds.toFixed(0)} s); ${MESSAGES} × 4 KB over ${SESSIONS} sessions, ${ROUNDS} alternating rounds; pages: ${pageSource}`;
  printFigures(title, figures);
  await writeResults('deep-queue', {
    title,
    parameters: {
      deferred: DEFERRED,
      deferredSize: DEFERRED_SIZE,
      messages: MESSAGES,
      rounds: ROUNDS,
      sessions: SESSIONS,
      warmup: WARMUP,
      loads: LOADS,
    },
    generationSeconds,
    pageSource,
    rounds,
    pages,
    figures,
  });
  await reportFigures('deep-queue', figures);
}

await main();
