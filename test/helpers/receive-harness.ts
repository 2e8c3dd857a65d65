import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { generate } from 'selfsigned';
import { type ReceiveConnectorConfig, receiveConnectorSchema } from '../../src/config/schema.ts';
import { systemClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ConfigDirectory } from '../../src/directory/config-directory.ts';
import { hashPassword } from '../../src/directory/password.ts';
import { SqliteQueueStore } from '../../src/queue/sqlite-store.ts';
import type { QueuedMessage } from '../../src/queue/types.ts';
import { type ReceiveServer, startReceiveServer } from '../../src/receive/server.ts';
import type { MessageSink } from '../../src/receive/types.ts';
import { localOnlyRouter } from '../../src/routing/router.ts';
import { SubmissionSink } from '../../src/routing/submission.ts';
import { makeTempDir, removeDir, TEST_PASSWORD } from './node-fixture.ts';

let certificate: Promise<{ cert: Buffer; key: Buffer }> | undefined;

/** One throwaway self-signed certificate per test process. */
export function testCertificate(): Promise<{ cert: Buffer; key: Buffer }> {
  certificate ??= generate([{ name: 'commonName', value: 'mx.example.test' }], { keyType: 'ec' }).then(
    (p) => ({
      cert: Buffer.from(p.cert),
      key: Buffer.from(p.private),
    }),
  );
  return certificate;
}

export type ConnectorInput = Partial<Omit<ReceiveConnectorConfig, 'limits'>> & {
  limits?: Partial<ReceiveConnectorConfig['limits']>;
};

/** A connector config with defaults applied; tests get no tarpit unless they ask. */
export function connector(input: ConnectorInput = {}): ReceiveConnectorConfig {
  return receiveConnectorSchema.parse({
    name: 'Test',
    bindings: ['127.0.0.1:0'],
    ...input,
    limits: { tarpitInterval: 0, ...input.limits },
  });
}

export interface ReceiveHarness {
  readonly server: ReceiveServer;
  readonly store: SqliteQueueStore;
  port(connectorName?: string): number;
  /** Messages in the queue (nothing delivers them here). */
  messages(): Promise<QueuedMessage[]>;
  body(id: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Receive connectors in front of a real queue store and the real directory (alice, bob,
 * postmaster → alice, team → alice + bob, in example.test), with no delivery: what was accepted
 * stays in the queue for the test to inspect.
 */
export async function startReceiveHarness(
  connectors: ReceiveConnectorConfig[] = [connector()],
  options: { wrapSink?: (sink: MessageSink) => MessageSink } = {},
): Promise<ReceiveHarness> {
  const dir = await makeTempDir('ferrymail-receive-');
  const passwordHash = await hashPassword(TEST_PASSWORD);
  const directory = new ConfigDirectory({
    acceptedDomains: [{ name: 'example.test', type: 'authoritative', default: true }],
    mailboxes: [
      { address: 'alice@example.test', passwordHash, aliases: ['a.l.i.c.e@example.test'] },
      { address: 'bob@example.test', passwordHash, aliases: [] },
    ],
    aliases: [{ address: 'postmaster@example.test', target: 'alice@example.test' }],
    groups: [
      {
        address: 'team@example.test',
        members: ['alice@example.test', 'bob@example.test', 'team@example.test'],
      },
    ],
  });
  const clock = systemClock;
  const ids = createIdGenerator(clock);
  const store = new SqliteQueueStore({ dir: join(dir, 'queue'), clock, ids, messageExpiration: 86_400_000 });
  await store.open();
  const sink: MessageSink = new SubmissionSink({ store, router: localOnlyRouter, onQueued: () => undefined });
  const server = await startReceiveServer({
    connectors,
    context: { directory, sink: options.wrapSink ? options.wrapSink(sink) : sink },
    nodeFqdn: 'mx.example.test',
    defaultCertificate: await testCertificate(),
    clock,
    ids,
    logger: silentLogger,
  });
  return {
    server,
    store,
    port(name) {
      const found = server.addresses().find((a) => name === undefined || a.connector === name);
      if (!found) throw new Error(`no connector ${name}`);
      return found.port;
    },
    messages: () => store.listMessages({ limit: 1000 }),
    body: (id) => text(store.readBody(id)),
    async close() {
      await server.close();
      await store.close();
      await removeDir(dir);
    },
  };
}

/** The stored body without the Received header this node prepended. */
export function withoutTrace(body: string): string {
  return body.replace(/^Received: [^\r]*\r\n(\t[^\r]*\r\n)*/, '');
}
