import assert from 'node:assert/strict';
import type { QueuedMessage, QueuedRecipient } from '../../../src/queue/types.ts';
import { demoLikeConfig, makeTempDir } from '../../helpers/node-fixture.ts';
import { SmtpTestClient } from '../../helpers/smtp-client.ts';

/**
 * A node like the demo one, plus a `Relay` receive connector that lets 127.0.0.1 relay
 * anonymously (Exchange's anonymous relay connector), and the send connectors the test gives.
 */
export async function outboundConfig(
  sendConnectors: unknown[],
  extra: Record<string, unknown> = {},
): Promise<{ dir: string; config: Record<string, unknown> }> {
  const dir = await makeTempDir('ferrymail-outbound-');
  const base = await demoLikeConfig(dir);
  const config: Record<string, unknown> = {
    ...base,
    receiveConnectors: [
      ...base.receiveConnectors,
      {
        name: 'Relay',
        bindings: ['127.0.0.1:0'],
        remoteRanges: ['127.0.0.1/32'],
        permissionGroups: { anonymous: ['submit', 'relay'] },
        tls: { mode: 'none' },
      },
    ],
    sendConnectors,
    ...extra,
  };
  return { dir, config };
}

/** Sends one message over the given port; returns the queue id from the 250 reply. */
export async function submit(
  port: number,
  from: string,
  to: string[],
  body = 'From: <alice@example.test>\r\nSubject: outbound\r\n\r\nHello over there.\r\n',
): Promise<string> {
  const c = await SmtpTestClient.connect(port);
  try {
    assert.equal((await c.greeting()).code, 220);
    assert.equal((await c.command('EHLO client.example.test')).code, 250);
    assert.equal((await c.command(`MAIL FROM:<${from}>`)).code, 250);
    for (const r of to) assert.equal((await c.command(`RCPT TO:<${r}>`)).code, 250, `RCPT ${r}`);
    assert.equal((await c.command('DATA')).code, 354);
    const reply = await c.command(`${body.replace(/\r\n$/, '')}\r\n.`);
    assert.equal(reply.code, 250, reply.text);
    await c.command('QUIT');
    const id = /queued as ([0-9A-Z]+)/.exec(reply.text)?.[1];
    assert.ok(id, `a queue id in ${reply.text}`);
    return id;
  } finally {
    c.close();
  }
}

/**
 * Polls the store until every recipient of the message satisfies `done`. A message whose
 * recipients are all final leaves the queue: then this resolves with undefined.
 */
export async function waitForRecipients(
  getMessage: (id: string) => Promise<QueuedMessage | undefined>,
  id: string,
  done: (r: QueuedRecipient) => boolean,
  timeoutMs = 10_000,
): Promise<QueuedMessage | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const message = await getMessage(id);
    if (!message || message.recipients.every(done)) return message;
    if (Date.now() > deadline) {
      throw new Error(
        `message ${id} did not reach the expected state: ${JSON.stringify(message.recipients)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Like waitForRecipients, for a message that must still be queued (some recipient not final). */
export async function waitForQueued(
  getMessage: (id: string) => Promise<QueuedMessage | undefined>,
  id: string,
  done: (r: QueuedRecipient) => boolean,
): Promise<QueuedMessage> {
  const message = await waitForRecipients(getMessage, id, done);
  assert.ok(message, `message ${id} left the queue, but a recipient should still be waiting`);
  return message;
}

/** A recipient that has had its attempt recorded (no longer pending-before-first-try nor active). */
export const attempted = (r: QueuedRecipient) => r.status !== 'active' && r.attempts > 0;
