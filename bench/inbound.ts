/**
 * Inbound benchmark: smtp-source → server → local Maildir, Ferrymail and Postfix side by side
 * in the same run, alternating rounds so drift on a noisy machine hits both alike.
 *
 *   npm run bench:inbound -- [--messages 5000] [--rounds 3] [--sessions 20] [--size 4096]
 *
 * Both servers keep their durability: Ferrymail fsyncs its queue and Maildir files; Postfix
 * runs with its defaults (its queue files and Maildir deliveries are fsynced too).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensurePostfix, startPostfixInstance } from './postfix.ts';
import { median, printTable, writeResults } from './report.ts';
import { waitForListener } from './wait.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '4096' },
  },
});
const MESSAGES = Number(values.messages);
const ROUNDS = Number(values.rounds);
const SESSIONS = Number(values.sessions);
const SIZE = Number(values.size);
const ROUND_TIMEOUT_MS = 180_000;
const repoRoot = fileURLToPath(new URL('../', import.meta.url));

interface Round {
  server: 'ferrymail' | 'postfix';
  acceptedPerSecond: number;
  deliveredPerSecond: number;
}

async function countFiles(dir: string): Promise<number> {
  try {
    return (await readdir(dir)).length;
  } catch {
    return 0;
  }
}

/** Removes the delivered messages (not the folders, as an administrator would not). */
async function emptyDir(maildir: string): Promise<void> {
  for (const sub of ['new', 'cur']) {
    const dir = join(maildir, sub);
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    await Promise.all(names.map((n) => rm(join(dir, n), { force: true })));
  }
}

/** One round: smtp-source sends, then we wait until every message sits in the Maildir. */
async function runRound(
  server: Round['server'],
  port: number,
  maildirNew: string,
  maildirRoot: string,
): Promise<Round> {
  await emptyDir(maildirRoot);
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      'smtp-source',
      [
        '-s',
        String(SESSIONS),
        '-l',
        String(SIZE),
        '-m',
        String(MESSAGES),
        '-f',
        'sender@client.test',
        '-t',
        'user@bench.test',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), ROUND_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      code === 0 ? resolve() : reject(new Error(`smtp-source exited with ${code}`));
    });
  });
  const accepted = Number(process.hrtime.bigint() - started) / 1e9;
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  while ((await countFiles(maildirNew)) < MESSAGES) {
    if (Date.now() > deadline)
      throw new Error(`${server}: only ${await countFiles(maildirNew)} of ${MESSAGES} delivered`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const delivered = Number(process.hrtime.bigint() - started) / 1e9;
  return { server, acceptedPerSecond: MESSAGES / accepted, deliveredPerSecond: MESSAGES / delivered };
}

async function startFerrymail(
  root: string,
  port: number,
): Promise<{ child: ChildProcess; maildirRoot: string }> {
  const dataDir = join(root, 'ferrymail-data');
  const config = `node:
  name: bench
  fqdn: bench.ferrymail.test
  dataDir: ${dataDir}
  logLevel: warn
acceptedDomains:
  - name: bench.test
mailboxes:
  - address: user@bench.test
receiveConnectors:
  - name: Bench
    bindings: ["127.0.0.1:${port}"]
    permissionGroups:
      anonymous: [submit]
    limits:
      maxConnectionsPerSource: 1000
`;
  const file = join(root, 'ferrymail.yaml');
  await writeFile(file, config);
  const child = spawn(process.execPath, ['src/cli/main.ts', 'start', '--config', file], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForListener(port);
  return { child, maildirRoot: join(dataDir, 'mailboxes', 'bench.test', 'user', 'Maildir') };
}

async function main(): Promise<void> {
  ensurePostfix();
  const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-'));
  const ferryPort = 30_000 + Math.floor(Math.random() * 10_000);
  const postfixPort = ferryPort + 1;
  await mkdir(root, { recursive: true });
  const postfix = await startPostfixInstance(join(root, 'postfix'), postfixPort);
  const ferry = await startFerrymail(root, ferryPort);
  const rounds: Round[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      for (const server of ['ferrymail', 'postfix'] as const) {
        const round =
          server === 'ferrymail'
            ? await runRound(server, ferryPort, join(ferry.maildirRoot, 'new'), ferry.maildirRoot)
            : await runRound(server, postfixPort, join(postfix.maildir, 'new'), postfix.maildir);
        rounds.push(round);
        console.error(
          `round ${i + 1} ${server}: accepted ${round.acceptedPerSecond.toFixed(0)}/s, delivered ${round.deliveredPerSecond.toFixed(0)}/s`,
        );
      }
    }
  } finally {
    ferry.child.kill('SIGTERM');
    postfix.stop();
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
  }
  const pick = (server: Round['server'], key: 'acceptedPerSecond' | 'deliveredPerSecond') =>
    median(rounds.filter((r) => r.server === server).map((r) => r[key]));
  const rows = (['acceptedPerSecond', 'deliveredPerSecond'] as const).map((key) => ({
    metric: key === 'acceptedPerSecond' ? 'accepted msg/s' : 'delivered msg/s',
    ferrymail: pick('ferrymail', key),
    postfix: pick('postfix', key),
  }));
  const title = `inbound: ${MESSAGES} × ${SIZE} B over ${SESSIONS} sessions, ${ROUNDS} alternating rounds (median)`;
  printTable(title, rows);
  await writeResults('inbound', {
    title,
    postfixVersion: execFileSync('postconf', ['-h', 'mail_version']).toString().trim(),
    parameters: { messages: MESSAGES, rounds: ROUNDS, sessions: SESSIONS, size: SIZE },
    rounds,
    summary: rows,
  });
}

await main();
