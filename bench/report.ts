import { mkdir, writeFile } from 'node:fs/promises';
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
