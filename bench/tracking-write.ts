/**
 * Main-thread cost of tracking 3,000 events/s, recorded one by one as the bus does:
 *   npx node bench/tracking-write.ts none|inprocess|worker [seconds]
 * none: the same loop recording nothing; inprocess: SQLite inserts on the main thread in 50 ms
 * batches; worker: SqliteTrackingLog (writer thread). Prints the event-loop utilization and delay.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { TrackingEvent } from '../src/observe/events.ts';
import { SqliteTrackingLog } from '../src/tracking/sqlite-tracking-log.ts';
import { openTrackingDb } from '../src/tracking/tracking-db.ts';

const mode = process.argv[2] ?? 'worker';
const seconds = Number(process.argv[3] ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'trk-bench-'));
let record: (e: TrackingEvent) => void = () => {};
let finish = async () => {};
if (mode === 'worker') {
  const log = await SqliteTrackingLog.open({ path: join(dir, 'tracking', 'tracking.db') });
  record = (e) => log.record(e);
  finish = async () => {
    await log.flush();
    await log.close();
  };
} else if (mode === 'inprocess') {
  const db = openTrackingDb(join(dir, 'tracking.db'));
  let buf: TrackingEvent[] = [];
  const t = setInterval(() => {
    if (buf.length) {
      db.insert(buf);
      buf = [];
    }
  }, 50);
  record = (e) => {
    buf.push(e);
  };
  finish = async () => {
    clearInterval(t);
    if (buf.length) db.insert(buf);
    db.close();
  };
}
let n = 0;
const ev = (): TrackingEvent => {
  n++;
  return {
    time: Date.now(),
    eventId: n % 3 ? 'DELIVER' : 'RECEIVE',
    source: 'SMTP',
    internalId: `q${n}`,
    messageId: `<${n}.abc@example.test>`,
    clientIp: '127.0.0.1',
    clientHostname: 'client.example.test',
    serverIp: '127.0.0.1',
    serverHostname: 'mx.example.test',
    connector: 'Default',
    sender: `sender${n % 100}@example.net`,
    recipients: [`user${n % 500}@example.test`],
    recipientStatus: ['250 2.0.0 OK'],
    size: 4000,
    subject: `Test message number ${n}`,
    directionality: 'Incoming',
  };
};
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const elu0 = performance.eventLoopUtilization();
const start = performance.now();
await new Promise<void>((resolve) => {
  const t = setInterval(() => {
    const due = Math.floor((performance.now() - start) * 3);
    while (n < due) record(ev());
    if (performance.now() - start > seconds * 1000) {
      clearInterval(t);
      resolve();
    }
  }, 1);
});
const wall = performance.now() - start;
const elu = performance.eventLoopUtilization(elu0);
h.disable();
await finish();
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify({
    mode,
    events: n,
    perSecond: Math.round((n / wall) * 1000),
    mainThreadBusy: `${(elu.utilization * 100).toFixed(1)}%`,
    loopDelayP99Ms: +(h.percentile(99) / 1e6).toFixed(1),
    loopDelayMaxMs: +(h.max / 1e6).toFixed(1),
  }),
);
