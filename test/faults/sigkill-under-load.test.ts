import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, makeTempDir, removeDir, writeConfigFile } from '../helpers/node-fixture.ts';
import type { SmtpTestClient } from '../helpers/smtp-client.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import { connectWhenReady, eventually, FULL, openQueue, relayConfig, transaction } from './fault-helpers.ts';
import { NodeProcess } from './node-process.ts';

const ROUNDS = FULL ? 10 : 2;
const MESSAGES = FULL ? 20_000 : 1_000;
const SESSIONS = 8;
const DRAIN_TIMEOUT_MS = FULL ? 600_000 : 60_000;

/** Every message carries its own id, so the sink can tell what arrived and how often. */
const ID_HEADER = /^X-Fault-Id: (\S+)\r?$/m;

/**
 * The load: SESSIONS clients submit messages with unique ids, one after the other, for as long as
 * ids are left. A transaction cut off by the kill leaves its id "in doubt" (the node may or may
 * not have committed it; it owes nothing either way); a session that lost its node waits for the
 * next one to listen.
 */
class Load {
  readonly acknowledged = new Set<string>();
  readonly inDoubt = new Set<string>();
  /** Anything but 250 at the end of data (a node that is going down may say 4xx). */
  refused = 0;
  #next = 0;
  #stopped = false;

  readonly port: number;
  readonly total: number;

  constructor(port: number, total: number) {
    this.port = port;
    this.total = total;
  }

  run(): Promise<void> {
    return Promise.all(Array.from({ length: SESSIONS }, () => this.#session())).then(() => undefined);
  }

  /** Ends the sessions (a failed test must not leave them reconnecting forever). */
  stop(): void {
    this.#stopped = true;
  }

  async #session(): Promise<void> {
    while (this.#next < this.total && !this.#stopped) {
      let c: SmtpTestClient | undefined;
      let inFlight: string | undefined;
      try {
        c = await connectWhenReady(this.port, 60_000);
        if ((await c.command('EHLO load.fault.test')).code !== 250) continue;
        while (this.#next < this.total && !this.#stopped) {
          const id = `m${this.#next++}`;
          inFlight = id;
          const r = await transaction(c, {
            from: 'load@sender.test',
            to: ['sink@far.test'],
            headers: [`X-Fault-Id: ${id}`, `Subject: ${id}`],
          });
          inFlight = undefined;
          if (r.end?.code === 250) this.acknowledged.add(id);
          else this.refused++;
        }
        c.write('QUIT\r\n');
      } catch {
        if (inFlight) this.inDoubt.add(inFlight);
      } finally {
        c?.close();
      }
    }
  }
}

/**
 * RFC 5321 §6.1 under load: the node is SIGKILLed at random moments while sessions submit and
 * the queue relays to a smart host, then started again on the same data folder. Every message
 * that got a 250 must reach the smart host at least once; duplicates (a delivery whose outcome
 * the kill prevented from being recorded) and deliveries of messages whose 250 never arrived
 * are allowed, counted and reported.
 */
describe(`SIGKILL under relay load (${ROUNDS} kills, ${MESSAGES} messages)`, () => {
  // Child processes on a busy machine: each start can take many seconds (docs/reliability.md).
  it('delivers every acknowledged message at least once and drains the queue', {
    timeout: FULL ? 1_800_000 : 600_000,
  }, async () => {
    const dir = await makeTempDir('ferrymail-faults-');
    const sink = await SmtpSink.start({ hostname: 'smarthost.fault.test' });
    const port = await freePort();
    const configFile = await writeConfigFile(dir, relayConfig(dir, { port, smartHostPort: sink.port }));
    const started = Date.now();
    const restarts: number[] = [];
    const logFile = process.env.FERRYMAIL_FAULTS_LOG;
    const start = () =>
      NodeProcess.start(configFile, port, { timeoutMs: 120_000, ...(logFile ? { logFile } : {}) });
    let node = await start();
    const load = new Load(port, MESSAGES);
    try {
      const loading = load.run();
      // Kill k falls at a random point of the k-th slice of the load, so the last slice runs
      // on a node that stays up.
      const slice = MESSAGES / (ROUNDS + 1);
      for (let round = 0; round < ROUNDS; round++) {
        const at = Math.floor(slice * (round + 0.2 + Math.random() * 0.7));
        await eventually(
          `${at} messages acknowledged before kill ${round + 1}`,
          () => (load.acknowledged.size >= at ? true : undefined),
          DRAIN_TIMEOUT_MS,
          2,
        );
        await node.kill();
        const down = Date.now();
        node = await start();
        restarts.push(Date.now() - down);
      }
      await loading;
      const loadDone = Date.now();

      const deliveries = new Map<string, number>();
      let scanned = 0;
      const missing = () => {
        for (; scanned < sink.transactions.length; scanned++) {
          const id = ID_HEADER.exec(sink.transactions[scanned]!.body.toString('latin1'))?.[1];
          if (id) deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
        }
        return [...load.acknowledged].filter((id) => !deliveries.has(id));
      };
      await sink.waitFor(() => missing().length === 0, DRAIN_TIMEOUT_MS).catch(() => undefined);
      const lost = missing();
      assert.deepEqual(
        lost.slice(0, 20),
        [],
        `${lost.length} of ${load.acknowledged.size} acknowledged messages never reached the smart host`,
      );
      const drained = Date.now();

      // Nothing is left waiting once the last acknowledged message is out (give in-doubt ones
      // the node did commit time to go too).
      await node.stop();
      const store = await openQueue(join(dir, 'data', 'queue'));
      let left: number;
      let poisoned: number;
      try {
        const counts = await store.countRecipients();
        left = counts.pending + counts.active + counts.suspended;
        // Each kill counts a crash against the messages in flight; one in flight at two kills
        // would go to the Poison queue (Exchange does the same), and would show as lost above.
        poisoned = counts.poison;
        const failed = counts.failed;
        assert.equal(
          failed,
          0,
          `${failed} recipients failed; a smart host that accepts everything was given up on`,
        );
      } finally {
        await store.close();
      }
      if (left > 0) {
        // Only messages whose 250 never arrived may still be on their way.
        node = await start();
        await sleep(2_000);
      }

      const duplicates = [...deliveries.values()].filter((n) => n > 1).length;
      const extraCopies = [...deliveries.values()].reduce((sum, n) => sum + n - 1, 0);
      const unacknowledgedDelivered = [...deliveries.keys()].filter(
        (id) => !load.acknowledged.has(id),
      ).length;
      const figures = {
        kills: ROUNDS,
        messages: MESSAGES,
        acknowledged: load.acknowledged.size,
        inDoubt: load.inDoubt.size,
        refused: load.refused,
        delivered: deliveries.size,
        duplicates,
        extraCopies,
        unacknowledgedDelivered,
        leftQueuedAfterDrain: left,
        poisoned,
        restartMsMedian: restarts.sort((a, b) => a - b)[Math.floor(restarts.length / 2)] ?? 0,
        restartMsMax: restarts.at(-1) ?? 0,
        loadSeconds: (loadDone - started) / 1000,
        drainSecondsAfterLoad: (drained - loadDone) / 1000,
      };
      process.stdout.write(`# sigkill-under-load ${JSON.stringify(figures)}\n`);
      assert.ok(
        load.acknowledged.size > MESSAGES / 2,
        `only ${load.acknowledged.size} of ${MESSAGES} got a 250`,
      );
      assert.ok(
        unacknowledgedDelivered <= load.inDoubt.size,
        `${unacknowledgedDelivered} messages delivered without a 250, but only ${load.inDoubt.size} were cut off`,
      );
      assert.equal(
        deliveries.size,
        load.acknowledged.size + unacknowledgedDelivered,
        'the smart host got ids nobody sent',
      );
    } finally {
      load.stop();
      await node.stop();
      await sink.close();
      await removeDir(dir);
    }
  });
});
