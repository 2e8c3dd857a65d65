/**
 * Latency under load: the time from the client's `.` (end of data) to the server's `250`, at
 * half the maximum accept rate. The maximum is Ferrymail's accepted/s in a short smtp-source burst
 * (4 KB, 20 sessions, relayed to smtp-sink); then a paced, open-loop client (node:net) offers
 * messages at fixed intervals (message k is due at start + k / rate, whether or not earlier ones
 * are answered) over persistent sessions, opening another session when none is free. The same
 * offered rate goes to Ferrymail and to Postfix 3.7, runs alternating.
 *
 *   npm run bench:latency -- [--rate <msg/s>] [--seconds 20] [--rounds 2] [--burst 3000]
 *                            [--max-sessions 200] [--no-postfix]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { relayNodeConfig } from './ferrymail-config.ts';
import { startFerrymailProcess, stopChild } from './ferrymail-process.ts';
import { percentile, sleep, wholeNumber, withCleanup } from './lifecycle.ts';
import { ensurePostfix, postfixVersion, startPostfixInstance } from './postfix.ts';
import { type Figure, median, printFigures, reportFigures, writeResults } from './report.ts';
import { BenchConnection } from './smtp-client.ts';
import { runSmtpSource, Sink } from './smtp-tools.ts';
import { freePorts, waitForListener } from './wait.ts';

const { values } = parseArgs({
  options: {
    rate: { type: 'string' },
    seconds: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '2' },
    burst: { type: 'string', default: '3000' },
    'max-sessions': { type: 'string', default: '200' },
    'no-postfix': { type: 'boolean', default: false },
  },
});
const SECONDS = wholeNumber('seconds', values.seconds);
const ROUNDS = wholeNumber('rounds', values.rounds);
const BURST = wholeNumber('burst', values.burst);
const MAX_SESSIONS = wholeNumber('max-sessions', values['max-sessions']);
const TIMEOUT_MS = 120_000;

const LINE = `${'x'.repeat(76)}\r\n`;
const BODY = Buffer.from(
  `From: <sender@client.test>\r\nTo: <rcpt@remote.test>\r\nSubject: latency\r\n\r\n${LINE.repeat(52)}`,
  'latin1',
); // about 4 KB

interface Run {
  server: 'ferrymail' | 'postfix';
  offeredPerSecond: number;
  messages: number;
  failed: number;
  sessions: number;
  /** ms from `.` to `250`. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** ms a message waited past its due time for a free session (the client's own lag). */
  lateP99: number;
}

/** One paced run: `rate` messages per second for `seconds`, over as many sessions as it takes. */
async function pacedRun(server: Run['server'], port: number, rate: number): Promise<Run> {
  const total = Math.round(rate * SECONDS);
  const idle: BenchConnection[] = [];
  const all: BenchConnection[] = [];
  let opening = 0;
  const backlog: number[] = []; // due times of messages waiting for a session
  const latencies: number[] = [];
  const lateness: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let finished = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const finish = () => {
    if (++finished === total) resolveDone();
  };

  const transact = async (c: BenchConnection, due: number) => {
    lateness.push(performance.now() - due);
    try {
      await c.command('MAIL FROM:<sender@client.test>', 250);
      await c.command('RCPT TO:<rcpt@remote.test>', 250);
      await c.command('DATA', 354);
      await c.write(BODY);
      const t0 = performance.now();
      await c.write('.\r\n');
      await c.expect(250, 'end of data');
      latencies.push(performance.now() - t0);
      release(c);
    } catch (error) {
      failed++;
      firstError ??= error instanceof Error ? error.message : String(error);
      c.close();
      all.splice(all.indexOf(c), 1);
      if (backlog.length > 0) void openSession();
    } finally {
      finish();
    }
  };
  const release = (c: BenchConnection) => {
    const next = backlog.shift();
    if (next === undefined) idle.push(c);
    else void transact(c, next);
  };
  const openSession = async () => {
    opening++;
    try {
      const c = await BenchConnection.open(port);
      await c.expect(220, 'greeting');
      await c.command('EHLO paced.bench.test', 250);
      all.push(c);
      release(c);
    } catch (error) {
      firstError ??= error instanceof Error ? error.message : String(error);
    } finally {
      opening--;
    }
  };
  const offer = (due: number) => {
    const c = idle.pop();
    if (c) return void transact(c, due);
    backlog.push(due);
    if (all.length + opening < MAX_SESSIONS && opening < backlog.length) void openSession();
  };

  // A few sessions ready before the clock starts, as a relaying MTA keeps them.
  await Promise.all(Array.from({ length: Math.min(10, MAX_SESSIONS) }, openSession));
  const start = performance.now();
  const interval = 1000 / rate;
  let k = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (k < total && start + k * interval <= now) offer(start + k++ * interval);
      if (k >= total) return resolve();
      setTimeout(tick, Math.max(0, start + k * interval - performance.now()));
    };
    tick();
  });
  const timer = setTimeout(() => resolveDone(), TIMEOUT_MS);
  await done;
  clearTimeout(timer);
  const sessions = all.length;
  for (const c of all) c.close();
  if (failed > 0) console.error(`${server}: ${failed} failed (${firstError})`);
  latencies.sort((a, b) => a - b);
  lateness.sort((a, b) => a - b);
  return {
    server,
    offeredPerSecond: rate,
    messages: latencies.length,
    failed,
    sessions,
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
    p99: percentile(latencies, 0.99),
    max: latencies.at(-1) ?? Number.NaN,
    lateP99: percentile(lateness, 0.99),
  };
}

async function main(): Promise<void> {
  if (!values['no-postfix']) ensurePostfix();
  const runs: Run[] = [];
  let maxRate = 0;
  let postfixMaxRate: number | undefined;
  let rate = 0;
  await withCleanup(async (defer) => {
    const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-latency-'));
    defer(() => rm(root, { recursive: true, force: true }));
    const [sinkPort, ferryPort, postfixPort] = (await freePorts(3)) as [number, number, number];
    const sink = new Sink(sinkPort);
    defer(() => stopChild(sink.child));
    await waitForListener(sinkPort);
    const { yaml } = relayNodeConfig({ root, port: ferryPort, sinkPort });
    await writeFile(join(root, 'ferrymail.yaml'), yaml);
    let child: ChildProcess | undefined;
    defer(() => child && stopChild(child));
    await startFerrymailProcess(join(root, 'ferrymail.yaml'), ferryPort, (c) => {
      child = c;
    });
    const servers: Array<{ server: Run['server']; port: number }> = [
      { server: 'ferrymail', port: ferryPort },
    ];
    if (!values['no-postfix']) {
      const postfix = await startPostfixInstance(join(root, 'postfix'), postfixPort, {
        relayTo: { host: '127.0.0.1', port: sinkPort },
      });
      defer(() => postfix.stop());
      servers.push({ server: 'postfix', port: postfixPort });
    }
    /** Messages the servers have accepted so far: the sink should count as many. */
    let accepted = 0;
    const drain = async () => {
      // Whatever was accepted reaches the sink before the next measurement starts, then a pause.
      await sink.until(accepted, TIMEOUT_MS, 'relaying what was accepted');
      await sleep(1500);
    };
    const burst = async (server: Run['server'], port: number) => {
      const started = process.hrtime.bigint();
      const ended = await runSmtpSource({
        port,
        sessions: 20,
        size: 4096,
        messages: BURST,
        recipient: 'rcpt@remote.test',
        timeoutMs: TIMEOUT_MS,
        label: server,
      });
      accepted += BURST;
      return BURST / (Number(ended - started) / 1e9);
    };
    // Warm-up and the maximum (the burst's accept rate).
    for (const s of servers) await burst(s.server, s.port);
    await drain();
    maxRate = await burst('ferrymail', ferryPort);
    if (!values['no-postfix']) {
      await drain();
      postfixMaxRate = await burst('postfix', postfixPort);
    }
    rate =
      values.rate === undefined ? Math.max(1, Math.round(maxRate / 2)) : wholeNumber('rate', values.rate);
    console.error(
      `max accept rate: Ferrymail ${maxRate.toFixed(0)}/s${postfixMaxRate ? `, Postfix ${postfixMaxRate.toFixed(0)}/s` : ''}; offering ${rate}/s for ${SECONDS} s`,
    );
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of servers) {
        await drain();
        const run = await pacedRun(s.server, s.port, rate);
        accepted += run.messages;
        runs.push(run);
        console.error(
          `round ${r + 1} ${s.server}: ${run.messages} at ${rate}/s over ${run.sessions} sessions: p50 ${run.p50.toFixed(2)} ms, p90 ${run.p90.toFixed(2)}, p99 ${run.p99.toFixed(2)}, max ${run.max.toFixed(1)} (client lag p99 ${run.lateP99.toFixed(1)} ms)`,
        );
      }
    }
  });
  const pick = (server: Run['server'], key: 'p50' | 'p90' | 'p99' | 'max') => {
    const list = runs.filter((r) => r.server === server);
    return list.length === 0 ? undefined : median(list.map((r) => r[key]));
  };
  const figures: Figure[] = (['p50', 'p90', 'p99', 'max'] as const).map((key) => {
    const postfix = pick('postfix', key);
    return {
      name: `end of data → 250 at ${rate}/s: ${key}`,
      unit: 'ms',
      ferrymail: pick('ferrymail', key)!,
      ...(postfix === undefined ? {} : { reference: postfix }),
      ...(key === 'p99' ? { goal: { kind: 'at-most' as const, value: 20 } } : {}),
    };
  });
  const title = `latency: ${SECONDS} s at ${rate} msg/s offered (half of Ferrymail's ${maxRate.toFixed(0)}/s burst${postfixMaxRate ? `; Postfix's burst ${postfixMaxRate.toFixed(0)}/s` : ''}), 4 KB, ${ROUNDS} alternating rounds (median)`;
  printFigures(title, figures);
  await writeResults('latency', {
    title,
    ...(values['no-postfix'] ? {} : { postfixVersion: postfixVersion() }),
    parameters: { seconds: SECONDS, rounds: ROUNDS, burst: BURST, maxSessions: MAX_SESSIONS },
    maxRate,
    postfixMaxRate,
    offeredPerSecond: rate,
    runs,
    figures,
  });
  await reportFigures('latency', figures);
}

await main();
