import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { createEventBus, type TrackingEvent } from '../../src/observe/events.ts';
import { BackPressureMonitor } from '../../src/receive/back-pressure.ts';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  TEST_PASSWORD,
} from '../helpers/node-fixture.ts';
import { eventually, sendOne } from './fault-helpers.ts';

const HIGH = 20;
const LOW = 5;

/**
 * Exchange's back pressure on the submission queue: past the high watermark of recipients due
 * for delivery and not delivered yet, anonymous senders are told `452 4.3.1` at MAIL (they keep
 * the mail and retry), while authenticated submission goes on; once the backlog is below the low
 * watermark the node accepts again by itself. The backlog is real: mailbox delivery is held (one
 * slot, and the delivery in it waits for the test), so due recipients pile up until it is let go.
 */
describe('back pressure on the queue', () => {
  it('refuses anonymous MAIL past the high watermark, keeps submission open, recovers below the low one', async () => {
    const dir = await makeTempDir();
    const config = await demoLikeConfig(dir);
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const n = await startTestNode({
      dir,
      config: {
        ...config,
        queue: {
          maxConcurrentMailboxDeliveries: 1,
          backPressure: { highWatermark: HIGH, lowWatermark: LOW, checkInterval: '50ms' },
        },
      },
      beforeDelivery: () => held,
    });
    const throttled: TrackingEvent[] = [];
    n.node.events.subscribe((e) => {
      if (e.kind === 'track' && e.event.eventId === 'THROTTLE') throttled.push(e.event);
    });
    const anonymous = (tag: string) =>
      sendOne(n.port('Default'), {
        from: 'someone@remote.test',
        to: ['bob@example.test'],
        headers: [`Subject: ${tag}`],
      });
    try {
      for (let i = 0; i < HIGH; i++) {
        const r = await anonymous(`fill-${i}`);
        assert.equal(r.end?.code, 250, `filler ${i} was not accepted below the watermark: ${r.end?.text}`);
      }

      const refused = await eventually('anonymous MAIL refused under back pressure', async () => {
        const r = await anonymous('under-pressure');
        return r.mail.code === 452 ? r : undefined;
      });
      assert.equal(refused.mail.text, '4.3.1 Insufficient system resources');
      assert.equal(refused.end, undefined, 'a refused MAIL still led to a stored message');

      const submitted = await sendOne(
        n.port('Client'),
        { from: 'alice@example.test', to: ['bob@example.test'], headers: ['Subject: authenticated'] },
        { user: 'alice@example.test', password: TEST_PASSWORD },
      );
      assert.equal(submitted.mail.code, 250, `authenticated MAIL refused: ${submitted.mail.text}`);
      assert.equal(submitted.end?.code, 250, `authenticated submission refused: ${submitted.end?.text}`);

      assert.ok(throttled.length > 0, 'no THROTTLE tracking event for the refusal');
      assert.equal(throttled[0]!.source, 'AGENT');
      assert.equal(throttled[0]!.connector, 'Default');
      assert.equal(throttled[0]!.sender, 'someone@remote.test');
      assert.match(throttled[0]!.detail ?? '', /back pressure: (more than )?\d+ recipients due/);

      // Delivery goes on: the backlog drains by itself, and anonymous mail is accepted again.
      release();
      const drainedAt = Date.now();
      const accepted = await eventually('anonymous mail accepted again after the queue drained', async () => {
        const r = await anonymous('after-drain');
        return r.end?.code === 250 ? r : undefined;
      });
      const recovered = Date.now() - drainedAt;
      const backlog = await n.node.store.countDueBacklog(Date.now(), 1000);
      assert.ok(backlog < LOW + 1, `accepting again with ${backlog} recipients still due`);
      assert.match(accepted.end!.text, /^2\.0\.0 /);
      process.stdout.write(`# back pressure: recovered ${recovered} ms after delivery resumed\n`);
    } finally {
      release();
      await n.stop();
      await removeDir(dir);
    }
  });

  it('does not count recipients waiting for a retry: a destination that is down does not stop inbound mail', async () => {
    const dir = await makeTempDir();
    const config = await demoLikeConfig(dir);
    // bob's Maildir is a plain file: every delivery to him fails transiently and waits an hour.
    const maildir = join(dir, 'data', 'mailboxes', 'example.test', 'bob', 'Maildir');
    await mkdir(dirname(maildir), { recursive: true });
    await writeFile(maildir, 'not a folder\n');
    const n = await startTestNode({
      dir,
      config: {
        ...config,
        queue: {
          mailboxRetryInterval: '1h',
          backPressure: { highWatermark: HIGH, lowWatermark: LOW, checkInterval: '50ms' },
        },
      },
    });
    const anonymous = (tag: string) =>
      sendOne(n.port('Default'), {
        from: 'someone@remote.test',
        to: ['bob@example.test'],
        headers: [`Subject: ${tag}`],
      });
    try {
      for (let i = 0; i < HIGH * 2; i++) {
        const r = await anonymous(`deferred-${i}`);
        assert.equal(r.end?.code, 250, `message ${i} refused though its predecessors only wait for a retry`);
      }
      await eventually('every recipient deferred', async () => {
        const counts = await n.node.store.countRecipients();
        return counts.pending === HIGH * 2 && (await n.node.store.countDueBacklog(Date.now(), 1000)) === 0
          ? true
          : undefined;
      });
      await new Promise((r) => setTimeout(r, 200));
      const after = await anonymous('after-sample');
      assert.equal(
        after.mail.code,
        250,
        `MAIL refused with ${HIGH * 2} deferred recipients: ${after.mail.text}`,
      );
    } finally {
      await n.stop();
      await removeDir(dir);
    }
  });
});

describe('the back pressure monitor', () => {
  const anonymous = { connector: 'Default', remoteIp: '192.0.2.1', sender: 'a@remote.test' };

  it('turns on at the high watermark, stays on down to the low one, and off below it', async () => {
    let waiting = 0;
    let reads = 0;
    const m = new BackPressureMonitor({
      highWatermark: 100,
      lowWatermark: 40,
      checkInterval: 60_000,
      count: async (atMost) => {
        reads++;
        return Math.min(waiting, atMost);
      },
      clock: { now: () => 0 },
      logger: silentLogger,
    });
    const states: Array<[number, boolean]> = [];
    for (const n of [99, 100, 70, 40, 39, 99]) {
      waiting = n;
      await m.sample();
      states.push([n, m.refusal(anonymous)?.reply.code === 452]);
    }
    assert.deepEqual(states, [
      [99, false],
      [100, true],
      [70, true],
      [40, true],
      [39, false],
      [99, false],
    ]);
    const before = reads;
    for (let i = 0; i < 1000; i++) m.refusal(anonymous);
    assert.equal(reads, before, 'MAIL read the queue length instead of the last sample');
  });

  it('never refuses authenticated sessions, partners or servers; tracks each refusal as THROTTLE', async () => {
    const bus = createEventBus();
    const seen: TrackingEvent[] = [];
    bus.subscribe((e) => {
      if (e.kind === 'track') seen.push(e.event);
    });
    const m = new BackPressureMonitor({
      highWatermark: 1,
      lowWatermark: 0,
      checkInterval: 60_000,
      count: async (atMost) => Math.min(5, atMost),
      clock: { now: () => 1234 },
      logger: silentLogger,
      events: bus,
    });
    await m.sample();
    assert.equal(m.refusal({ ...anonymous, authUser: 'alice@example.test' }), undefined);
    assert.equal(m.refusal({ ...anonymous, certificateGroup: 'partners' }), undefined);
    assert.equal(m.refusal({ ...anonymous, certificateGroup: 'servers' }), undefined);
    const refused = m.refusal(anonymous);
    assert.deepEqual(refused && [refused.reply.code, refused.reply.status], [452, '4.3.1']);
    assert.match(refused?.reason ?? '', /^back pressure: more than 1 recipients due \(high watermark 1\)/);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.eventId, 'THROTTLE');
    assert.equal(seen[0]!.time, 1234);
    assert.equal(seen[0]!.clientIp, '192.0.2.1');
  });

  it('keeps its state when the queue cannot be read', async () => {
    let fail = false;
    const m = new BackPressureMonitor({
      highWatermark: 1,
      lowWatermark: 0,
      checkInterval: 60_000,
      count: async () => {
        if (fail) throw new Error('queue is closed');
        return 3;
      },
      clock: { now: () => 0 },
      logger: silentLogger,
    });
    await m.sample();
    fail = true;
    await m.sample();
    assert.equal(m.engaged, true);
  });

  it('refuses a low watermark above the high one', () => {
    assert.throws(
      () =>
        new BackPressureMonitor({
          highWatermark: 10,
          lowWatermark: 20,
          checkInterval: 1000,
          count: async () => 0,
          clock: { now: () => 0 },
          logger: silentLogger,
        }),
      /lowWatermark must not be above highWatermark/,
    );
  });
});
