import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/** Resident memory of one process, in KiB, from /proc/<pid>/status (0 once it has gone). */
export function processMemory(pid: number): { rssKb: number; hwmKb: number } {
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return { rssKb: 0, hwmKb: 0 };
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/** Proportional set size in KiB (shared pages divided among their sharers): what N processes really cost together. */
export function processPss(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1');
    return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Resets the process's VmHWM to its current RSS (Linux's clear_refs `5`), so a later VmHWM is the
 * peak of what happens from now on, not of start-up.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** The process and all its descendants (from the ppid field of /proc/<pid>/stat). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue;
    }
    // The command name is in parentheses and may hold spaces; ppid is the second field after it.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

export interface TreeMemory {
  processes: number;
  rssKb: number;
  pssKb: number;
}

/** Summed over a process tree: RSS (shared pages counted once per process) and PSS (counted once). */
export function treeMemory(root: number, withPss = true): TreeMemory {
  const pids = processTree(root);
  let rssKb = 0;
  let pssKb = 0;
  for (const pid of pids) {
    rssKb += processMemory(pid).rssKb;
    if (withPss) pssKb += processPss(pid);
  }
  return { processes: pids.length, rssKb, pssKb };
}

/** Samples a figure every `intervalMs` and keeps its maximum (and the number of samples). */
export class PeakSampler {
  max = 0;
  samples = 0;
  readonly #timer: NodeJS.Timeout;
  constructor(read: () => number, intervalMs = 50) {
    const sample = () => {
      const v = read();
      this.samples++;
      if (v > this.max) this.max = v;
    };
    sample();
    this.#timer = setInterval(sample, intervalMs);
  }
  stop(): number {
    clearInterval(this.#timer);
    return this.max;
  }
}

export const mb = (kb: number) => kb / 1024;
