import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitForListener } from '../../bench/wait.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A Ferrymail node in a child process, so a test can SIGKILL it the way a crash or the OOM
 * killer would. `script` is the entry point: the real command line by default, or a test script
 * taking the same arguments (test/faults/crashing-node.ts).
 */
export class NodeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
  }

  /** Spawns the node and resolves once it listens on `port` (rejects if it exits first). */
  static async start(
    configFile: string,
    port: number,
    options: {
      script?: string;
      env?: Record<string, string>;
      /** How long the node may take to listen (a loaded machine, a big queue to recover). */
      timeoutMs?: number;
      /** Append the node's output (its log on stdout, errors on stderr) to this file. */
      logFile?: string;
    } = {},
  ): Promise<NodeProcess> {
    const script = options.script ?? 'src/cli/main.ts';
    const log = options.logFile ? openSync(options.logFile, 'a') : 'inherit';
    const child = spawn(process.execPath, [script, 'start', '--config', configFile], {
      cwd: repoRoot,
      // The log is JSON on stdout (src/core/logger.ts).
      stdio: ['ignore', log === 'inherit' ? 'ignore' : log, log],
      env: { ...process.env, ...options.env },
    });
    if (typeof log === 'number') closeSync(log);
    const node = new NodeProcess(child);
    const early = node.exited.then(({ code, signal }) => {
      throw new Error(`the node exited before listening (${signal ?? `code ${code}`})`);
    });
    early.catch(() => undefined);
    try {
      await Promise.race([waitForListener(port, options.timeoutMs ?? 60_000), early]);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    return node;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (a clean stop), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}
