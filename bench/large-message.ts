/**
 * One large message relayed: a client (node:net) streams a generated body of --size bytes (100 MB)
 * to the server, which relays it to Postfix's smtp-sink; the server's resident memory is sampled
 * every 50 ms from the end of a warm-up message to the sink's receipt of the large one. Figure:
 * peak growth over the idle baseline. Ferrymail (one process; its VmHWM, reset before the
 * transfer, is read too) and Postfix 3.7 (RSS summed over the master and all its descendants:
 * smtpd, cleanup, qmgr, smtp) alternate, with DATA and with BDAT (CHUNKING, 1 MB chunks).
 * Each Ferrymail transfer gets a fresh, warmed-up process (see freshFerrymail).
 *
 *   npm run bench:large -- [--size 104857600] [--rounds 1] [--modes data,bdat] [--no-postfix]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { relayNodeConfig } from './ferrymail-config.ts';
import { startFerrymailProcess, stopChild } from './ferrymail-process.ts';
import { sleep, usage, wholeNumber, withCleanup } from './lifecycle.ts';
import { mb, PeakSampler, processMemory, resetPeak, treeMemory } from './memory.ts';
import { ensurePostfix, postfixVersion, startPostfixInstance } from './postfix.ts';
import { type Figure, median, printFigures, reportFigures, writeResults } from './report.ts';
import { BenchConnection } from './smtp-client.ts';
import { Sink } from './smtp-tools.ts';
import { freePorts, waitForListener } from './wait.ts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: String(100 * 1024 * 1024) },
    rounds: { type: 'string', default: '1' },
    modes: { type: 'string', default: 'data,bdat' },
    'no-postfix': { type: 'boolean', default: false },
  },
});
const SIZE = wholeNumber('size', values.size, 1024);
const ROUNDS = wholeNumber('rounds', values.rounds);
type Mode = 'data' | 'bdat';
const MODES = values.modes.split(',').map((m) => m.trim()) as Mode[];
if (MODES.some((m) => m !== 'data' && m !== 'bdat')) usage('--modes takes data, bdat or both');
const TIMEOUT_MS = 300_000;
const BDAT_CHUNK = 1024 * 1024;

/** 64 KB of 76-character lines (none starts with a dot, so DATA needs no stuffing). */
const BLOCK = (() => {
  const line = `${'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd'}\r\n`;
  return Buffer.from(line.repeat(Math.floor(65_536 / line.length)), 'latin1');
})();

/** The message: headers, then BLOCKs (the last one cut) up to `size` bytes, ending in CRLF. */
function* messageChunks(size: number): Generator<Buffer> {
  const head = Buffer.from(
    `From: <sender@client.test>\r\nTo: <rcpt@remote.test>\r\nSubject: large ${size}\r\nMessage-ID: <${Date.now()}.${Math.random()}@client.test>\r\n\r\n`,
    'latin1',
  );
  yield head;
  let left = size - head.length;
  while (left > BLOCK.length) {
    yield BLOCK;
    left -= BLOCK.length;
  }
  // The tail: whole lines only, so the body still ends in CRLF.
  const tail = BLOCK.subarray(0, Math.max(0, left - (left % 78)));
  if (tail.length > 0) yield tail;
}

/** Sends one message of `size` bytes with DATA or BDAT; resolves when the server has said 250. */
async function sendMessage(port: number, size: number, mode: Mode): Promise<void> {
  const c = await BenchConnection.open(port);
  try {
    await c.expect(220, 'greeting');
    const ehlo = await c.command('EHLO large.bench.test', 250);
    if (mode === 'bdat' && !/\bCHUNKING\b/i.test(ehlo.text)) throw new Error('the server offers no CHUNKING');
    await c.command(`MAIL FROM:<sender@client.test> SIZE=${size}`, 250);
    await c.command('RCPT TO:<rcpt@remote.test>', 250);
    if (mode === 'data') {
      await c.command('DATA', 354);
      for (const chunk of messageChunks(size)) await c.write(chunk);
      await c.command('.', 250);
    } else {
      // Whole 1 MB chunks, each acknowledged before the next (no pipelining, like a cautious client).
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async (last: boolean) => {
        await c.write(`BDAT ${pendingBytes}${last ? ' LAST' : ''}\r\n`);
        for (const b of pending) await c.write(b);
        pending = [];
        pendingBytes = 0;
        await c.expect(250, 'BDAT');
      };
      for (const chunk of messageChunks(size)) {
        let rest = chunk;
        while (rest.length > 0) {
          const take = rest.subarray(0, BDAT_CHUNK - pendingBytes);
          pending.push(take);
          pendingBytes += take.length;
          rest = rest.subarray(take.length);
          if (pendingBytes === BDAT_CHUNK) await flush(false);
        }
      }
      await flush(true);
    }
    await c.command('QUIT', 221).catch(() => undefined);
  } finally {
    c.close();
  }
}

interface Round {
  server: 'ferrymail' | 'postfix';
  mode: Mode;
  baselineMb: number;
  /** Highest sampled resident memory (summed over processes for Postfix) minus the baseline. */
  peakGrowthMb: number;
  /** Ferrymail: VmHWM (reset before the transfer) minus the baseline. */
  hwmGrowthMb?: number;
  samples: number;
  /** From the first byte sent to the sink's count of the message. */
  seconds: number;
}

async function main(): Promise<void> {
  if (!values['no-postfix']) ensurePostfix();
  const rounds: Round[] = [];
  await withCleanup(async (defer) => {
    const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-large-'));
    defer(() => rm(root, { recursive: true, force: true }));
    const [sinkPort, ferryPort, postfixPort] = (await freePorts(3)) as [number, number, number];
    const sink = new Sink(sinkPort);
    defer(() => stopChild(sink.child));
    await waitForListener(sinkPort);
    const limit = `${Math.ceil((SIZE * 2) / 1024 / 1024)}MB`;
    const { yaml } = relayNodeConfig({
      root,
      port: ferryPort,
      sinkPort,
      receiveLimits: { maxMessageSize: limit },
      sendMaxMessageSize: limit,
    });
    const file = join(root, 'ferrymail.yaml');
    await writeFile(file, yaml);
    let child: ChildProcess | undefined;
    defer(() => child && stopChild(child));
    let postfixMaster: number | undefined;
    if (!values['no-postfix']) {
      const postfix = await startPostfixInstance(join(root, 'postfix'), postfixPort, {
        relayTo: { host: '127.0.0.1', port: sinkPort },
        mainCf: `message_size_limit = ${SIZE * 2}\nmailbox_size_limit = 0\n`,
      });
      defer(() => postfix.stop());
      postfixMaster = postfix.masterPid();
    }
    let sent = 0;
    const relayOne = async (port: number, size: number, mode: Mode): Promise<number> => {
      const started = performance.now();
      const arrived = sink.until(++sent, TIMEOUT_MS, `${size} B message`);
      arrived.catch(() => undefined);
      await sendMessage(port, size, mode);
      await arrived;
      return (performance.now() - started) / 1000;
    };
    /**
     * A fresh node for each measured transfer: memory that one transfer leaves with the allocator
     * (which keeps what it got) would raise the baseline of the next and hide its growth.
     * Warmed up like Postfix: a 64 KB message per mode, so the code paths are compiled.
     */
    let ferryPid = 0;
    const freshFerrymail = async () => {
      if (child) await stopChild(child);
      child = undefined;
      await startFerrymailProcess(file, ferryPort, (c) => {
        child = c;
      });
      ferryPid = child!.pid!;
      for (const mode of MODES) await relayOne(ferryPort, 64 * 1024, mode);
    };
    const servers = [
      { server: 'ferrymail' as const, port: ferryPort, rss: () => processMemory(ferryPid).rssKb },
      ...(postfixMaster === undefined
        ? []
        : [
            {
              server: 'postfix' as const,
              port: postfixPort,
              rss: () => treeMemory(postfixMaster!, false).rssKb,
            },
          ]),
    ];
    // Postfix's warm-up: every process a relay needs exists (it spawns them on demand).
    for (const s of servers) {
      if (s.server === 'postfix') for (const mode of MODES) await relayOne(s.port, 64 * 1024, mode);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of MODES) {
        for (const s of servers) {
          if (s.server === 'ferrymail') await freshFerrymail();
          await sleep(2000);
          const baseline = s.rss();
          if (s.server === 'ferrymail') resetPeak(ferryPid);
          const sampler = new PeakSampler(s.rss, 50);
          const seconds = await relayOne(s.port, SIZE, mode);
          const peak = sampler.stop();
          const round: Round = {
            server: s.server,
            mode,
            baselineMb: mb(baseline),
            peakGrowthMb: mb(peak - baseline),
            ...(s.server === 'ferrymail'
              ? { hwmGrowthMb: mb(processMemory(ferryPid).hwmKb - baseline) }
              : {}),
            samples: sampler.samples,
            seconds,
          };
          rounds.push(round);
          console.error(
            `${s.server} ${mode.toUpperCase()}: ${(SIZE / 1048576).toFixed(0)} MB relayed in ${seconds.toFixed(1)} s, baseline ${round.baselineMb.toFixed(1)} MB, peak growth ${round.peakGrowthMb.toFixed(1)} MB${round.hwmGrowthMb !== undefined ? ` (VmHWM ${round.hwmGrowthMb.toFixed(1)} MB)` : ''}, ${round.samples} samples`,
          );
        }
      }
    }
  });
  const figures: Figure[] = MODES.map((mode) => {
    const pick = (server: Round['server']) => {
      const list = rounds.filter((r) => r.server === server && r.mode === mode);
      return list.length === 0
        ? undefined
        : median(list.map((r) => Math.max(r.peakGrowthMb, r.hwmGrowthMb ?? Number.NEGATIVE_INFINITY)));
    };
    const postfix = pick('postfix');
    return {
      name: `${(SIZE / 1048576).toFixed(0)} MB relayed (${mode.toUpperCase()}): peak RSS growth`,
      unit: 'MB',
      ferrymail: pick('ferrymail')!,
      ...(postfix === undefined
        ? {}
        : { reference: postfix, referenceLabel: 'Postfix, RSS summed over its processes' }),
      goal: { kind: 'at-most' as const, value: 64 },
    };
  });
  const title = `large message: ${SIZE} bytes relayed to smtp-sink, ${ROUNDS} round(s), memory sampled every 50 ms`;
  printFigures(title, figures);
  await writeResults('large-message', {
    title,
    ...(values['no-postfix'] ? {} : { postfixVersion: postfixVersion() }),
    parameters: { size: SIZE, rounds: ROUNDS, modes: MODES },
    rounds,
    figures,
  });
  await reportFigures('large-message', figures);
}

await main();
