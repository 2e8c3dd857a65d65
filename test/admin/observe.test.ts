import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { submit } from '../delivery/smtp-delivery/outbound-fixture.ts';
import { type AdminTestNode, eventually, startAdminNode } from './admin-fixture.ts';

/** Every route docs/admin-api.md promises, as the OpenAPI document must list it. */
const ROUTES = [
  'post /api/v1/login',
  'get /api/v1/status',
  'get /api/v1/queues',
  'get /api/v1/queues/{queue}',
  'post /api/v1/queues/{queue}/retry',
  'post /api/v1/queues/{queue}/suspend',
  'post /api/v1/queues/{queue}/resume',
  'get /api/v1/messages',
  'get /api/v1/messages/{id}',
  'delete /api/v1/messages/{id}',
  'get /api/v1/messages/{id}/eml',
  'post /api/v1/messages/{id}/suspend',
  'post /api/v1/messages/{id}/resume',
  'post /api/v1/messages/{id}/resubmit',
  'post /api/v1/messages/{id}/release',
  'get /api/v1/tracking',
  'get /metrics',
  'get /health/live',
  'get /health/ready',
  'get /api/v1/openapi.json',
];

/** Message tracking, metrics, health, status and the OpenAPI document, on a real node. */
describe('admin API: tracking, metrics, health, OpenAPI', () => {
  let node: AdminTestNode;
  before(async () => {
    node = await startAdminNode();
  });
  after(() => node.stop());

  it('serves an OpenAPI 3 document listing every route with its schemas', async () => {
    const r = await node.api('GET', '/api/v1/openapi.json');
    assert.equal(r.status, 200);
    const doc = JSON.parse(r.body.toString('utf8')) as {
      openapi: string;
      paths: Record<string, Record<string, { responses?: object; parameters?: unknown[] }>>;
      components: { securitySchemes: Record<string, unknown> };
      security: unknown[];
    };
    assert.match(doc.openapi, /^3\./);
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m} ${path}`),
    );
    assert.deepEqual(listed.sort(), [...ROUTES].sort());
    assert.deepEqual(doc.security, [{ bearer: [] }], 'bearer auth for every operation by default');
    assert.ok(doc.components.securitySchemes.bearer);
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        assert.ok(
          op.responses && Object.keys(op.responses).length > 0,
          `${method} ${path} documents its answers`,
        );
      }
    }
    const list = doc.paths['/api/v1/messages']!.get!.parameters as Array<{ name: string; in: string }>;
    assert.deepEqual(list.map((p) => p.name).sort(), [
      'after',
      'limit',
      'queue',
      'receivedAfter',
      'receivedBefore',
      'recipient',
      'sender',
      'status',
      'subject',
    ]);
  });

  it('reports the node: name, fqdn, version, uptime and its listeners', async () => {
    const r = await node.api('GET', '/api/v1/status');
    assert.equal(r.status, 200);
    const status = r.json<{
      name: string;
      fqdn: string;
      version: string;
      uptimeSeconds: number;
      listeners: Array<{ kind: string; connector?: string; port: number }>;
    }>();
    assert.equal(status.name, 'test');
    assert.equal(status.fqdn, 'mx.example.test');
    assert.match(status.version, /^\d+\.\d+\.\d+/);
    assert.ok(status.uptimeSeconds >= 0);
    assert.ok(status.listeners.some((l) => l.kind === 'admin' && l.port === node.port));
    assert.ok(
      status.listeners.some(
        (l) => l.kind === 'receive' && l.connector === 'Default' && l.port === node.t.port('Default'),
      ),
    );
  });

  it('finds the RECEIVE event of a message just sent, by queue id', async () => {
    const id = await submit(node.t.port('Default'), 'someone@elsewhere.test', ['alice@example.test']);
    const events = await eventually('the RECEIVE event in the tracking log', async () => {
      const r = await node.api('GET', `/api/v1/tracking?internalId=${id}&eventId=RECEIVE`);
      assert.equal(r.status, 200, r.body.toString());
      const page = r.json<{
        events: Array<{ eventId: string; sender: string; recipients: string[]; seq: number }>;
      }>();
      return page.events.length > 0 ? page.events : undefined;
    });
    assert.equal(events[0]!.eventId, 'RECEIVE');
    assert.equal(events[0]!.sender, 'someone@elsewhere.test');
    assert.deepEqual(events[0]!.recipients, ['alice@example.test']);
    assert.equal(typeof events[0]!.seq, 'number');
    // The same search by time window and sender, times as ISO 8601 and as ms.
    const since = new Date(Date.now() - 60_000).toISOString();
    const r = await node.api(
      'GET',
      `/api/v1/tracking?start=${encodeURIComponent(since)}&end=${Date.now() + 60_000}&sender=someone%40elsewhere.test&eventId=RECEIVE`,
    );
    assert.equal(r.status, 200);
    assert.ok(r.json<{ events: Array<{ internalId: string }> }>().events.some((e) => e.internalId === id));
  });

  it('refuses malformed tracking searches with 400 and the reason', async () => {
    const cases: Array<[string, RegExp]> = [
      ['limit=0', /limit/],
      ['limit=many', /limit/],
      ['limit=5001', /limit/],
      ['start=last-tuesday', /start.*ISO 8601/],
      ['end=2026-12-01T10:00', /end.*offset/],
      ['eventId=EXPLODE', /eventId/],
      ['sendr=x', /additional properties/],
      ['cursor=%25%25not-a-cursor', /cursor/i],
    ];
    for (const [query, reason] of cases) {
      const r = await node.api('GET', `/api/v1/tracking?${query}`);
      assert.equal(r.status, 400, `${query}: ${r.body.toString()}`);
      assert.equal(r.json().error, 'bad-request');
      assert.match(String(r.json().message), reason, query);
    }
  });

  it('serves Prometheus metrics with ferrymail_ series and their content type', async () => {
    const r = await node.api('GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain/);
    assert.match(r.body.toString('utf8'), /^ferrymail_\w+/m);
  });

  it('answers liveness and readiness, and readiness fails once a receive connector stops listening', async () => {
    const live = await node.api('GET', '/health/live');
    assert.equal(live.status, 200);
    assert.deepEqual(live.json(), { status: 'ok' });
    const ready = await node.api('GET', '/health/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json(), { status: 'ok', checks: { queue: true, receive: true } });

    await node.t.node.receive.close();
    const notReady = await node.api('GET', '/health/ready');
    assert.equal(notReady.status, 503);
    assert.deepEqual(notReady.json(), { status: 'unavailable', checks: { queue: true, receive: false } });
  });
});
