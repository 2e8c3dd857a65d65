import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { createEventBus, type TrackingEvent } from '../../src/observe/events.ts';
import type { RecipientStatus } from '../../src/queue/types.ts';
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
 * Exchange's back pressure on the queue: past the high watermark of recipients awaiting
 * delivery, anonymous senders are told `452 4.3.1` at MAIL (they keep the mail and retry), while
 * authenticated submission goes on; once the queue is below the low watermark the node accepts
 * again by itself. The backlog is real: bob's Maildir is a plain file, so every delivery to him
 * fails transiently until the file goes.
 */
describe('back pressure on the queue', () => {
  it('refuses anonymous MAIL past the high watermark, keeps submission open, recovers below the low one', async () => {
    const dir = await makeTempDir();
    const config = await demoLikeConfig(dir);
    const maildir = join(dir, 'data', 'mailboxes', 'example.test', 'bob', 'Maildir');
    await mkdir(dirname(maildir), { recursive: true });
    await writeFile(maildir, 'not a folder: deliveries to bob fail until this file is removed\n');
    const n = await startTestNode({
      dir,
      config: {
        ...config,
        queue: {
          mailboxRetryInterval: '200ms',
          backPressure: { highWatermark: HIGH, lowWatermark: LOW, checkInterval: '50ms' },
        },
      },
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
      assert.match(throttled[0]!.detail ?? '', /back pressure: \d+ recipients queued/);

      // The obstacle goes: the backlog drains by itself, and anonymous mail is accepted again.
      await rm(maildir);
      const drainedAt = Date.now();
      const accepted = await eventually('anonymous mail accepted again after the queue drained', async () => {
        const r = await anonymous('after-drain');
        return r.end?.code === 250 ? r : undefined;
      });
      const recovered = Date.now() - drainedAt;
      const counts = await n.node.store.countRecipients();
      assert.ok(
        counts.pending + counts.active < LOW + 1,
        `accepting again with ${counts.pending + counts.active} recipients still queued`,
      );
      assert.match(accepted.end!.text, /^2\.0\.0 /);
      process.stdout.write(`# back pressure: recovered ${recovered} ms after the destination came back\n`);
    } finally {
      await n.stop();
      await removeDir(dir);
    }
  });
});

describe('the back pressure monitor', () => {
  const zero: Record<RecipientStatus, number> = {
    pending: 0,
    active: 0,
    suspended: 0,
    poison: 0,
    delivered: 0,
    failed: 0,
  };
  const anonymous = { connector: 'Default', remoteIp: '192.0.2.1', sender: 'a@remote.test' };

  it('turns on at the high watermark, stays on down to the low one, and off below it', async () => {
    let waiting = 0;
    let reads = 0;
    const m = new BackPressureMonitor({
      highWatermark: 100,
      lowWatermark: 40,
      checkInterval: 60_000,
      // Delivered, failed and poisoned recipients are not work the node still owes.
      count: async () => {
        reads++;
        return {
          ...zero,
          pending: waiting - 10,
          active: 5,
          suspended: 5,
          delivered: 1000,
          failed: 1000,
          poison: 1000,
        };
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
      count: async () => ({ ...zero, pending: 5 }),
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
    assert.match(refused?.reason ?? '', /^back pressure: 5 recipients queued \(high watermark 1\)/);
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
        return { ...zero, pending: 3 };
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
          count: async () => zero,
          clock: { now: () => 0 },
          logger: silentLogger,
        }),
      /lowWatermark must not be above highWatermark/,
    );
  });
});
