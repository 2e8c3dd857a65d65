import { type FileHandle, mkdtemp, open, readFile, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { AgentPipeline } from '../../src/agents/pipeline.ts';
import type { Agent } from '../../src/agents/types.ts';
import {
  type AcceptedDomainConfig,
  type ReceiveConnectorConfig,
  receiveConnectorSchema,
} from '../../src/config/schema.ts';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import { createIdGenerator } from '../../src/core/ids.ts';
import { type Logger, silentLogger } from '../../src/core/logger.ts';
import type { Directory, Resolution, ResolvedRecipient } from '../../src/directory/types.ts';
import type { BodyWriter } from '../../src/queue/types.ts';
import type { AuthServices } from '../../src/receive/auth/sasl.ts';
import { type ReceiveServer, startReceiveServer } from '../../src/receive/server.ts';
import type { MessageSink, ReceivedEnvelope } from '../../src/receive/types.ts';

/**
 * Stand-ins for the directory and the queue, so receive tests exercise the SMTP side alone:
 * a directory read from a small table, and a sink that writes each body to a real file in a
 * temp folder and records what was submitted. The real directory and queue have their own tests.
 */

// ---- directory ----

export interface DirectoryTable {
  readonly domains: ReadonlyArray<{ name: string; type?: AcceptedDomainConfig['type']; default?: boolean }>;
  readonly mailboxes?: ReadonlyArray<{ address: string; password?: string; aliases?: string[] }>;
  readonly aliases?: ReadonlyArray<{ address: string; target: string }>;
  readonly groups?: ReadonlyArray<{ address: string; members: string[] }>;
}

/** The password every mailbox of the default table has. */
export const TEST_PASSWORD = 'test-password';

/** alice (alias a.l.i.c.e), bob, postmaster → alice, team → alice + bob + team itself; example.test. */
export const DEFAULT_TABLE: DirectoryTable = {
  domains: [
    { name: 'example.test', default: true },
    { name: 'relay.example.test', type: 'internalRelay' },
  ],
  mailboxes: [
    { address: 'alice@example.test', password: TEST_PASSWORD, aliases: ['a.l.i.c.e@example.test'] },
    { address: 'bob@example.test', password: TEST_PASSWORD },
  ],
  aliases: [{ address: 'postmaster@example.test', target: 'alice@example.test' }],
  groups: [
    {
      address: 'team@example.test',
      members: ['alice@example.test', 'bob@example.test', 'team@example.test'],
    },
  ],
};

export class FakeDirectory implements Directory {
  readonly #domains = new Map<string, AcceptedDomainConfig>();
  readonly #mailboxes = new Map<string, { password: string | undefined }>();
  /** Alias (including a mailbox's extra addresses) → target. */
  readonly #aliases = new Map<string, string>();
  readonly #groups = new Map<string, ReadonlyArray<string>>();
  /** Every address the session asked about, in order. */
  readonly lookups: string[] = [];

  constructor(table: DirectoryTable = DEFAULT_TABLE) {
    for (const d of table.domains) {
      const name = d.name.toLowerCase();
      this.#domains.set(name, { name, type: d.type ?? 'authoritative', default: d.default ?? false });
    }
    for (const m of table.mailboxes ?? []) {
      const address = m.address.toLowerCase();
      this.#mailboxes.set(address, { password: m.password });
      for (const alias of m.aliases ?? []) this.#aliases.set(alias.toLowerCase(), address);
    }
    for (const a of table.aliases ?? []) this.#aliases.set(a.address.toLowerCase(), a.target.toLowerCase());
    for (const g of table.groups ?? []) {
      this.#groups.set(
        g.address.toLowerCase(),
        g.members.map((x) => x.toLowerCase()),
      );
    }
  }

  acceptedDomain(domain: string): AcceptedDomainConfig | undefined {
    return this.#domains.get(domain.toLowerCase());
  }

  defaultDomain(): string | undefined {
    for (const d of this.#domains.values()) if (d.default) return d.name;
    return undefined;
  }

  resolve(address: string): Resolution {
    this.lookups.push(address);
    const lower = address.toLowerCase();
    const domain = this.acceptedDomain(lower.slice(lower.lastIndexOf('@') + 1));
    if (!domain) return { kind: 'external' };
    const found = new Map<string, ResolvedRecipient>();
    const known = this.#expand(lower, found, new Set());
    if (!known) {
      return domain.type === 'authoritative'
        ? { kind: 'unknown' }
        : { kind: 'internal', recipients: [{ address: lower, local: false }], rewritten: false };
    }
    const recipients = [...found.values()];
    return {
      kind: 'internal',
      recipients,
      rewritten: recipients.length !== 1 || recipients[0]!.address !== lower,
    };
  }

  #expand(address: string, into: Map<string, ResolvedRecipient>, seen: Set<string>): boolean {
    if (seen.has(address)) return true;
    seen.add(address);
    if (this.#mailboxes.has(address)) {
      into.set(address, { address, local: true });
      return true;
    }
    const target = this.#aliases.get(address);
    if (target) return this.#expand(target, into, seen);
    const members = this.#groups.get(address);
    if (members) {
      for (const m of members) this.#expand(m, into, seen);
      return true;
    }
    return false;
  }

  async authenticate(
    username: string,
    password: string,
  ): Promise<{ ok: true; user: string } | { ok: false }> {
    const user = username.toLowerCase();
    const mailbox = this.#mailboxes.get(user);
    return mailbox?.password !== undefined && mailbox.password === password
      ? { ok: true, user }
      : { ok: false };
  }
}

// ---- message sink ----

export interface FakeSinkOptions {
  /** submit() rejects with this (after dropping the body), e.g. a QueueUnavailableError. */
  failSubmitWith?: Error;
  /** openBody() rejects with this. */
  failOpenWith?: Error;
  /** submit() waits this long before it makes the body durable. */
  submitDelayMs?: number;
  /** Each write() waits this long, to make back pressure visible. */
  writeDelayMs?: number;
}

export interface SubmittedMessage extends ReceivedEnvelope {
  /** The queue id (the body writer's id). */
  readonly id: string;
  readonly file: string;
}

/** A MessageSink writing each body to `<dir>/<id>.eml`; options may be changed between tests. */
export class FakeSink implements MessageSink {
  readonly dir: string;
  options: FakeSinkOptions = {};
  readonly submitted: SubmittedMessage[] = [];
  /** Ids of bodies thrown away (abort, or a failed submit). */
  readonly aborted: string[] = [];
  /** Set when a write was started before the previous one finished: the session ignored back pressure. */
  overlappingWrites = 0;
  #next = 0;
  #open = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<FakeSink> {
    return new FakeSink(await mkdtemp(join(tmpdir(), 'ferrymail-receive-')));
  }

  /** Bodies opened and neither submitted nor aborted yet. */
  get openBodies(): number {
    return this.#open;
  }

  async openBody(): Promise<BodyWriter> {
    if (this.options.failOpenWith) throw this.options.failOpenWith;
    const id = `Q${String(++this.#next).padStart(9, '0')}`;
    const temp = join(this.dir, `${id}.tmp`);
    const handle = await open(temp, 'wx');
    this.#open++;
    return new FakeBody(this, id, temp, handle);
  }

  async submit(body: BodyWriter, envelope: ReceivedEnvelope): Promise<{ queueId: string }> {
    if (!(body instanceof FakeBody)) throw new Error('not a body of this sink');
    if (this.options.submitDelayMs) await sleep(this.options.submitDelayMs);
    if (this.options.failSubmitWith) {
      await body.abort();
      throw this.options.failSubmitWith;
    }
    const file = await body.commit(join(this.dir, `${body.id}.eml`));
    this.submitted.push({ ...envelope, id: body.id, file });
    return { queueId: body.id };
  }

  async body(id: string): Promise<Buffer> {
    return readFile(join(this.dir, `${id}.eml`));
  }

  /** @internal */
  closedBody(id: string, aborted: boolean): void {
    this.#open--;
    if (aborted) this.aborted.push(id);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

class FakeBody implements BodyWriter {
  readonly id: string;
  size = 0;
  readonly #sink: FakeSink;
  readonly #temp: string;
  readonly #handle: FileHandle;
  #writing = false;
  #done = false;

  constructor(sink: FakeSink, id: string, temp: string, handle: FileHandle) {
    this.#sink = sink;
    this.id = id;
    this.#temp = temp;
    this.#handle = handle;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.#done) throw new Error(`body ${this.id} is already closed`);
    if (this.#writing) this.#sink.overlappingWrites++;
    this.#writing = true;
    try {
      if (this.#sink.options.writeDelayMs) await sleep(this.#sink.options.writeDelayMs);
      // Copied: the caller may reuse its buffer once the promise resolves, not before.
      await this.#handle.write(Buffer.from(chunk));
      this.size += chunk.length;
    } finally {
      this.#writing = false;
    }
  }

  async commit(path: string): Promise<string> {
    if (this.#done) throw new Error(`body ${this.id} is already closed`);
    this.#done = true;
    await this.#handle.sync();
    await this.#handle.close();
    await rename(this.#temp, path);
    this.#sink.closedBody(this.id, false);
    return path;
  }

  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#handle.close().catch(() => undefined);
    await unlink(this.#temp).catch(() => undefined);
    this.#sink.closedBody(this.id, true);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- connectors and a running server ----

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

/** A connector config with the schema's defaults, on 127.0.0.1:0; no tarpit unless asked for. */
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
  readonly sink: FakeSink;
  readonly directory: FakeDirectory;
  /** The real port of a connector (the first one when no name is given). */
  port(connectorName?: string): number;
  /** What was submitted so far, oldest first. */
  messages(): Promise<SubmittedMessage[]>;
  /** A stored body as a latin1 string (byte for byte). */
  body(id: string): Promise<string>;
  close(): Promise<void>;
}

/** Receive connectors on ephemeral loopback ports, in front of a FakeDirectory and a FakeSink. */
export async function startReceiveHarness(
  connectors: ReceiveConnectorConfig[] = [connector()],
  options: {
    table?: DirectoryTable;
    clock?: Clock;
    nodeFqdn?: string;
    logger?: Logger;
    /** Agents the sessions run (none by default: the SMTP side alone). */
    agents?: ReadonlyArray<Agent>;
    failClosed?: boolean;
    /** Lockout and token checks shared by the sessions (default: the server's own). */
    auth?: AuthServices;
  } = {},
): Promise<ReceiveHarness> {
  const sink = await FakeSink.create();
  const directory = new FakeDirectory(options.table);
  const clock = options.clock ?? systemClock;
  let server: ReceiveServer;
  try {
    server = await startReceiveServer({
      connectors,
      context: {
        directory,
        sink,
        agents: new AgentPipeline({
          agents: options.agents ?? [],
          logger: options.logger ?? silentLogger,
          failClosed: options.failClosed ?? false,
        }),
      },
      nodeFqdn: options.nodeFqdn ?? 'mx.example.test',
      ...(options.auth ? { auth: options.auth } : {}),
      defaultCertificate: await testCertificate(),
      clock,
      ids: createIdGenerator(clock),
      logger: options.logger ?? silentLogger,
    });
  } catch (error) {
    await sink.remove();
    throw error;
  }
  return {
    server,
    sink,
    directory,
    port(name) {
      const found = server.addresses().find((a) => name === undefined || a.connector === name);
      if (!found) throw new Error(`no connector ${name}`);
      return found.port;
    },
    messages: async () => [...sink.submitted],
    body: async (id) => (await sink.body(id)).toString('latin1'),
    async close() {
      await server.close();
      await sink.remove();
    },
  };
}

/** The stored body without the Received header this node prepended. */
export function withoutTrace(body: string): string {
  return body.replace(/^Received: [^\r]*\r\n(\t[^\r]*\r\n)*/, '');
}
