import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { removeDir, startTestNode, type TestNode } from '../../helpers/node-fixture.ts';
import { SmtpTestClient } from '../../helpers/smtp-client.ts';
import { SmtpSink } from '../../helpers/smtp-sink.ts';
import { outboundConfig } from './outbound-fixture.ts';

const BACKLOG = 200;
const PER_DESTINATION = 2;
const OUTBOUND_SLOTS = 4;
/** How long the slow domain's server takes over each message's final dot. */
const SLOW_DOT_MS = 150;

/** Relays `count` messages to `to` over one session (one transaction each). */
async function relayMany(port: number, to: string, count: number): Promise<void> {
  const c = await SmtpTestClient.connect(port);
  try {
    assert.equal((await c.greeting()).code, 220);
    assert.equal((await c.command('EHLO client.example.test')).code, 250);
    for (let i = 0; i < count; i++) {
      assert.equal((await c.command('MAIL FROM:<app@example.test>')).code, 250);
      assert.equal((await c.command(`RCPT TO:<${to}>`)).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      const reply = await c.command(`Subject: message ${i}\r\n\r\nbody ${i}\r\n.`);
      assert.equal(reply.code, 250, reply.text);
    }
    await c.command('QUIT');
  } finally {
    c.close();
  }
}

/**
 * A destination at its connection limit does not hold the node's outbound delivery slots: the
 * scheduler claims no more jobs for a queue than its send connector's
 * maxConnectionsPerDestination, so a backlog for one slow domain leaves the other slots to
 * every other domain (before, the backlog's jobs were claimed first and then waited in the
 * connection pool, each holding one of queue.maxOutboundConnections).
 */
describe('outbound fairness between destinations', () => {
  let dns: TestDnsServer;
  let slow: SmtpSink;
  let fast: SmtpSink;
  let t: TestNode;
  let dir: string;
  /** Connections open at the slow domain's server, at the busiest moment seen. */
  let slowPeak = 0;

  before(async () => {
    slow = await SmtpSink.start({
      hostname: 'mx.slow.test',
      delay: { dot: SLOW_DOT_MS },
      // Counted at every transaction's start: a connection opened beyond the limit would show.
      // One that said QUIT is on its way out (every 20 messages the pool replaces a connection).
      mailReply: () => {
        const open = slow.connections.filter((c) => !c.closed && !c.commands.some((l) => /^QUIT/i.test(l)));
        slowPeak = Math.max(slowPeak, open.length);
        return '250 2.1.0 ok';
      },
    });
    fast = await SmtpSink.start({ hostname: 'mx.fast.test' });
    dns = await startDnsServer({
      'slow.test': { MX: [{ preference: 10, exchange: 'mx.slow.test' }] },
      'mx.slow.test': { A: ['127.0.0.1'] },
      'fast.test': { MX: [{ preference: 10, exchange: 'mx.fast.test' }] },
      'mx.fast.test': { A: ['127.0.0.1'] },
    });
    const limits = { maxConnectionsPerDestination: PER_DESTINATION };
    const made = await outboundConfig(
      [
        {
          name: 'Slow',
          addressSpaces: ['slow.test'],
          routing: { type: 'dns' },
          port: slow.port,
          mtaSts: false,
          limits,
        },
        {
          name: 'Internet',
          addressSpaces: ['*'],
          routing: { type: 'dns' },
          port: fast.port,
          mtaSts: false,
          limits,
        },
      ],
      {
        dns: { servers: [dns.server], timeout: '500ms', tries: 1, allowPrivateAddresses: true },
        queue: { maxOutboundConnections: OUTBOUND_SLOTS },
      },
    );
    dir = made.dir;
    t = await startTestNode({ dir, config: made.config });
  });
  after(async () => {
    await t.stop();
    await slow.close();
    await fast.close();
    await dns.close();
    await removeDir(dir);
  });

  it("delivers another domain's message while one domain's backlog is still being worked", async () => {
    const relay = t.port('Relay');
    await relayMany(relay, 'someone@slow.test', BACKLOG);
    await relayMany(relay, 'other@fast.test', 1);
    await fast.waitFor(() => fast.transactions.length === 1, 15_000);

    const slowDone = slow.transactions.length;
    // The whole backlog takes BACKLOG / PER_DESTINATION * SLOW_DOT_MS (15 s) at the least; the
    // other domain's message came after all of it and must not have waited for it.
    assert.ok(
      slowDone < BACKLOG / 2,
      `fast.test was delivered only after ${slowDone} of the ${BACKLOG} slow.test messages`,
    );
    assert.deepEqual(fast.transactions[0]!.accepted, ['other@fast.test']);
    assert.ok(slowPeak > 0, 'the slow domain was being delivered to');
    assert.ok(
      slowPeak <= PER_DESTINATION,
      `slow.test had ${slowPeak} connections at once; its limit is ${PER_DESTINATION}`,
    );
  });

  it('still works the backlog at its full per-destination concurrency, within the limit', async () => {
    const start = slow.transactions.length;
    const began = Date.now();
    await slow.waitFor(() => slow.transactions.length >= start + 20, 15_000);
    const perMessage = (Date.now() - began) / (slow.transactions.length - start);
    // One connection takes more than SLOW_DOT_MS per message (plus the transaction's round
    // trips); two at once about half that.
    assert.ok(
      perMessage < SLOW_DOT_MS,
      `${perMessage.toFixed(1)} ms per message: the slow domain is not using both of its connections`,
    );
    assert.ok(slowPeak <= PER_DESTINATION, `slow.test had ${slowPeak} connections at once`);
  });
});
