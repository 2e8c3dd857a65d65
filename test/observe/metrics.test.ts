import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createEventBus } from '../../src/observe/events.ts';
import { createMetrics, type QueueDepth } from '../../src/observe/metrics.ts';
import { testPki } from '../delivery/smtp-client/fixtures.ts';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  TEST_PASSWORD,
  type TestNode,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';
import { SmtpSink } from '../helpers/smtp-sink.ts';
import {
  b64,
  EventLog,
  observedConfig,
  parsePrometheus,
  type Sample,
  sample,
  send,
} from './observe-fixture.ts';

/**
 * The node's Prometheus metrics count what its bus reports: messages per connector and outcome,
 * reports per kind, tracking events, the delivery latency histogram, sessions, TLS handshakes
 * and AUTH attempts; the queue gauges are read from the queue at scrape time.
 */
describe('the metrics of a node after some mail', () => {
  let t: TestNode;
  let log: EventLog;
  let dir: string;
  const sinks: SmtpSink[] = [];
  let samples: Sample[];
  let deferredId: string;

  before(async () => {
    const pki = await testPki();
    const [partner, broken, later] = await Promise.all([
      SmtpSink.start({ hostname: 'mx.partner.test', tls: pki.leaf }),
      SmtpSink.start({ rcptReply: () => '550 5.1.1 no such user' }),
      SmtpSink.start({ rcptReply: () => '451 4.3.0 try again later' }),
    ]);
    sinks.push(partner!, broken!, later!);
    dir = await makeTempDir('ferrymail-metrics-');
    const config = observedConfig(await demoLikeConfig(dir), {
      partner: partner!.port,
      broken: broken!.port,
      later: later!.port,
    });
    t = await startTestNode({ dir, config });
    log = new EventLog(t.node.events);

    // Two messages from outside on Default (a group, an alias that leaves), two relayed (one
    // refused for good, one for now), a STARTTLS session and two AUTH attempts on Client.
    const external = { from: 'someone@elsewhere.test' };
    const group = await send(t.port('Default'), { ...external, to: ['team@example.test'] });
    const redirected = await send(t.port('Default'), { ...external, to: ['desk@example.test'] });
    const refused = await send(t.port('Relay'), { from: 'alice@example.test', to: ['x@fail.test'] });
    deferredId = await send(t.port('Relay'), { from: 'alice@example.test', to: ['y@later.test'] });
    const tls = await SmtpTestClient.connect(t.port('Default'));
    await tls.greeting();
    await tls.command('EHLO client.example.test');
    assert.equal((await tls.startTls()).code, 220);
    await tls.command('QUIT');
    tls.close();
    const auth = await SmtpTestClient.connect(t.port('Client'));
    await auth.greeting();
    await auth.command('EHLO client.example.test');
    await auth.command(`AUTH PLAIN ${b64(`\0alice@example.test\0${TEST_PASSWORD}`)}`);
    auth.close();
    const auth2 = await SmtpTestClient.connect(t.port('Client'));
    await auth2.greeting();
    await auth2.command('EHLO client.example.test');
    await auth2.command('AUTH LOGIN');
    await auth2.command(b64('alice@example.test'));
    await auth2.command(b64('not the password'));
    auth2.close();

    await log.track('DELIVER', group);
    await log.track('SEND', redirected);
    await log.track('DEFER', deferredId);
    const report = await log.until(
      () => log.tracking({ eventId: 'DSN' }).find((e) => e.reference === refused),
      'DSN',
    );
    await log.track('DELIVER', report.internalId);
    await log.until(
      () => (log.protocol('session').filter((e) => e.phase === 'close').length === 7 ? true : undefined),
      'every session closed',
    );
    // The deferral is recorded (the gauge reads the store) once the recipient is no longer active.
    for (;;) {
      const m = await t.node.store.getMessage(deferredId);
      if (m?.recipients.every((r) => r.status === 'pending' && r.attempts > 0)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    samples = parsePrometheus(await t.node.metrics.text());
  });
  after(async () => {
    log.unsubscribe();
    await t.stop();
    await Promise.all(sinks.map((s) => s.close()));
    await removeDir(dir);
  });

  it('counts received messages per receive connector', () => {
    assert.equal(sample(samples, 'ferrymail_messages_received_total', { connector: 'Default' }), 2);
    assert.equal(sample(samples, 'ferrymail_messages_received_total', { connector: 'Relay' }), 2);
    assert.equal(
      sample(samples, 'ferrymail_messages_received_total', { connector: 'dsn' }),
      undefined,
      'reports made by the node are not received mail',
    );
  });

  it('counts delivered, deferred and failed jobs per send connector, local delivery as mailbox', () => {
    assert.equal(
      sample(samples, 'ferrymail_messages_delivered_total', { connector: 'mailbox' }),
      2,
      'the group message and the NDR',
    );
    assert.equal(sample(samples, 'ferrymail_messages_delivered_total', { connector: 'Partner' }), 1);
    assert.equal(sample(samples, 'ferrymail_messages_failed_total', { connector: 'Broken' }), 1);
    assert.equal(sample(samples, 'ferrymail_messages_deferred_total', { connector: 'Later' }), 1);
    assert.equal(sample(samples, 'ferrymail_dsn_sent_total', { kind: 'failure' }), 1);
  });

  it('counts tracking events per event id', () => {
    const expected = { RECEIVE: 4, EXPAND: 1, REDIRECT: 1, DELIVER: 2, SEND: 1, FAIL: 1, DEFER: 1, DSN: 1 };
    for (const [event, count] of Object.entries(expected)) {
      assert.equal(sample(samples, 'ferrymail_tracking_events_total', { event }), count, event);
    }
  });

  it('has the delivery latency of every delivered recipient, per hop', () => {
    // alice and bob for the group, alice for the NDR; one recipient through the smart host.
    assert.equal(sample(samples, 'ferrymail_delivery_latency_seconds_count', { hop: 'mailbox' }), 3);
    assert.equal(sample(samples, 'ferrymail_delivery_latency_seconds_count', { hop: 'smtp' }), 1);
    assert.equal(
      sample(samples, 'ferrymail_delivery_latency_seconds_bucket', { hop: 'mailbox', le: '+Inf' }),
      3,
    );
    assert.equal(
      sample(samples, 'ferrymail_delivery_latency_seconds_bucket', { hop: 'smtp', le: '21600' }),
      1,
      'the largest bucket is 6 hours',
    );
    const sum = sample(samples, 'ferrymail_delivery_latency_seconds_sum', { hop: 'mailbox' }) ?? -1;
    assert.ok(sum > 0 && sum < 60, `latency sum ${sum}`);
  });

  it('counts sessions per connector, none active once they closed', () => {
    // Default: two messages and the STARTTLS session; Relay: two messages; Client: two AUTH sessions.
    const sessions = { Default: 3, Relay: 2, Client: 2 };
    for (const [connector, count] of Object.entries(sessions)) {
      assert.equal(sample(samples, 'ferrymail_smtp_sessions_total', { connector }), count, connector);
      assert.equal(sample(samples, 'ferrymail_smtp_sessions_active', { connector }), 0, connector);
    }
  });

  it('counts TLS handshakes per direction, outcome and protocol, and AUTH per mechanism and outcome', () => {
    const tls = (direction: string) =>
      sample(samples, 'ferrymail_tls_handshakes_total', {
        direction,
        outcome: 'established',
        protocol: 'TLSv1.3',
      });
    assert.equal(tls('receive'), 1);
    assert.equal(tls('send'), 1, 'to the smart host that offers STARTTLS');
    assert.equal(
      sample(samples, 'ferrymail_auth_attempts_total', { mechanism: 'PLAIN', outcome: 'success' }),
      1,
    );
    assert.equal(
      sample(samples, 'ferrymail_auth_attempts_total', { mechanism: 'LOGIN', outcome: 'failure' }),
      1,
    );
  });

  it('reads the queue depth at scrape time: only the deferred message still waits', async () => {
    const m = await t.node.store.getMessage(deferredId);
    const hop = m!.recipients[0]!.nextHop;
    assert.equal(hop.type, 'smtp');
    const queue = `smtp:${hop.type === 'smtp' ? hop.domain : ''}`;
    // The queues as the queue viewer lists them: the fixed ones (poison) are there when empty.
    const waiting = (name: string) =>
      samples.filter((s) => s.name === name && s.value !== 0).map((s) => [s.labels.queue, s.value]);
    assert.deepEqual(waiting('ferrymail_queue_recipients'), [[queue, 1]]);
    assert.deepEqual(waiting('ferrymail_queue_messages'), [[queue, 1]]);
    assert.equal(sample(samples, 'ferrymail_queue_messages', { queue: 'poison' }), 0);
  });

  it("includes prom-client's process metrics, and says its content type", () => {
    assert.ok(samples.some((s) => s.name === 'process_cpu_user_seconds_total'));
    assert.ok(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'));
    assert.match(t.node.metrics.contentType, /^text\/plain; version=0\.0\.4/);
  });
});

describe('metrics on a bus of their own', () => {
  it('keep one registry per node: two in one process count apart', async () => {
    const a = createEventBus();
    const b = createEventBus();
    const ma = createMetrics({ bus: a, queueDepth: async () => [] });
    const mb = createMetrics({ bus: b, queueDepth: async () => [] });
    try {
      a.emit({ kind: 'session', connector: 'Default', phase: 'open' });
      const countIn = async (m: typeof ma) =>
        sample(parsePrometheus(await m.text()), 'ferrymail_smtp_sessions_total', { connector: 'Default' });
      assert.equal(await countIn(ma), 1);
      assert.equal(await countIn(mb), undefined);
    } finally {
      ma.close();
      mb.close();
    }
  });

  it('drop a queue that emptied, and still answer when the queue cannot be read', async () => {
    const bus = createEventBus();
    let depth: ReadonlyArray<QueueDepth> | Error = [{ queue: 'mailbox', messages: 2, recipients: 3 }];
    const m = createMetrics({
      bus,
      queueDepth: async () => {
        if (depth instanceof Error) throw depth;
        return depth;
      },
    });
    try {
      let s = parsePrometheus(await m.text());
      assert.equal(sample(s, 'ferrymail_queue_messages', { queue: 'mailbox' }), 2);
      assert.equal(sample(s, 'ferrymail_queue_recipients', { queue: 'mailbox' }), 3);
      depth = [];
      s = parsePrometheus(await m.text());
      assert.equal(sample(s, 'ferrymail_queue_messages', { queue: 'mailbox' }), undefined);
      depth = new Error('database is locked');
      bus.emit({ kind: 'auth', connector: 'Client', mechanism: 'PLAIN', outcome: 'locked' });
      s = parsePrometheus(await m.text());
      assert.equal(sample(s, 'ferrymail_auth_attempts_total', { mechanism: 'PLAIN', outcome: 'locked' }), 1);
    } finally {
      m.close();
    }
  });

  it('stop counting once closed', async () => {
    const bus = createEventBus();
    const m = createMetrics({ bus, queueDepth: async () => [] });
    m.close();
    bus.emit({ kind: 'delivery-latency', hop: 'mailbox', seconds: 1 });
    const s = parsePrometheus(await m.text());
    assert.equal(sample(s, 'ferrymail_delivery_latency_seconds_count', { hop: 'mailbox' }), undefined);
  });
});
