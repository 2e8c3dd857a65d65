/**
 * `npm run bench`: every benchmark in turn, each in its own process (so one's memory or a crash
 * does not colour the next), then one table of all figures with Postfix's (or the baseline's),
 * the ratio, the goal and PASS/FAIL, and one JSON file under bench/results/.
 *
 *   npm run bench -- [--only relay,inbound,idle,large,deep-queue,latency] [--quick]
 *
 * `--quick` is a smoke run with small counts (a couple of minutes): its figures show that every
 * bench works, not what the servers can do.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { usage } from './lifecycle.ts';
import { type Figure, printFigures, SUMMARY_ENV, verdict, writeResults } from './report.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});

/** Each bench: its script and its arguments for a full and a quick run. */
const BENCHES: Record<string, { script: string; full: string[]; quick: string[] }> = {
  relay: {
    script: 'relay.ts',
    full: [],
    quick: ['--messages', '500,200', '--rounds', '1', '--warmup', '100'],
  },
  inbound: {
    script: 'inbound.ts',
    full: [],
    quick: ['--messages', '500', '--rounds', '1', '--warmup', '100'],
  },
  idle: {
    script: 'idle-connections.ts',
    full: [],
    quick: ['--connections', '1000', '--postfix-connections', '200'],
  },
  large: { script: 'large-message.ts', full: [], quick: ['--size', String(20 * 1024 * 1024)] },
  'deep-queue': {
    script: 'deep-queue.ts',
    full: [],
    quick: ['--deferred', '50000', '--messages', '500', '--rounds', '1', '--warmup', '100', '--loads', '10'],
  },
  latency: { script: 'latency.ts', full: [], quick: ['--seconds', '5', '--rounds', '1', '--burst', '1000'] },
};

const selected = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(BENCHES);
const unknown = selected.filter((s) => !(s in BENCHES));
if (unknown.length > 0)
  usage(`--only: unknown bench ${unknown.join(', ')} (known: ${Object.keys(BENCHES).join(', ')})`);

function run(script: string, args: string[], summary: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, [SUMMARY_ENV]: summary },
    });
    // Ctrl-C reaches the child too (same process group); it cleans up and exits 130.
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

const dir = await mkdtemp(join(tmpdir(), 'ferrymail-bench-all-'));
const summary = join(dir, 'figures.jsonl');
const failures: string[] = [];
const started = new Date();
try {
  for (const name of selected) {
    const bench = BENCHES[name]!;
    console.log(`\n=== ${name} (${bench.script}${values.quick ? ', quick' : ''}) ===`);
    const code = await run(bench.script, values.quick ? bench.quick : bench.full, summary);
    if (code === 130) process.exit(130);
    if (code !== 0) failures.push(`${name} (exit ${code})`);
  }
  let text = '';
  try {
    text = await readFile(summary, 'utf8');
  } catch {
    // no bench reported anything
  }
  const reports = text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { bench: string; figures: Figure[] });
  const figures = reports.flatMap((r) => r.figures);
  const title = `npm run bench${values.quick ? ' --quick (smoke run: small counts, figures not meaningful)' : ''}, ${started.toISOString()}`;
  printFigures(title, figures);
  const verdicts = figures.map(verdict).filter(Boolean);
  console.log(
    `\n${verdicts.filter((v) => v === 'PASS').length} PASS, ${verdicts.filter((v) => v === 'FAIL').length} FAIL${failures.length ? `; benches that failed to run: ${failures.join(', ')}` : ''}`,
  );
  await writeResults(values.quick ? 'all-quick' : 'all', {
    title,
    benches: selected,
    quick: values.quick,
    failedToRun: failures,
    figures: figures.map((f) => ({ ...f, verdict: verdict(f) })),
    reports,
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
if (failures.length > 0) process.exitCode = 1;
