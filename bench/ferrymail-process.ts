import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitForListener } from './wait.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

/**
 * Runs a Ferrymail node as its own process (`node src/cli/main.ts start --config <file>`, with
 * the same Node binary) and resolves once it listens on `port`. `onSpawn` gets the child at once,
 * so the caller can stop it even if it never comes to listen; an exit before that rejects.
 */
export async function startFerrymailProcess(
  configFile: string,
  port: number,
  onSpawn: (child: ChildProcess) => void,
  nodeArgs: string[] = [],
): Promise<void> {
  const child = spawn(process.execPath, [...nodeArgs, 'src/cli/main.ts', 'start', '--config', configFile], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  onSpawn(child);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) =>
      reject(new Error(`ferrymail exited before listening (${signal ?? `code ${code}`})`)),
    ),
  );
  exited.catch(() => undefined);
  // Generous: on a busy 2-core machine loading the modules alone can take 20 s.
  await Promise.race([waitForListener(port, 90_000), exited]);
}

/** SIGTERM (a graceful stop), then SIGKILL if the process has not gone within 10 s. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}
