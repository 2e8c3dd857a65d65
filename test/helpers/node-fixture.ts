import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Agent } from '../../src/agents/types.ts';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { hashPassword } from '../../src/directory/password.ts';
import { type NodeOptions, type RunningNode, startNode } from '../../src/node.ts';

export const TEST_PASSWORD = 'test-password';

/** A config like the demo one, on ephemeral loopback ports, with its state in `dir`. */
export async function demoLikeConfig(dir: string, ports: { default?: number; client?: number } = {}) {
  const passwordHash = await hashPassword(TEST_PASSWORD);
  return {
    node: { name: 'test', fqdn: 'mx.example.test', dataDir: join(dir, 'data'), logLevel: 'silent' },
    acceptedDomains: [{ name: 'example.test', type: 'authoritative', default: true }],
    mailboxes: [
      { address: 'alice@example.test', passwordHash },
      { address: 'bob@example.test', passwordHash },
    ],
    aliases: [{ address: 'postmaster@example.test', target: 'alice@example.test' }],
    groups: [{ address: 'team@example.test', members: ['alice@example.test', 'bob@example.test'] }],
    receiveConnectors: [
      {
        name: 'Default',
        bindings: [`127.0.0.1:${ports.default ?? 0}`],
        permissionGroups: { anonymous: ['submit'] },
      },
      {
        name: 'Client',
        bindings: [`127.0.0.1:${ports.client ?? 0}`],
        permissionGroups: { authenticatedUsers: ['submit', 'relay'] },
        auth: { required: true, requireTls: false },
      },
    ],
  };
}

export async function makeTempDir(prefix = 'ferrymail-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function writeConfigFile(dir: string, config: unknown): Promise<string> {
  const file = join(dir, 'ferrymail.yaml');
  await writeFile(file, stringify(config));
  return file;
}

export interface TestNode {
  node: RunningNode;
  dir: string;
  port(connector: string): number;
  mailbox(address: string): string;
  stop(): Promise<void>;
}

/** Starts a whole node in this process on the given config (or the demo-like one). */
export async function startTestNode(
  options: {
    dir?: string;
    config?: unknown;
    agents?: ReadonlyArray<Agent>;
    beforeDelivery?: NodeOptions['beforeDelivery'];
  } = {},
): Promise<TestNode> {
  const dir = options.dir ?? (await makeTempDir());
  const file = await writeConfigFile(dir, options.config ?? (await demoLikeConfig(dir)));
  const node = await startNode(await loadConfig(file), {
    logger: silentLogger,
    ...(options.agents ? { agents: options.agents } : {}),
    ...(options.beforeDelivery ? { beforeDelivery: options.beforeDelivery } : {}),
  });
  return {
    node,
    dir,
    port(connector) {
      const found = node.receive.addresses().find((a) => a.connector === connector);
      if (!found) throw new Error(`no listener for connector ${connector}`);
      return found.port;
    },
    mailbox(address) {
      const [local, domain] = address.split('@') as [string, string];
      return join(node.dataDir, 'mailboxes', domain, local, 'Maildir');
    },
    stop: () => node.stop(),
  };
}

/** Files in a Maildir's new/ folder (empty when the folder does not exist yet). */
export async function newMessages(maildir: string): Promise<string[]> {
  try {
    return (await readdir(join(maildir, 'new'))).sort();
  } catch {
    return [];
  }
}

/** Waits until a Maildir's new/ holds `count` messages and returns their contents. */
export async function waitForMessages(maildir: string, count: number, timeoutMs = 10_000): Promise<Buffer[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = await newMessages(maildir);
    if (names.length >= count) return Promise.all(names.map((n) => readFile(join(maildir, 'new', n))));
    if (Date.now() > deadline) {
      throw new Error(`expected ${count} message(s) in ${maildir}/new, found ${names.length}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A free TCP port on loopback (for child processes that need a fixed port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
