import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { connector, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** Starting, inspecting and stopping the receive server. */
describe('the receive server', () => {
  it('listens on every binding of every enabled connector and reports the real ports', async () => {
    const h = await startReceiveHarness([
      connector({ name: 'One', bindings: ['127.0.0.1:0', '127.0.0.2:0'] }),
      connector({ name: 'Off', enabled: false }),
    ]);
    try {
      const addresses = h.server.addresses();
      assert.deepEqual(
        addresses.map((a) => [a.connector, a.binding, a.host]),
        [
          ['One', '127.0.0.1:0', '127.0.0.1'],
          ['One', '127.0.0.2:0', '127.0.0.2'],
        ],
      );
      assert.ok(addresses.every((a) => a.port > 0));
      for (const a of addresses) {
        const c = await SmtpTestClient.connect(a.port, { host: a.host });
        assert.equal((await c.greeting()).code, 220);
        c.close();
      }
    } finally {
      await h.close();
    }
  });

  it('serves an IPv6 binding and matches IPv6 remote ranges', async () => {
    const h = await startReceiveHarness([
      connector({ name: 'Six', bindings: ['[::1]:0'], remoteRanges: ['::1'] }),
    ]);
    try {
      const c = await SmtpTestClient.connect(h.port(), { host: '::1' });
      assert.equal((await c.greeting()).code, 220);
      assert.match((await c.command('EHLO six.test')).lines[0]!, /\[::1\]$/);
      c.close();
    } finally {
      await h.close();
    }
  });

  it('treats an IPv4 client on an all-addresses listener as IPv4, not ::ffff:', async () => {
    const h = await startReceiveHarness([
      connector({ name: 'All', bindings: [':0'], remoteRanges: ['127.0.0.1'] }),
    ]);
    try {
      const c = await SmtpTestClient.connect(h.port());
      assert.equal((await c.greeting()).code, 220);
      assert.match((await c.command('EHLO four.test')).lines[0]!, /\[127\.0\.0\.1\]$/);
      c.close();
    } finally {
      await h.close();
    }
  });

  it('counts sessions, and on close says 421 4.3.2 to each and stops listening', async () => {
    const h = await startReceiveHarness([connector()]);
    const port = h.port();
    const a = await SmtpTestClient.connect(port);
    const b = await SmtpTestClient.connect(port);
    await a.greeting();
    await b.greeting();
    await a.command('EHLO a.test');
    assert.equal(h.server.sessionCount(), 2);
    const closed = h.close();
    for (const c of [a, b]) {
      const bye = await c.reply();
      assert.equal(bye.code, 421);
      assert.match(bye.text, /^4\.3\.2 .*shutting down/);
      await c.closed();
    }
    await closed;
    assert.equal(h.server.sessionCount(), 0);
    await assert.rejects(SmtpTestClient.connect(port), /ECONNREFUSED/);
  });

  it('does not wait for an implicit-TLS handshake that never comes when closing', async () => {
    const h = await startReceiveHarness([connector({ tls: { mode: 'implicit', required: false } })]);
    const raw = connect({ host: '127.0.0.1', port: h.port() });
    raw.on('error', () => undefined);
    await new Promise((resolve) => raw.once('connect', resolve));
    const started = Date.now();
    await h.close();
    assert.ok(Date.now() - started < 1000, `close took ${Date.now() - started} ms`);
    raw.destroy();
  });

  it('refuses to start on a remote range it cannot read, naming the connector', async () => {
    await assert.rejects(
      startReceiveHarness([connector({ name: 'Broken', remoteRanges: ['10.0.0.0/99'] })]),
      /receive connector Broken: bad remote range 10\.0\.0\.0\/99/,
    );
  });

  it('refuses to start on a port that is taken', async () => {
    const h = await startReceiveHarness([connector()]);
    try {
      await assert.rejects(
        startReceiveHarness([connector({ bindings: [`127.0.0.1:${h.port()}`] })]),
        /cannot listen: .*EADDRINUSE/,
      );
    } finally {
      await h.close();
    }
  });
});
