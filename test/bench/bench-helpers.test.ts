import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { processMemory, processTree, resetPeak, treeMemory } from '../../bench/memory.ts';
import { type Figure, verdict } from '../../bench/report.ts';
import { freePorts } from '../../bench/wait.ts';

describe('bench goals (npm run bench PASS/FAIL)', () => {
  const figure = (f: Partial<Figure>): Figure => ({ name: 'x', unit: 'MB', ferrymail: 0, ...f });

  it('an at-most goal passes at or under its value and fails above it', () => {
    assert.equal(verdict(figure({ ferrymail: 300, goal: { kind: 'at-most', value: 300 } })), 'PASS');
    assert.equal(verdict(figure({ ferrymail: 300.5, goal: { kind: 'at-most', value: 300 } })), 'FAIL');
  });

  it('a ratio goal compares Ferrymail with the reference', () => {
    const goal = { kind: 'ratio-at-least', value: 2 } as const;
    assert.equal(verdict(figure({ ferrymail: 200, reference: 100, goal })), 'PASS');
    assert.equal(verdict(figure({ ferrymail: 199, reference: 100, goal })), 'FAIL');
  });

  it('a ratio goal without a reference gives no verdict rather than a false one', () => {
    assert.equal(verdict(figure({ ferrymail: 200, goal: { kind: 'ratio-at-least', value: 2 } })), '');
    assert.equal(
      verdict(figure({ ferrymail: 200, reference: 0, goal: { kind: 'ratio-at-least', value: 2 } })),
      '',
    );
    assert.equal(verdict(figure({ ferrymail: 200 })), '');
  });
});

describe('bench memory readings (/proc)', () => {
  it('reads this process: RSS above zero, peak at least RSS', () => {
    const m = processMemory(process.pid);
    assert.ok(m.rssKb > 10_000, `RSS ${m.rssKb} kB`);
    assert.ok(m.hwmKb >= m.rssKb);
  });

  it('reads a process that has gone as zero, not as an error', () => {
    assert.deepEqual(processMemory(2 ** 22 + 12345), { rssKb: 0, hwmKb: 0 });
  });

  it('resets the peak to the current RSS after a spike', async () => {
    // A child that touches 128 MB, frees it and then waits: its VmHWM stays high until reset.
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '-e',
        "let b = Buffer.alloc(128 * 1024 * 1024, 1); b = null; globalThis.gc(); console.log('ready'); setTimeout(() => {}, 10000);",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise((r) => child.stdout!.once('data', r));
      const before = processMemory(child.pid!);
      assert.ok(
        before.hwmKb - before.rssKb > 64 * 1024,
        `spike visible: VmHWM ${before.hwmKb} kB, VmRSS ${before.rssKb} kB`,
      );
      assert.ok(resetPeak(child.pid!), 'clear_refs must be writable');
      const after = processMemory(child.pid!);
      assert.ok(
        after.hwmKb - after.rssKb < 8 * 1024,
        `after the reset VmHWM ${after.hwmKb} kB is near VmRSS ${after.rssKb} kB`,
      );
    } finally {
      child.kill();
    }
  });

  it('finds a child in the process tree and sums its memory', async () => {
    const child = spawn('sleep', ['5']);
    try {
      await new Promise((r) => child.once('spawn', r));
      assert.ok(processTree(process.pid).includes(child.pid!));
      const tree = treeMemory(process.pid);
      assert.ok(tree.processes >= 2);
      assert.ok(tree.rssKb > processMemory(process.pid).rssKb);
    } finally {
      child.kill();
    }
  });
});

describe('bench ports', () => {
  it('hands out distinct ports that can be listened on', async () => {
    const ports = await freePorts(3);
    assert.equal(new Set(ports).size, 3);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', resolve);
    });
    await new Promise((r) => server.close(r));
  });
});
