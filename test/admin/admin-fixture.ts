import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { hashPassword } from '../../src/directory/password.ts';
import type { NodeEvent, TrackingEvent } from '../../src/observe/events.ts';
import { outboundConfig } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { removeDir, startTestNode, type TestNode } from '../helpers/node-fixture.ts';

export const ADMIN_ACCOUNT = 'ops';
export const ADMIN_PASSWORD = 'admin-test-password';
/** A config API token (its SHA-256 goes in the config, as an operator would put it). */
export const API_TOKEN = 'ci-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0';

export interface ApiResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

export interface AdminTestNode {
  readonly t: TestNode;
  readonly base: string;
  readonly port: number;
  /** The content of <dataDir>/admin/token. */
  readonly localToken: string;
  /** Every ADMIN tracking event the node emitted since it started. */
  readonly adminEvents: TrackingEvent[];
  /** The port of the smart host that answers 421 to everyone: remote mail stays queued, retrying. */
  readonly busySmartHost: number;
  api(
    method: string,
    path: string,
    options?: { token?: string | null; body?: unknown; localAddress?: string },
  ): Promise<ApiResponse>;
  stop(): Promise<void>;
}

/** One HTTP request, as any client would send it (node:http, so a test can pick its source address). */
export function httpCall(
  port: number,
  method: string,
  path: string,
  options: { authorization?: string; body?: unknown; localAddress?: string } = {},
): Promise<ApiResponse> {
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        headers: {
          ...(options.authorization ? { authorization: options.authorization } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: <T>() => JSON.parse(body.toString('utf8')) as T,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A demo-like node with the admin API on an ephemeral loopback port, an account, a config token,
 * an anonymous `Relay` connector for 127.0.0.1, and a send connector whose smart host greets
 * with 421, so remote mail stays in the queue (Retry) for the queue operations to act on.
 */
export async function startAdminNode(admin: Record<string, unknown> = {}): Promise<AdminTestNode> {
  // A smart host that is always busy: it holds its port (so no other test can take it) and
  // greets with 421, a transient failure, so mail waits in the queue.
  const busy = createServer((socket) => {
    socket.on('error', () => {});
    socket.end('421 4.3.2 Busy, try again later\r\n');
  });
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const busySmartHost = (busy.address() as AddressInfo).port;
  const { dir, config } = await outboundConfig(
    [
      {
        name: 'Outbound',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${busySmartHost}`] },
      },
    ],
    {
      admin: {
        listen: ['127.0.0.1:0'],
        accounts: [{ name: ADMIN_ACCOUNT, passwordHash: await hashPassword(ADMIN_PASSWORD) }],
        tokens: [{ name: 'ci', sha256: createHash('sha256').update(API_TOKEN).digest('hex') }],
        ...admin,
      },
    },
  );
  const t = await startTestNode({ dir, config });
  const adminEvents: TrackingEvent[] = [];
  t.node.events.subscribe((e: NodeEvent) => {
    if (e.kind === 'track' && e.event.eventId === 'ADMIN') adminEvents.push(e.event);
  });
  const address = t.node.admin?.address()[0];
  if (!address) throw new Error('the node has no admin API listening');
  const localToken = (await readFile(join(t.node.dataDir, 'admin', 'token'), 'utf8')).trim();
  return {
    t,
    port: address.port,
    base: `http://127.0.0.1:${address.port}`,
    localToken,
    adminEvents,
    busySmartHost,
    api(method, path, options = {}) {
      const token = options.token === undefined ? localToken : options.token;
      return httpCall(address.port, method, path, {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(options.body !== undefined ? { body: options.body } : {}),
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      });
    },
    async stop() {
      await t.stop();
      await new Promise((resolve) => busy.close(resolve));
      await removeDir(dir);
    },
  };
}

/** Polls until `check` returns a value (not undefined), or fails saying what it waited for. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
