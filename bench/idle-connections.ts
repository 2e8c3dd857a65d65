/**
 * Idle connections: N concurrent SMTP connections, each past the greeting and EHLO, then idle;
 * the server's resident memory before and with all of them connected. Ferrymail (one process:
 * VmRSS and VmHWM from /proc/<pid>/status) and Postfix 3.7 (smtpd is one process per connection:
 * the RSS and the PSS summed over the master and every descendant) in turn.
 *
 *   npm run bench:idle -- [--connections 10000] [--postfix-connections <n>] [--sources 10] [--no-postfix]
 *
 * Connections come from 127.0.0.2 … 127.0.0.<1+sources>, so no single source address needs
 * more than its share of ephemeral ports. The connector's limits are raised for the run
 * (maxConnections, maxConnectionsPerSource); Postfix gets default_process_limit = N.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { relayNodeConfig } from './ferrymail-config.ts';
import { startFerrymailProcess, stopChild } from './ferrymail-process.ts';
import { sleep, wholeNumber, withCleanup } from './lifecycle.ts';
import { mb, processMemory, treeMemory } from './memory.ts';
import { ensurePostfix, postfixVersion, startPostfixInstance } from './postfix.ts';
import { type Figure, printFigures, reportFigures, writeResults } from './report.ts';
import { BenchConnection } from './smtp-client.ts';
import { freePorts } from './wait.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    'postfix-connections': { type: 'string' },
    sources: { type: 'string', default: '10' },
    'no-postfix': { type: 'boolean', default: false },
  },
});
const CONNECTIONS = wholeNumber('connections', values.connections);
/**
 * Postfix holds each connection in its own smtpd process (~1.2 MB PSS each here): 10,000 of them
 * take ~12 GB, more than a shared 24 GB machine should give a bench. By default it gets at most
 * 1,000 and its figure per connection is scaled; --postfix-connections 10000 on a machine of its own.
 */
const POSTFIX_CONNECTIONS = wholeNumber(
  'postfix-connections',
  values['postfix-connections'] ?? String(Math.min(CONNECTIONS, 1000)),
);
const SOURCES = wholeNumber('sources', values.sources);
/** Connections being opened at once (a listen backlog is finite; a flood of SYNs measures nothing). */
const OPENING = 100;
/** After the last EHLO: lets the server finish its per-connection work before the reading. */
const SETTLE_MS = 3000;

interface Held {
  connected: number;
  failed: number;
  firstError?: string;
  seconds: number;
  connections: BenchConnection[];
}

/** Opens `count` connections, each through the greeting and EHLO; failures are counted, not fatal. */
async function openIdle(port: number, count: number): Promise<Held> {
  const connections: BenchConnection[] = [];
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const started = performance.now();
  let lastReport = started;
  await Promise.all(
    Array.from({ length: OPENING }, async () => {
      while (next < count) {
        const i = next++;
        try {
          const c = await BenchConnection.open(port, `127.0.0.${2 + (i % SOURCES)}`);
          try {
            await c.expect(220, 'greeting');
            await c.command(`EHLO idle${i}.bench.test`, 250);
          } catch (error) {
            c.close();
            throw error;
          }
          connections.push(c);
        } catch (error) {
          failed++;
          firstError ??= error instanceof Error ? error.message : String(error);
          // A server that refuses more connections refuses all the rest: do not hammer it.
          if (failed > 200) next = count;
        }
        if (performance.now() - lastReport > 5000) {
          lastReport = performance.now();
          console.error(`  … ${connections.length} connected, ${failed} failed`);
        }
      }
    }),
  );
  return {
    connected: connections.length,
    failed,
    firstError,
    seconds: (performance.now() - started) / 1000,
    connections,
  };
}

/** Connections the server has not closed (an idle timeout would shrink the count). */
const alive = (held: Held) =>
  held.connections.filter((c) => !c.socket.destroyed && c.socket.readyState === 'open').length;

/** Closes them and waits until the server has seen the closes (its memory comes back down). */
async function closeAll(held: Held): Promise<void> {
  for (const c of held.connections) c.close();
  held.connections.length = 0;
  await sleep(1000);
}

interface Result {
  server: 'ferrymail' | 'postfix';
  target: number;
  connected: number;
  failed: number;
  firstError?: string;
  secondsToOpen: number;
  /** Before any connection. */
  before: { rssMb: number; pssMb?: number; processes?: number };
  /** With all connected. */
  held: { rssMb: number; hwmMb?: number; pssMb?: number; processes?: number };
}

async function main(): Promise<void> {
  if (!values['no-postfix']) ensurePostfix();
  const results: Result[] = [];
  await withCleanup(async (defer) => {
    const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-idle-'));
    defer(() => rm(root, { recursive: true, force: true }));
    // The sink port: nothing is relayed, the config needs a smart host.
    const [ferryPort, postfixPort, sinkPort] = (await freePorts(3)) as [number, number, number];

    // Ferrymail.
    const { yaml } = relayNodeConfig({
      root,
      port: ferryPort,
      sinkPort,
      receiveLimits: { maxConnections: CONNECTIONS + 1000, maxConnectionsPerSource: CONNECTIONS + 1000 },
    });
    const file = join(root, 'ferrymail.yaml');
    await writeFile(file, yaml);
    let child: ChildProcess | undefined;
    defer(() => child && stopChild(child));
    await startFerrymailProcess(file, ferryPort, (c) => {
      child = c;
    });
    const pid = child!.pid!;
    await sleep(2000);
    const before = processMemory(pid);
    console.error(
      `ferrymail: ${mb(before.rssKb).toFixed(1)} MB resident before; opening ${CONNECTIONS} connections…`,
    );
    const held = await openIdle(ferryPort, CONNECTIONS);
    await sleep(SETTLE_MS);
    const during = processMemory(pid);
    held.connected = alive(held);
    console.error(
      `ferrymail: ${held.connected} connected in ${held.seconds.toFixed(1)} s (${held.failed} failed${held.firstError ? `: ${held.firstError}` : ''}), ${mb(during.rssKb).toFixed(1)} MB resident, peak ${mb(during.hwmKb).toFixed(1)} MB`,
    );
    results.push({
      server: 'ferrymail',
      target: CONNECTIONS,
      connected: held.connected,
      failed: held.failed,
      ...(held.firstError ? { firstError: held.firstError } : {}),
      secondsToOpen: held.seconds,
      before: { rssMb: mb(before.rssKb) },
      held: { rssMb: mb(during.rssKb), hwmMb: mb(during.hwmKb) },
    });
    await closeAll(held);
    await stopChild(child!);

    if (values['no-postfix']) return;
    // Postfix: one smtpd per connection, so its process limit must allow them all.
    const postfix = await startPostfixInstance(join(root, 'postfix'), postfixPort, {
      relayTo: { host: '127.0.0.1', port: sinkPort },
      // No reverse lookup per connection (Ferrymail does none at connect either): with it, this
      // machine's slow resolver let Postfix open ~10 connections a second.
      // smtpd_timeout: opening them all took minutes here, longer than the default 300 s idle limit.
      mainCf: `default_process_limit = ${POSTFIX_CONNECTIONS + 100}\nsmtpd_peername_lookup = no\nsmtpd_timeout = 3600s\n`,
    });
    defer(() => postfix.stop());
    await sleep(2000);
    const master = postfix.masterPid();
    const pBefore = treeMemory(master);
    console.error(
      `postfix: ${mb(pBefore.rssKb).toFixed(1)} MB RSS (${mb(pBefore.pssKb).toFixed(1)} MB PSS) over ${pBefore.processes} processes before; opening ${POSTFIX_CONNECTIONS}…`,
    );
    const pHeld = await openIdle(postfixPort, POSTFIX_CONNECTIONS);
    await sleep(SETTLE_MS);
    const pDuring = treeMemory(master);
    pHeld.connected = alive(pHeld);
    console.error(
      `postfix: ${pHeld.connected} connected in ${pHeld.seconds.toFixed(1)} s (${pHeld.failed} failed${pHeld.firstError ? `: ${pHeld.firstError}` : ''}), ${mb(pDuring.rssKb).toFixed(0)} MB RSS summed, ${mb(pDuring.pssKb).toFixed(0)} MB PSS, ${pDuring.processes} processes`,
    );
    results.push({
      server: 'postfix',
      target: POSTFIX_CONNECTIONS,
      connected: pHeld.connected,
      failed: pHeld.failed,
      ...(pHeld.firstError ? { firstError: pHeld.firstError } : {}),
      secondsToOpen: pHeld.seconds,
      before: { rssMb: mb(pBefore.rssKb), pssMb: mb(pBefore.pssKb), processes: pBefore.processes },
      held: { rssMb: mb(pDuring.rssKb), pssMb: mb(pDuring.pssKb), processes: pDuring.processes },
    });
    await closeAll(pHeld);
  });

  const f = results.find((r) => r.server === 'ferrymail')!;
  const p = results.find((r) => r.server === 'postfix');
  const figures: Figure[] = [
    {
      name: `idle: RSS with ${f.connected} connections`,
      unit: 'MB',
      ferrymail: f.held.rssMb,
      // Postfix's PSS, scaled to Ferrymail's connection count when it held fewer.
      ...(p?.held.pssMb !== undefined && p.before.pssMb !== undefined
        ? {
            reference:
              p.before.pssMb + ((p.held.pssMb - p.before.pssMb) * f.connected) / Math.max(1, p.connected),
          }
        : {}),
      ...(p
        ? {
            referenceLabel: `Postfix, PSS summed over its processes${p.connected === f.connected ? '' : `, measured with ${p.connected} connections and scaled to ${f.connected}`}`,
          }
        : {}),
      goal: { kind: 'at-most', value: 300 },
      ...(f.connected < CONNECTIONS ? { note: `only ${f.connected} of ${CONNECTIONS} connected` } : {}),
    },
    {
      name: 'idle: RSS per connection',
      unit: 'KB',
      ferrymail: ((f.held.rssMb - f.before.rssMb) * 1024) / Math.max(1, f.connected),
      ...(p?.held.pssMb !== undefined && p.before.pssMb !== undefined
        ? { reference: ((p.held.pssMb - p.before.pssMb) * 1024) / Math.max(1, p.connected) }
        : {}),
    },
  ];
  const title = `idle connections: ${CONNECTIONS} held past EHLO (Ferrymail) / ${POSTFIX_CONNECTIONS} (Postfix)`;
  printFigures(title, figures);
  await writeResults('idle-connections', {
    title,
    ...(values['no-postfix'] ? {} : { postfixVersion: postfixVersion() }),
    parameters: { connections: CONNECTIONS, postfixConnections: POSTFIX_CONNECTIONS, sources: SOURCES },
    results,
    figures,
  });
  await reportFigures('idle-connections', figures);
}

await main();
