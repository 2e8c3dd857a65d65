import assert from 'node:assert/strict';
import type { Agent } from '../../src/agents/types.ts';
import {
  demoLikeConfig,
  makeTempDir,
  removeDir,
  startTestNode,
  type TestNode,
} from '../helpers/node-fixture.ts';
import { SmtpTestClient, type TestReply } from '../helpers/smtp-client.ts';

/**
 * A whole node (real queue, real Maildir) on the demo-like config with an `agents` section and
 * any other top-level overrides: what security tests send hostile input to.
 */
export async function startSecuredNode(
  overrides: Record<string, unknown>,
  adjust?: (config: Awaited<ReturnType<typeof demoLikeConfig>>) => void,
  agents?: ReadonlyArray<Agent>,
): Promise<TestNode & { cleanup(): Promise<void> }> {
  const dir = await makeTempDir('ferrymail-security-');
  const config = await demoLikeConfig(dir);
  adjust?.(config);
  const node = await startTestNode({
    dir,
    config: { ...config, ...overrides },
    ...(agents ? { agents } : {}),
  });
  return {
    ...node,
    async cleanup() {
      await node.stop();
      await removeDir(dir);
    },
  };
}

/** Connects and reads the greeting. */
export async function connect(
  port: number,
  host?: string,
): Promise<{ client: SmtpTestClient; greeting: TestReply }> {
  const client = await SmtpTestClient.connect(port, host ? { host } : {});
  return { client, greeting: await client.greeting() };
}

/** Connects, says EHLO, and checks both went well. */
export async function ready(port: number, host?: string): Promise<SmtpTestClient> {
  const { client, greeting } = await connect(port, host);
  assert.equal(greeting.code, 220, greeting.text);
  assert.equal((await client.command('EHLO client.example.net')).code, 250);
  return client;
}

/** Sends DATA with this content (CRLF line ends, terminated here) and returns the final reply. */
export async function data(client: SmtpTestClient, content: string): Promise<TestReply> {
  const start = await client.command('DATA');
  assert.equal(start.code, 354, start.text);
  client.write(`${content}\r\n.\r\n`);
  return client.reply();
}

/** A plain message for tests that do not care about its content. */
export function message(subject = 'hello'): string {
  return `From: someone@elsewhere.test\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n\r\nBody line.`;
}

/** What the queue holds: the node's messages, oldest first. */
export async function queued(node: TestNode): Promise<number> {
  return (await node.node.store.listMessages()).length;
}
