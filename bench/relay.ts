/**
 * Relay benchmark, end to end: smtp-source → server → smart host (Postfix's smtp-sink), Ferrymail
 * and Postfix side by side in the same run, alternating rounds so drift on a noisy machine hits
 * both alike. One sink serves both servers; its running message counter tells when a round's
 * last message has arrived.
 *
 *   npm run bench:relay -- [--sizes 4096,102400] [--messages 5000,2000] [--rounds 3] [--sessions 20]
 *                          [--warmup 1000] [--cpu-prof <dir>]
 *
 * Both servers keep their durability: Ferrymail commits every message to its queue (fsynced)
 * before the 250; Postfix runs with its defaults (the queue file is fsynced before the 250).
 * `--cpu-prof <dir>` runs the Ferrymail node with `--cpu-prof` and writes its profile there.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startFerrymailProcess, stopChild } from './ferrymail-process.ts';
import { ensurePostfix, type PostfixInstance, postfixVersion, startPostfixInstance } from './postfix.ts';
import { median, printTable, type Row, writeResults } from './report.ts';
import { waitForListener } from './wait.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '4096,102400' },
    messages: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    sessions: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '1000' },
    'cpu-prof': { type: 'string' },
  },
});

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}
function wholeNumbers(option: string, text: string, min: number): number[] {
  const list = text.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < min))
    fail(
      `--${option} must be ${min === 0 ? 'a whole number' : 'whole numbers above 0'}, separated by commas`,
    );
  return list;
}

const SIZES = wholeNumbers('sizes', values.sizes, 1);
/** Per size: one value for all, or one per size. By default 5,000 small messages, 2,000 large ones (a round under 60 s). */
const MESSAGES = (() => {
  if (values.messages === undefined) return SIZES.map((size) => (size <= 16_384 ? 5000 : 2000));
  const list = wholeNumbers('messages', values.messages, 1);
  if (list.length === 1) return SIZES.map(() => list[0]!);
  if (list.length !== SIZES.length) fail('--messages takes one value, or one per size');
  return list;
})();
const [ROUNDS] = wholeNumbers('rounds', values.rounds, 1) as [number];
const [SESSIONS] = wholeNumbers('sessions', values.sessions, 1) as [number];
/** Messages each server gets once per size, unmeasured, before the rounds (JIT, caches, process spawning). */
const [WARMUP] = wholeNumbers('warmup', values.warmup, 0) as [number];
const CPU_PROF = values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']);
/** A round that has not finished by then is a failure, not a slow figure: the run stops. */
const ROUND_TIMEOUT_MS = 120_000;
const SETTLE_MS = 2_000;

type Server = 'ferrymail' | 'postfix';

interface Round {
  server: Server;
  size: number;
  messages: number;
  /** Messages divided by the time until smtp-source had its last 250. */
  acceptedPerSecond: number;
  /** Messages divided by the time until the sink had counted the last one. */
  relayedPerSecond: number;
  /** Sessions with the sink that ended during the round (from the settle step before it to its end). */
  sinkSessions: number;
}

/**
 * Postfix's smtp-sink with `-c`: it writes `sess=… quit=… mesg=N` (CR-terminated, unbuffered)
 * each time a message's final dot arrives or a session ends. The sink blocks on a full pipe, so
 * its output is read all the time.
 */
class Sink {
  readonly child: ChildProcess;
  /** Messages received since the sink started. */
  count = 0;
  /** SMTP sessions that have ended since the sink started (connection reuse shows as fewer). */
  sessions = 0;
  #partial = '';
  readonly #waiters = new Set<{ target: number; done: () => void }>();
  #exited: Error | undefined;

  constructor(port: number) {
    const asRoot = process.getuid?.() === 0;
    // -u: as root, smtp-sink insists on dropping privileges after binding.
    const args = [...(asRoot ? ['-u', 'nobody'] : []), '-c', `127.0.0.1:${port}`, '1024'];
    this.child = spawn('smtp-sink', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout!.setEncoding('latin1');
    this.child.stdout!.on('data', (chunk: string) => this.#read(chunk));
    this.child.once('exit', (code, signal) => {
      this.#exited = new Error(`smtp-sink exited (${signal ?? `code ${code}`})`);
      for (const w of this.#waiters) w.done();
    });
  }

  #read(chunk: string): void {
    const text = this.#partial + chunk;
    const end = Math.max(text.lastIndexOf('\r'), text.lastIndexOf('\n'));
    if (end < 0) {
      this.#partial = text;
      return;
    }
    this.#partial = text.slice(end + 1);
    const sess = text.lastIndexOf('sess=', end);
    if (sess >= 0) this.sessions = Number.parseInt(text.slice(sess + 5, end + 1), 10) || this.sessions;
    const at = text.lastIndexOf('mesg=', end);
    if (at < 0) return;
    const count = Number.parseInt(text.slice(at + 5, end + 1), 10);
    if (Number.isNaN(count)) return;
    this.count = count;
    for (const w of this.#waiters) if (count >= w.target) w.done();
  }

  /** Resolves (with the high-resolution time) once the count reaches target. */
  until(target: number, timeoutMs: number, what: string): Promise<bigint> {
    return new Promise<bigint>((resolve, reject) => {
      const waiter = {
        target,
        done: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          if (this.count >= target) resolve(process.hrtime.bigint());
          else reject(this.#exited ?? new Error(`${what}: the sink counted only ${this.count} of ${target}`));
        },
      };
      const timer = setTimeout(waiter.done, timeoutMs);
      this.#waiters.add(waiter);
      if (this.count >= target || this.#exited) waiter.done();
    });
  }
}

function runSource(server: Server, port: number, size: number, messages: number): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const child = spawn(
      'smtp-source',
      [
        '-s',
        String(SESSIONS),
        '-l',
        String(size),
        '-m',
        String(messages),
        '-f',
        'sender@client.test',
        '-t',
        'rcpt@remote.test',
        `127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), ROUND_TIMEOUT_MS);
    child.on('exit', (code) => {
      const at = process.hrtime.bigint();
      clearTimeout(timer);
      if (code === 0) resolve(at);
      else if (code === null)
        reject(new Error(`${server}: smtp-source stopped after ${ROUND_TIMEOUT_MS / 1000} s`));
      else reject(new Error(`${server}: smtp-source exited with ${code}`));
    });
  });
}

interface Ferrymail {
  child: ChildProcess;
}

async function startFerrymail(
  root: string,
  port: number,
  sinkPort: number,
  started: (f: Ferrymail) => void,
): Promise<void> {
  // config/examples/relay-smarthost.yaml, with the bench's ports and state in the temp folder,
  // and email authentication off.
  const config = `node:
  name: bench-relay
  fqdn: relay.bench.ferrymail.test
  dataDir: ${join(root, 'ferrymail-data')}
  logLevel: warn
acceptedDomains:
  - name: relay.bench.test
    type: externalRelay
    default: true
receiveConnectors:
  - name: Relay
    bindings: ["127.0.0.1:${port}"]
    remoteRanges: ["127.0.0.0/8"]
    permissionGroups:
      anonymous: [submit, relay]
    tls:
      mode: starttls
    limits:
      maxConnectionsPerSource: 1000
sendConnectors:
  - name: SmartHost
    addressSpaces: ["*"]
    routing:
      type: smartHost
      hosts: ["127.0.0.1:${sinkPort}"]
    tls:
      mode: opportunistic
# Postfix here checks no SPF, DKIM or DMARC either; and with it on, every message waits for DNS
# (lookups for client.test), which this bench is not about.
emailAuthentication:
  enabled: false
`;
  const file = join(root, 'ferrymail.yaml');
  await writeFile(file, config);
  const profile = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : [];
  // Handed over at once, so the caller stops it even if it never listens.
  await startFerrymailProcess(file, port, (child) => started({ child }), profile);
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

const kb = (size: number) => (size % 1024 === 0 ? `${size / 1024} KB` : `${size} B`);

async function main(): Promise<void> {
  ensurePostfix();
  const root = await mkdtemp(join(tmpdir(), 'ferrymail-bench-relay-'));
  const sinkPort = 30_000 + Math.floor(Math.random() * 10_000);
  const ferryPort = sinkPort + 1;
  const postfixPort = sinkPort + 2;
  let sink: Sink | undefined;
  let postfix: PostfixInstance | undefined;
  let ferry: Ferrymail | undefined;
  // Once, whether the run ends, fails or is interrupted (the interrupted round fails meanwhile).
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      if (ferry) await stopChild(ferry.child);
      postfix?.stop();
      if (sink) await stopChild(sink.child);
      await rm(root, { recursive: true, force: true }).catch(() => undefined);
    })());
  // Ctrl-C stops everything too; the round it interrupts is not reported as a failure.
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rounds: Round[] = [];
  /** Messages the sink received beyond those sent (there should be none: no bounces, no duplicates). */
  let extra = 0;
  try {
    sink = new Sink(sinkPort);
    await waitForListener(sinkPort);
    const theSink = sink;
    postfix = await startPostfixInstance(join(root, 'postfix'), postfixPort, {
      relayTo: { host: '127.0.0.1', port: sinkPort },
    });
    const postfixLog = postfix.log;
    await startFerrymail(root, ferryPort, sinkPort, (started) => {
      ferry = started;
    });
    const ports = { ferrymail: ferryPort, postfix: postfixPort };
    /** What the sink should have counted so far. */
    let sent = 0;

    const runRound = async (server: Server, size: number, messages: number): Promise<Round> => {
      // Let the previous round's deferred disk work (deletes, writeback, queue clean-up) finish, so
      // it is not charged to the server measured next.
      execFileSync('sync');
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      if (theSink.count !== sent) {
        console.error(`warning: the sink counted ${theSink.count - sent} message(s) more than were sent`);
        extra += theSink.count - sent;
        sent = theSink.count;
      }
      const target = sent + messages;
      sent = target;
      const sessionsBefore = theSink.sessions;
      const started = process.hrtime.bigint();
      const relayed = theSink.until(target, ROUND_TIMEOUT_MS, `${server}, ${kb(size)}`);
      relayed.catch(() => undefined);
      try {
        const accepted = await runSource(server, ports[server], size, messages);
        const done = await relayed;
        const seconds = (t: bigint) => Number(t - started) / 1e9;
        return {
          server,
          size,
          messages,
          acceptedPerSecond: messages / seconds(accepted),
          relayedPerSecond: messages / seconds(done),
          sinkSessions: theSink.sessions - sessionsBefore,
        };
      } catch (error) {
        if (server === 'postfix') console.error(`postfix maillog, last lines:\n${tail(postfixLog, 20)}`);
        throw error;
      }
    };

    for (const [i, size] of SIZES.entries()) {
      const messages = MESSAGES[i]!;
      if (WARMUP > 0) {
        for (const server of ['ferrymail', 'postfix'] as const) {
          const round = await runRound(server, size, WARMUP);
          console.error(
            `warm-up ${kb(size)} ${server}: relayed ${round.relayedPerSecond.toFixed(0)}/s (not counted)`,
          );
        }
      }
      for (let r = 0; r < ROUNDS; r++) {
        for (const server of ['ferrymail', 'postfix'] as const) {
          const round = await runRound(server, size, messages);
          rounds.push(round);
          console.error(
            `round ${r + 1} ${kb(size)} ${server}: accepted ${round.acceptedPerSecond.toFixed(0)}/s, relayed ${round.relayedPerSecond.toFixed(0)}/s, ${round.sinkSessions} sessions at the sink`,
          );
        }
      }
    }
    // Anything arriving late (a duplicate, a bounce) is reported too.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    if (theSink.count !== sent) {
      console.error(`warning: the sink counted ${theSink.count - sent} message(s) more than were sent`);
      extra += theSink.count - sent;
    }
  } catch (error) {
    if (interrupted) await new Promise(() => undefined); // process.exit(130) follows the clean-up
    throw error;
  } finally {
    if (!interrupted) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    await cleanUp();
  }
  const rows: Row[] = [];
  for (const size of SIZES) {
    const pick = (server: Server, key: 'acceptedPerSecond' | 'relayedPerSecond') =>
      median(rounds.filter((r) => r.server === server && r.size === size).map((r) => r[key]));
    for (const key of ['relayedPerSecond', 'acceptedPerSecond'] as const) {
      rows.push({
        metric: `${kb(size)} ${key === 'relayedPerSecond' ? 'relayed' : 'accepted'}/s`,
        ferrymail: pick('ferrymail', key),
        postfix: pick('postfix', key),
      });
    }
  }
  const title = `relay end to end: ${SIZES.map((s, i) => `${MESSAGES[i]} × ${kb(s)}`).join(', ')} over ${SESSIONS} sessions, ${ROUNDS} alternating rounds (median)`;
  printTable(title, rows);
  if (extra > 0) console.log(`\nthe sink counted ${extra} message(s) more than were sent`);
  await writeResults('relay', {
    title,
    postfixVersion: postfixVersion(),
    parameters: { sizes: SIZES, messages: MESSAGES, rounds: ROUNDS, sessions: SESSIONS, warmup: WARMUP },
    rounds,
    summary: rows,
    extraMessagesAtSink: extra,
  });
}

await main();
