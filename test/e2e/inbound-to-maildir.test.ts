import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { removeDir, startTestNode, type TestNode, waitForMessages } from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/**
 * The spine, end to end: a message sent to the node over SMTP is acknowledged with its queue id
 * and lands in every addressed mailbox exactly once, with the trace headers a mailbox expects.
 */
describe('inbound mail reaches local Maildir mailboxes', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.stop();
    await removeDir(t.dir);
  });

  async function send(rcpts: string[], body: string, from = 'sender@remote.test') {
    const c = await SmtpTestClient.connect(t.port('Default'));
    try {
      assert.equal((await c.greeting()).code, 220);
      assert.equal((await c.command('EHLO client.remote.test')).code, 250);
      assert.equal((await c.command(`MAIL FROM:<${from}>`)).code, 250);
      for (const r of rcpts) assert.equal((await c.command(`RCPT TO:<${r}>`)).code, 250, `RCPT ${r}`);
      assert.equal((await c.command('DATA')).code, 354);
      const reply = await c.command(`${body.replace(/\r?\n$/, '').replace(/\r?\n/g, '\r\n')}\r\n.`);
      await c.command('QUIT');
      return reply;
    } finally {
      c.close();
    }
  }

  it('answers 250 2.0.0 with the queue id, then delivers with Return-Path, Delivered-To and Received', async () => {
    const reply = await send(['bob@example.test'], 'Subject: hello\n\nfirst message\n');
    assert.equal(reply.code, 250);
    assert.match(reply.text, /^2\.0\.0 .*queued as [0-9A-Z]+/);
    const [msg] = await waitForMessages(t.mailbox('bob@example.test'), 1);
    const text = msg!.toString('latin1');
    assert.match(text, /^Return-Path: <sender@remote\.test>\r?\n/);
    assert.match(text, /\nDelivered-To: bob@example\.test\r?\n/);
    assert.match(text, /\nReceived: from client\.remote\.test \(\[127\.0\.0\.1\]\)/);
    assert.match(text, /\r?\nSubject: hello\r?\n\r?\nfirst message\r?\n$/);
  });

  it('expands a group to each member and delivers an alias to its target mailbox', async () => {
    const before = {
      alice: (await waitForMessages(t.mailbox('alice@example.test'), 0)).length,
    };
    const reply = await send(['team@example.test', 'postmaster@example.test'], 'Subject: team\n\nfor all\n');
    assert.equal(reply.code, 250);
    // alice is reached through the group and through the alias: one copy only.
    const alice = await waitForMessages(t.mailbox('alice@example.test'), before.alice + 1);
    const bob = await waitForMessages(t.mailbox('bob@example.test'), 2);
    assert.ok(bob.some((m) => m.includes('Subject: team')));
    await new Promise((r) => setTimeout(r, 200));
    const aliceAgain = await waitForMessages(t.mailbox('alice@example.test'), 0);
    assert.equal(aliceAgain.filter((m) => m.includes('Subject: team')).length, 1);
    assert.equal(alice.filter((m) => m.includes('Subject: team')).length, 1);
  });

  it('leaves nothing in the queue once every recipient is delivered', async () => {
    await send(['alice@example.test'], 'Subject: drain\n\nx\n');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const counts = await t.node.store.countRecipients();
      if (counts.pending + counts.active === 0) break;
      assert.ok(Date.now() < deadline, `queue still holds ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});
