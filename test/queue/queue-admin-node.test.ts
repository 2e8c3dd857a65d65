import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  removeDir,
  startTestNode,
  TEST_PASSWORD,
  type TestNode,
  waitForMessages,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** The queue viewer of a running node: what an administrator does through the API or the CLI. */
describe('the queue viewer on a running node', () => {
  let t: TestNode;
  before(async () => {
    t = await startTestNode();
  });
  after(async () => {
    await t.stop();
    await removeDir(t.dir);
  });

  /** alice submits (AUTH on the Client connector) a message to a domain no send connector serves. */
  async function submitUnreachable(subject: string): Promise<string> {
    const c = await SmtpTestClient.connect(t.port('Client'));
    try {
      assert.equal((await c.greeting()).code, 220);
      assert.equal((await c.command('EHLO client.example.test')).code, 250);
      const auth = Buffer.from(`\0alice@example.test\0${TEST_PASSWORD}`).toString('base64');
      assert.equal((await c.command(`AUTH PLAIN ${auth}`)).code, 235);
      assert.equal((await c.command('MAIL FROM:<alice@example.test>')).code, 250);
      assert.equal((await c.command('RCPT TO:<someone@nowhere.test>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      const reply = await c.command(`Subject: ${subject}\r\n\r\nbody\r\n.`);
      assert.equal(reply.code, 250, reply.text);
      await c.command('QUIT');
      return /queued as ([0-9A-Z]+)/.exec(reply.text)![1]!;
    } finally {
      c.close();
    }
  }

  it('lists the Unreachable queue, and removing its message with NDR puts a 5.7.1 report in the sender’s mailbox', async () => {
    const id = await submitUnreachable('to be removed');
    const admin = t.node.queueAdmin;
    const queue = await admin.getQueue('unreachable');
    assert.deepEqual([queue?.deliveryType, queue?.messageCount], ['Unreachable', 1]);
    const view = await admin.getMessage(id);
    assert.deepEqual([view?.subject, view?.queues], ['to be removed', ['unreachable']]);

    await admin.removeMessage(id, { ndr: true });
    assert.equal(await admin.getMessage(id), undefined);
    const [ndr] = await waitForMessages(t.mailbox('alice@example.test'), 1);
    const text = ndr!.toString('latin1');
    assert.match(text, /Status: 5\.7\.1/);
    assert.match(text, /Message deleted by an administrator/);
    assert.match(text, /someone@nowhere\.test/);
  });
});
