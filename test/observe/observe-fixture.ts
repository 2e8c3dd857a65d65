import assert from 'node:assert/strict';
import type {
  EventBus,
  NodeEvent,
  ProtocolEvent,
  TrackingEvent,
  TrackingEventId,
} from '../../src/observe/events.ts';
import { TEST_PASSWORD } from '../helpers/node-fixture.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** Every event of a bus, kept in order, with a way to wait for the one a test expects. */
export class EventLog {
  readonly events: NodeEvent[] = [];
  readonly #waiters = new Set<() => void>();
  readonly unsubscribe: () => void;

  constructor(bus: EventBus) {
    this.unsubscribe = bus.subscribe((event) => {
      this.events.push(event);
      for (const w of this.#waiters) w();
    });
  }

  tracking(filter: Partial<Pick<TrackingEvent, 'eventId' | 'internalId'>> = {}): TrackingEvent[] {
    return this.events.flatMap((e) =>
      e.kind === 'track' &&
      (filter.eventId === undefined || e.event.eventId === filter.eventId) &&
      (filter.internalId === undefined || e.event.internalId === filter.internalId)
        ? [e.event]
        : [],
    );
  }

  protocol<K extends ProtocolEvent['kind']>(kind: K): Array<Extract<ProtocolEvent, { kind: K }>> {
    return this.events.filter((e): e is Extract<ProtocolEvent, { kind: K }> => e.kind === kind);
  }

  /** The first tracking event of that id (for that message, if given), waiting for it if need be. */
  async track(eventId: TrackingEventId, internalId?: string, timeoutMs = 10_000): Promise<TrackingEvent> {
    return this.until(
      () => this.tracking({ eventId, ...(internalId !== undefined ? { internalId } : {}) })[0],
      `${eventId}${internalId ? ` for ${internalId}` : ''}`,
      timeoutMs,
    );
  }

  /** Resolves with `find()` once it returns something; re-checked on every event. */
  async until<T>(find: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.tracking().map((e) => `${e.eventId}:${e.internalId}`);
        throw new Error(`no ${what} event in time; tracking events seen: ${seen.join(' ') || 'none'}`);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 200));
        this.#waiters.add(done);
      });
    }
  }
}

export const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** One message over a fresh connection; returns the queue id from the 250 reply. */
export async function send(
  port: number,
  options: {
    from: string;
    to: ReadonlyArray<string>;
    subject?: string;
    messageId?: string;
    helo?: string;
    /** AUTH PLAIN as this user (TEST_PASSWORD) before MAIL. */
    authUser?: string;
  },
): Promise<string> {
  const c = await SmtpTestClient.connect(port);
  try {
    assert.equal((await c.greeting()).code, 220);
    assert.equal((await c.command(`EHLO ${options.helo ?? 'client.example.test'}`)).code, 250);
    if (options.authUser) {
      const r = await c.command(`AUTH PLAIN ${b64(`\0${options.authUser}\0${TEST_PASSWORD}`)}`);
      assert.equal(r.code, 235, r.text);
    }
    assert.equal((await c.command(`MAIL FROM:<${options.from}>`)).code, 250);
    for (const r of options.to) assert.equal((await c.command(`RCPT TO:<${r}>`)).code, 250, `RCPT ${r}`);
    assert.equal((await c.command('DATA')).code, 354);
    const headers = [
      `From: <${options.from}>`,
      `Subject: ${options.subject ?? 'observed'}`,
      `Message-ID: ${options.messageId ?? `<${Math.random().toString(36).slice(2)}@client.example.test>`}`,
    ];
    const reply = await c.command(`${headers.join('\r\n')}\r\n\r\nHello.\r\n.`);
    assert.equal(reply.code, 250, reply.text);
    await c.command('QUIT');
    const id = /queued as ([0-9A-Za-z]+)/.exec(reply.text)?.[1];
    assert.ok(id, `a queue id in ${reply.text}`);
    return id;
  } finally {
    c.close();
  }
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the text format (version 0.0.4): `name{a="x",b="y"} value`, comments skipped. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with that name and exactly those labels (undefined: no such series). */
export function sample(
  samples: ReadonlyArray<Sample>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === wanted.length &&
      wanted.every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `several samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/**
 * The demo-like node plus a `Relay` connector for 127.0.0.1, three smart-host send connectors
 * (`Partner` for partner.test, `Broken` for fail.test, `Later` for later.test, each to the port
 * given), the alias desk@example.test → desk@partner.test (outside the organisation), and no
 * failed-login tarpit on `Client`.
 */
export function observedConfig(
  base: Record<string, unknown> & { receiveConnectors: Array<Record<string, unknown>> },
  ports: { partner: number; broken: number; later: number },
): Record<string, unknown> {
  const smartHost = (name: string, domain: string, port: number) => ({
    name,
    addressSpaces: [domain],
    routing: { type: 'smartHost', hosts: [`127.0.0.1:${port}`] },
  });
  return {
    ...base,
    aliases: [...(base.aliases as unknown[]), { address: 'desk@example.test', target: 'desk@partner.test' }],
    receiveConnectors: [
      ...base.receiveConnectors.map((c) =>
        c.name === 'Client' ? { ...c, limits: { tarpitInterval: 0, maxLogonFailures: 10 } } : c,
      ),
      {
        name: 'Relay',
        bindings: ['127.0.0.1:0'],
        remoteRanges: ['127.0.0.1/32'],
        permissionGroups: { anonymous: ['submit', 'relay'] },
        tls: { mode: 'none' },
      },
    ],
    sendConnectors: [
      smartHost('Partner', 'partner.test', ports.partner),
      smartHost('Broken', 'fail.test', ports.broken),
      smartHost('Later', 'later.test', ports.later),
    ],
  };
}
