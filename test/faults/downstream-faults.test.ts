import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { QueuedRecipient } from '../../src/queue/types.ts';
import { attempted, outboundConfig, waitForRecipients } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { removeDir, startTestNode, type TestNode, waitForMessages } from '../helpers/node-fixture.ts';
import { testCertificate } from '../helpers/receive-fakes.ts';
import { SmtpSink, type SmtpSinkOptions } from '../helpers/smtp-sink.ts';
import { eventually, sendOne } from './fault-helpers.ts';

/** The schedule, shortened: 2 glitch retries, 2 transient ones, then the message retry interval. */
const RETRY = {
  glitchRetries: 2,
  glitchInterval: 400,
  transientRetries: 2,
  transientInterval: 800,
  messageRetryInterval: 1500,
};
const EXPECTED_GAPS = [400, 400, 800, 800, 1500];
/** A loaded machine is late, never early: the scheduler may start an attempt this much after its time. */
const LATE_MS = 700;

function connectorFor(domain: string, sink: SmtpSink, extra: Record<string, unknown> = {}) {
  return {
    name: `To-${domain}`,
    addressSpaces: [domain],
    routing: { type: 'smartHost', hosts: [`127.0.0.1:${sink.port}`] },
    tls: { mode: 'none' },
    ...extra,
    limits: { connectTimeout: '2s', commandTimeout: '500ms', idleTimeout: '200ms' },
  };
}

/** alice (a local mailbox, so her NDRs can be read) relays one message to `to`. */
async function relay(t: TestNode, to: string): Promise<string> {
  const r = await sendOne(t.port('Relay'), {
    from: 'alice@example.test',
    to: [to],
    headers: [`Subject: to ${to}`, `Message-ID: <${to.replace('@', '.')}@fault.test>`],
  });
  assert.equal(r.end?.code, 250, `relaying to ${to} refused: ${r.end?.text}`);
  const id = /queued as (\S+)/.exec(r.end.text)?.[1];
  assert.ok(id, r.end.text);
  return id;
}

/** The delivery-status fields of alice's report about `recipient` (folded lines joined). */
async function reportAbout(
  t: TestNode,
  recipient: string,
  timeoutMs = 20_000,
): Promise<Record<string, string>> {
  return eventually(
    `a report to alice about ${recipient}`,
    async () => {
      const messages = await waitForMessages(t.mailbox('alice@example.test'), 0);
      for (const m of messages) {
        // Maildir files have the local line ending (LF); unfold continuation lines.
        const text = m
          .toString('latin1')
          .replace(/\r\n/g, '\n')
          .replace(/\n[ \t]+/g, ' ');
        if (!new RegExp(`^Final-Recipient: rfc822; ?${recipient}$`, 'mi').test(text)) continue;
        const part = text.slice(text.search(/^Reporting-MTA:/m));
        const fields: Record<string, string> = {};
        for (const line of part.split('\n')) {
          const at = line.indexOf(':');
          if (at > 0 && !(line.slice(0, at).toLowerCase() in fields))
            fields[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
        }
        fields.subject = /^Subject: (.*)$/m.exec(text)?.[1] ?? '';
        return fields;
      }
      return undefined;
    },
    timeoutMs,
    100,
  );
}

const recipientOf = async (t: TestNode, id: string) => (await t.node.store.getMessage(id))?.recipients[0];

/**
 * What the downstream does wrong, and what the sender must see: a slow peer, a 4xx, a connection
 * dropped in the middle of the content, a TLS failure where TLS is required, and a 5xx. Each
 * domain has a smart host of its own (the scriptable sink), behaving badly in one way.
 */
describe('downstream faults: retries and reports', () => {
  const sinks: SmtpSink[] = [];
  let t: TestNode;
  const slowOptions: SmtpSinkOptions = { delay: { mail: 1500 } };
  const rcptTimes: number[] = [];
  let slow: SmtpSink;
  let transient: SmtpSink;
  let dropping: SmtpSink;
  let permanent: SmtpSink;

  before(async () => {
    slow = await SmtpSink.start(slowOptions);
    transient = await SmtpSink.start({
      rcptReply: () => {
        rcptTimes.push(Date.now());
        return rcptTimes.length <= EXPECTED_GAPS.length ? '451 4.3.0 Please try again later' : '250 2.1.5 Ok';
      },
    });
    // Without CHUNKING, so the content goes by DATA.
    dropping = await SmtpSink.start({ drop: { at: 'body', connection: 0 }, extensions: { chunking: false } });
    permanent = await SmtpSink.start({ rcptReply: () => '550 5.1.1 <x@permanent.test>: no such user here' });
    sinks.push(slow, transient, dropping, permanent);
    const { dir, config } = await outboundConfig(
      [
        connectorFor('slow.test', slow),
        connectorFor('transient.test', transient),
        connectorFor('dropping.test', dropping),
        connectorFor('permanent.test', permanent),
      ],
      { queue: { retry: RETRY } },
    );
    t = await startTestNode({ dir, config });
  });
  after(async () => {
    await t?.stop();
    for (const s of sinks) await s.close();
    if (t) await removeDir(t.dir);
  });

  it('defers a peer slower than the command timeout (4.4.x), then delivers once it answers in time', async () => {
    const id = await relay(t, 'x@slow.test');
    const r = await eventually('the slow attempt recorded', async () => {
      const rec = await recipientOf(t, id);
      return rec && attempted(rec) ? rec : undefined;
    });
    assert.equal(r.status, 'pending', `a timed-out attempt was not deferred: ${r.lastResponse}`);
    assert.match(r.lastResponse ?? '', /^4\d\d 4\.4\.\d /, `not a timeout: ${r.lastResponse}`);
    assert.equal(slow.transactions.length, 0);
    slowOptions.delay = {};
    await slow.waitFor(() => slow.transactions.length === 1);
    await waitForRecipients(
      (m) => t.node.store.getMessage(m),
      id,
      (x) => x.status === 'delivered',
    );
  });

  it('retries a 4xx on the schedule (glitch, transient, then message retry interval) and delivers', async () => {
    const id = await relay(t, 'x@transient.test');
    await transient.waitFor(() => transient.transactions.length === 1, 15_000);
    const gaps = rcptTimes.slice(1).map((at, i) => at - rcptTimes[i]!);
    assert.equal(gaps.length, EXPECTED_GAPS.length, `attempts at ${JSON.stringify(gaps)} ms apart`);
    gaps.forEach((gap, i) => {
      const want = EXPECTED_GAPS[i]!;
      assert.ok(gap >= want - 25, `retry ${i + 1} came after ${gap} ms, before its ${want} ms`);
      assert.ok(gap <= want + LATE_MS, `retry ${i + 1} came after ${gap} ms, well after its ${want} ms`);
    });
    const last = await waitForRecipients(
      (m) => t.node.store.getMessage(m),
      id,
      (x) => x.status === 'delivered',
    );
    assert.equal(last, undefined, 'the delivered message is still queued');
  });

  it('defers a connection dropped in the middle of DATA and delivers once on the next attempt', async () => {
    const id = await relay(t, 'x@dropping.test');
    await dropping.waitFor(() => dropping.transactions.length === 1, 10_000);
    const first = dropping.connections[0]!;
    assert.ok(first.commands.includes('DATA'), 'the first connection did not get as far as DATA');
    assert.ok(first.closed, 'the first connection was not the one dropped');
    await waitForRecipients(
      (m) => t.node.store.getMessage(m),
      id,
      (x) => x.status === 'delivered',
    );
    // Time for a wrong second delivery to show.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(dropping.transactions.length, 1, 'delivered twice after the drop');
  });

  it('fails a 5xx at once and reports the remote reply in the NDR', async () => {
    const id = await relay(t, 'x@permanent.test');
    const report = await reportAbout(t, 'x@permanent.test');
    assert.equal(report.action, 'failed');
    assert.equal(report.status, '5.1.1');
    assert.match(
      report['diagnostic-code'] ?? '',
      /^smtp; ?550 5\.1\.1 <x@permanent\.test>: no such user here/,
    );
    assert.equal(
      permanent.connections.flatMap((c) => c.commands).filter((c) => c.startsWith('RCPT')).length,
      1,
    );
    assert.equal(await recipientOf(t, id), undefined, 'the failed message is still queued');
  });
});

describe('downstream faults: a TLS failure where TLS is required', () => {
  let t: TestNode;
  let sink: SmtpSink;
  before(async () => {
    const certificate = await testCertificate();
    // STARTTLS is offered and answered 220, then the connection drops: a broken handshake.
    sink = await SmtpSink.start({
      tls: { cert: certificate.cert, key: certificate.key },
      drop: { at: 'tls' },
    });
    const { dir, config } = await outboundConfig(
      [connectorFor('tls.test', sink, { tls: { mode: 'required' } })],
      {
        queue: { retry: RETRY, messageExpiration: '8s' },
      },
    );
    t = await startTestNode({ dir, config });
  });
  after(async () => {
    await t?.stop();
    await sink?.close();
    if (t) await removeDir(t.dir);
  });

  it('defers every attempt, then returns the message at expiry with the TLS reason', async () => {
    const id = await relay(t, 'x@tls.test');
    const deferred = await eventually('the first TLS attempt recorded', async () => {
      const rec: QueuedRecipient | undefined = await recipientOf(t, id);
      return rec && attempted(rec) ? rec : undefined;
    });
    assert.equal(deferred.status, 'pending', `a TLS failure was not deferred: ${deferred.lastResponse}`);
    assert.match(
      deferred.lastResponse ?? '',
      /^4\d\d 4\.\d\.\d .*TLS/i,
      `no TLS reason: ${deferred.lastResponse}`,
    );
    const report = await reportAbout(t, 'x@tls.test', 30_000);
    assert.equal(report.action, 'failed');
    assert.equal(report.status, '4.4.7');
    assert.match(
      report['diagnostic-code'] ?? '',
      /TLS/i,
      `the NDR does not say TLS failed: ${report['diagnostic-code']}`,
    );
    assert.equal(sink.transactions.length, 0, 'the message went out without TLS');
    assert.ok(
      sink.connections.length >= 2,
      `tried ${sink.connections.length} time(s) before expiry, not retried`,
    );
  });
});
