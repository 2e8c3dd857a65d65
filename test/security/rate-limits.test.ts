import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rateLimitsAgent } from '../../src/agents/connection/rate-limits.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { TEST_PASSWORD, waitForMessages } from '../helpers/node-fixture.ts';
import { connector, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { connect, data, message, ready, startSecuredNode } from './security-fixture.ts';

/**
 * Per-source rates over a sliding minute, per connector and client IP: the message beyond
 * messagesPerMinutePerSource gets 421 4.7.0 at MAIL and the connection is closed (Exchange's
 * MessageRateLimit); the connection beyond connectionsPerMinutePerSource gets 421 4.7.0 as its
 * greeting. Authenticated sessions are not limited.
 */
describe('per-source rate limits', () => {
  it('closes the session with 421 4.7.0 at the MAIL beyond the message rate, and stores only the messages before it', async () => {
    const node = await startSecuredNode({ agents: { rateLimits: { messagesPerMinutePerSource: 2 } } });
    try {
      const client = await ready(node.port('Default'));
      for (const subject of ['one', 'two']) {
        assert.equal((await client.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
        assert.equal((await client.command('RCPT TO:<bob@example.test>')).code, 250);
        assert.equal((await data(client, message(subject))).code, 250);
      }
      const third = await client.command('MAIL FROM:<someone@elsewhere.test>');
      assert.equal(third.code, 421);
      assert.match(third.text, /^4\.7\.0 /);
      await client.closed();
      // A new connection from the same IP is still over the rate.
      const again = await ready(node.port('Default'));
      assert.equal((await again.command('MAIL FROM:<someone@elsewhere.test>')).code, 421);
      await again.closed();
      const stored = await waitForMessages(node.mailbox('bob@example.test'), 2);
      assert.equal(stored.length, 2);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await waitForMessages(node.mailbox('bob@example.test'), 2)).length, 2);
      // Another connector counts on its own, and authenticated sessions are not limited.
      const auth = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');
      const submitter = await ready(node.port('Client'));
      assert.equal((await submitter.command(`AUTH PLAIN ${auth}`)).code, 235);
      for (let i = 0; i < 3; i++) {
        assert.equal((await submitter.command('MAIL FROM:<alice@example.test>')).code, 250);
        assert.equal((await submitter.command('RSET')).code, 250);
      }
      submitter.close();
    } finally {
      await node.cleanup();
    }
  });

  it('refuses the connection beyond the connection rate with 421 4.7.0 as its greeting', async () => {
    const node = await startSecuredNode({ agents: { rateLimits: { connectionsPerMinutePerSource: 2 } } });
    try {
      for (let i = 0; i < 2; i++) {
        const { client, greeting } = await connect(node.port('Default'));
        assert.equal(greeting.code, 220);
        assert.equal((await client.command('QUIT')).code, 221);
      }
      const { client, greeting } = await connect(node.port('Default'));
      assert.equal(greeting.code, 421);
      assert.match(greeting.text, /^4\.7\.0 .*Too many connections/);
      await client.closed();
    } finally {
      await node.cleanup();
    }
  });

  it('counts over a sliding minute: the rate opens again once the oldest message is a minute old', async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1));
    const harness = await startReceiveHarness([connector()], {
      clock,
      agents: [rateLimitsAgent({ messagesPerMinutePerSource: 1, clock })],
    });
    try {
      const first = await ready(harness.port());
      assert.equal((await first.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      first.close();
      clock.advance(59_000);
      const early = await ready(harness.port());
      assert.equal((await early.command('MAIL FROM:<someone@elsewhere.test>')).code, 421);
      await early.closed();
      clock.advance(1_000);
      const later = await ready(harness.port());
      assert.equal((await later.command('MAIL FROM:<someone@elsewhere.test>')).code, 250);
      later.close();
    } finally {
      await harness.close();
    }
  });
});
