import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Row {
  metric: string;
  ferrymail: number;
  postfix: number;
}

/** Prints figures side by side with the Ferrymail/Postfix ratio. */
export function printTable(title: string, rows: Row[]): void {
  console.log(`\n${title}\n`);
  console.log(
    `${'metric'.padEnd(20)}${'Ferrymail'.padStart(12)}${'Postfix'.padStart(12)}${'ratio'.padStart(8)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.metric.padEnd(20)}${r.ferrymail.toFixed(0).padStart(12)}${r.postfix.toFixed(0).padStart(12)}${(r.ferrymail / r.postfix).toFixed(2).padStart(7)}×`,
    );
  }
}

/**
 * A goal from the issue: Ferrymail's figure divided by the reference (Postfix's figure, or the
 * same node's baseline) at least `value`; or Ferrymail's figure itself at most `value` (its unit).
 */
export type Goal = { kind: 'ratio-at-least'; value: number } | { kind: 'at-most'; value: number };

/** One line of `npm run bench`'s table. */
export interface Figure {
  name: string;
  unit: string;
  ferrymail: number;
  /** Postfix's figure for the same job, or the baseline named by referenceLabel. */
  reference?: number;
  /** What the reference is ('Postfix' when absent). */
  referenceLabel?: string;
  goal?: Goal;
  note?: string;
}

export function verdict(f: Figure): 'PASS' | 'FAIL' | '' {
  if (!f.goal) return '';
  if (f.goal.kind === 'at-most') return f.ferrymail <= f.goal.value ? 'PASS' : 'FAIL';
  if (f.reference === undefined || !(f.reference > 0)) return '';
  return f.ferrymail / f.reference >= f.goal.value ? 'PASS' : 'FAIL';
}

function goalText(f: Figure): string {
  if (!f.goal) return '';
  return f.goal.kind === 'at-most'
    ? `≤ ${f.goal.value} ${f.unit}`
    : `≥ ${f.goal.value}× ${f.referenceLabel ? 'compared*' : 'Postfix'}`;
}

const num = (v: number | undefined) =>
  v === undefined || Number.isNaN(v)
    ? '–'
    : Math.abs(v) >= 100
      ? v.toFixed(0)
      : Math.abs(v) >= 10
        ? v.toFixed(1)
        : v.toFixed(2);

/** Prints figures with their reference, the ratio, the goal and PASS/FAIL. */
export function printFigures(title: string, figures: Figure[]): void {
  console.log(`\n${title}\n`);
  const w = Math.max(24, ...figures.map((f) => f.name.length + f.unit.length + 4));
  console.log(
    `${'figure'.padEnd(w)}${'Ferrymail'.padStart(11)}${'compared'.padStart(11)}${'ratio'.padStart(8)}  ${'goal'.padEnd(22)}result`,
  );
  for (const f of figures) {
    // A ratio to a reference near zero (Postfix's memory growth) says nothing.
    const ratio =
      f.reference !== undefined && f.reference >= 1 ? `${(f.ferrymail / f.reference).toFixed(2)}×` : '';
    const ref = f.reference === undefined ? '' : `${num(f.reference)}${f.referenceLabel ? '*' : ''}`;
    console.log(
      `${`${f.name} (${f.unit})`.padEnd(w)}${num(f.ferrymail).padStart(11)}${ref.padStart(11)}${ratio.padStart(8)}  ${goalText(f).padEnd(22)}${verdict(f)}`,
    );
  }
  const labelled = figures.filter((f) => f.referenceLabel);
  if (labelled.length > 0) {
    console.log('\n"compared" is Postfix 3.7 doing the same job, except where marked *:');
    for (const f of labelled) console.log(`  * ${f.name}: ${f.referenceLabel}`);
  }
  for (const f of figures) if (f.note) console.log(`  ${f.name}: ${f.note}`);
}

/**
 * Where `npm run bench` (bench/all.ts) collects the figures of the scripts it runs: each script
 * appends its figures there as one JSON line when the variable is set.
 */
export const SUMMARY_ENV = 'FERRYMAIL_BENCH_SUMMARY';

/** Hands the figures to bench/all.ts when it runs this script (see SUMMARY_ENV). */
export async function reportFigures(bench: string, figures: Figure[]): Promise<void> {
  const file = process.env[SUMMARY_ENV];
  if (file) await appendFile(file, `${JSON.stringify({ bench, figures })}\n`);
}

/** Keeps every run under bench/results/ as JSON, with the machine it ran on. */
export async function writeResults(name: string, data: object): Promise<string> {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(
    file,
    `${JSON.stringify({ ...data, machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version } }, null, 2)}\n`,
  );
  console.log(`\nresults: ${file}`);
  return file;
}
