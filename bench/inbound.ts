/**
 * Inbound benchmark: smtp-source → server → local Maildir, Ferrymail and Postfix side by side
 * in the same run, alternating rounds so drift on a noisy machine hits both alike.
 *
 *   npm run bench:inbound -- [--messages 5000] [--rounds 3] [--sessions 20] [--size 4096] [--warmup 1000]
 *                            [--cpu-prof <dir>]
 *
 * `--cpu-prof <dir>` runs the Ferrymail node with `--cpu-prof` and writes its profile there.
 *
 * Both servers keep their durability: Ferrymail fsyncs its queue and Maildir files; Postfix
 * runs with its defaults (its queue files and Maildir deliveries are fsynced too).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startFerrymailProcess, stopChild } from './ferrymail-process.ts';
import { ensurePostfix, postfixVersion, startPostfixInstance } from './postfix.ts';
import { median, printTable, reportFigures, writeResults } from './report.ts';
import { freePorts } from './wait.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '4096' },
    warmup: { type: 'string', default: '1000' },
    'cpu-prof': { type: 'string' },
  },
});
const MESSAGES = Number(values.messages);
const ROUNDS = Number(values.rounds);
const SESSIONS = Number(values.sessions);
const SIZE = Number(values.size);
/** Messages each server gets once, unmeasured, before the rounds: first-round costs (JIT, caches, folder creation) are not the steady state. */
const WARMUP = Number(values.warmup);
/** A round that has not finished by then is a failure, not a slow figure: the run stops. */
for (const [name, value] of Object.entries({ MESSAGES, ROUNDS, SESSIONS, SIZE, WARMUP })) {
  if (!Number.isInteger(value) || value < (name === 'WARMUP' ? 0 : 1)) {
    console.error(`--${name.toLowerCase()} must be a whole number${name === 'WARMUP' ? '' : ' above 0'}`);
    process.exit(2);
  }
}
const ROUND_TIMEOUT_MS = 120_000;
const SETTLE_MS = 2_000;

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
  messages = MESSAGES,
): Promise<Round> {
  await emptyDir(maildirRoot);
  // Let the previous round's deferred disk work (deletes, writeback, queue clean-up) finish, so it
  // is not charged to the server measured next.
  execFileSync('sync');
  await new Promise((r) => setTimeout(r, SETTLE_MS));
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
        String(messages),
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
      if (code === 0) resolve();
      else if (code === null)
        reject(new Error(`${server}: smtp-source stopped after ${ROUND_TIMEOUT_MS / 1000} s`));
      else reject(new Error(`${server}: smtp-source exited with ${code}`));
    });
  });
  const accepted = Number(process.hrtime.bigint() - started) / 1e9;
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  while ((await countFiles(maildirNew)) < messages) {
    if (Date.now() > deadline)
      throw new Error(`${server}: only ${await countFiles(maildirNew)} of ${messages} delivered`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const delivered = Number(process.hrtime.bigint() - started) / 1e9;
  return { server, acceptedPerSecond: messages / accepted, deliveredPerSecond: messages / delivered };
}

interface Ferrymail {
  child: ChildProcess;
  maildirRoot: string;
}

async function startFerrymail(root: string, port: number, started: (f: Ferrymail) => void): Promise<void> {
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
# The same job as the Postfix side, which checks no SPF, DKIM or DMARC.
emailAuthentication:
  enabled: false
`;
  const file = join(root, 'ferrymail.yaml');
  await writeFile(file, config);
  // Handed over at once, so the caller stops it even if it never listens.
  const profile =
    values['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(values['cpu-prof'])];
  await startFerrymailProcess(
    file,
    port,
    (child) => started({ child, maildirRoot: join(dataDir, 'mailboxes', 'bench.test', 'user', 'Maildir') }),
    profile,
  );
}

async function main(): Promise<void> {
  ensurePostfix();
  const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-'));
  const [ferryPort, postfixPort] = (await freePorts(2)) as [number, number];
  let postfix: Awaited<ReturnType<typeof startPostfixInstance>> | undefined;
  let ferry: Ferrymail | undefined;
  const cleanUp = async () => {
    if (ferry) await stopChild(ferry.child);
    postfix?.stop();
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
  };
  // Ctrl-C stops both servers too.
  const onSignal = () => void cleanUp().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rounds: Round[] = [];
  try {
    postfix = await startPostfixInstance(join(root, 'postfix'), postfixPort);
    await startFerrymail(root, ferryPort, (started) => {
      ferry = started;
    });
    const targets = {
      ferrymail: { port: ferryPort, maildir: ferry!.maildirRoot },
      postfix: { port: postfixPort, maildir: postfix.maildir },
    };
    if (WARMUP > 0) {
      for (const server of ['ferrymail', 'postfix'] as const) {
        const { port, maildir } = targets[server];
        const round = await runRound(server, port, join(maildir, 'new'), maildir, WARMUP);
        console.error(`warm-up ${server}: accepted ${round.acceptedPerSecond.toFixed(0)}/s (not counted)`);
      }
    }
    for (let i = 0; i < ROUNDS; i++) {
      for (const server of ['ferrymail', 'postfix'] as const) {
        const { port, maildir } = targets[server];
        const round = await runRound(server, port, join(maildir, 'new'), maildir);
        rounds.push(round);
        console.error(
          `round ${i + 1} ${server}: accepted ${round.acceptedPerSecond.toFixed(0)}/s, delivered ${round.deliveredPerSecond.toFixed(0)}/s`,
        );
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanUp();
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
    postfixVersion: postfixVersion(),
    parameters: { messages: MESSAGES, rounds: ROUNDS, sessions: SESSIONS, size: SIZE, warmup: WARMUP },
    rounds,
    summary: rows,
  });
  await reportFigures(
    'inbound',
    rows.map((r) => ({
      name: `inbound 4 KB ${r.metric.replace(' msg/s', '')}`.replace(
        '4 KB',
        SIZE === 4096 ? '4 KB' : `${SIZE} B`,
      ),
      unit: 'msg/s',
      ferrymail: r.ferrymail,
      reference: r.postfix,
      // The goal is inbound to Maildir, so delivered; accepted is shown for context.
      ...(r.metric.startsWith('delivered') ? { goal: { kind: 'ratio-at-least' as const, value: 2 } } : {}),
    })),
  );
}

await main();
