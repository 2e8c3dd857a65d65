import { spawn } from 'node:child_process';
import { MAIN, ROOT } from './run-cli.ts';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  /** stdout as bytes, for commands that print a message exactly (queue export). */
  readonly bytes: Buffer;
  readonly stderr: string;
}

/**
 * Runs the command line as a child process without blocking this one: the node the CLI talks
 * to runs in this process and must keep answering while the child waits.
 */
export function ferrymailAsync(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env };
    // The CLI is to find the node on its own, not through the environment of whoever runs the tests.
    if (!options.env?.FERRYMAIL_URL) delete env.FERRYMAIL_URL;
    if (!options.env?.FERRYMAIL_TOKEN) delete env.FERRYMAIL_TOKEN;
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(out);
      resolve({ code, stdout: bytes.toString('utf8'), bytes, stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Runs the CLI until `done` accepts its result (the tracking log and the scheduler are asynchronous). */
export async function ferrymailUntil(
  args: string[],
  done: (r: CliResult) => boolean,
  timeoutMs = 30_000,
): Promise<CliResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await ferrymailAsync(args);
    if (done(r) || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
