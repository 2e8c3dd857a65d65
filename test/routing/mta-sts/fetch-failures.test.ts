import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MtaStsLookup } from '../../../src/routing/mta-sts/index.ts';
import {
  makeCertificates,
  POLICY,
  type PolicyServer,
  startPolicyServer,
  startWorld,
  stsZone,
  type TestCertificates,
  type World,
} from './fixture.ts';

/**
 * RFC 8461 §3.3: a policy counts only if fetched over HTTPS with a valid certificate for
 * mta-sts.<domain>, as a 200 text/plain answer, within a size cap and a time limit, and if it
 * parses. Anything else is a failed fetch: with nothing cached, a temporary result; never a throw.
 */
describe('a policy fetch that fails in any way is a temporary result, never a crash', () => {
  let certs: TestCertificates;
  let world: World;
  const extra: PolicyServer[] = [];
  let id = 0;

  before(async () => {
    certs = await makeCertificates();
    world = await startWorld(certs.ca, await certs.forName('mta-sts.example.test'));
  });
  after(async () => {
    await Promise.all(extra.map((s) => s.close()));
    await world.close();
  });

  /** A fresh policy id and an empty cache each time, so no earlier success is used. */
  async function lookupWith(options: Parameters<World['policies']>[0] = {}): Promise<MtaStsLookup> {
    world.dns.set(stsZone(`id${++id}`));
    return world
      .policies({ cacheFile: join(world.dir, `cache-${id}.json`), ...options })
      .lookup('example.test');
  }

  function assertTemporary(result: MtaStsLookup, pattern: RegExp): void {
    assert.equal(result.kind, 'temporary', JSON.stringify(result));
    if (result.kind === 'temporary') assert.match(result.reason, pattern);
  }

  async function serverWith(pair: { cert: string; key: string }): Promise<PolicyServer> {
    const server = await startPolicyServer(pair);
    server.serve(POLICY);
    extra.push(server);
    return server;
  }

  it('the same policy served correctly is accepted (so the failures below are the cause)', async () => {
    world.https.serve(POLICY);
    assert.equal((await lookupWith()).kind, 'policy');
  });

  it('refuses a certificate that does not chain to a trusted root', async () => {
    const server = await serverWith(await certs.untrusted('mta-sts.example.test'));
    const result = await lookupWith({
      https: { ca: certs.ca, connectTo: () => ({ address: '127.0.0.1', port: server.port }) },
    });
    assertTemporary(result, /certificate/i);
    assert.equal(server.requests.length, 0, 'no request is sent over an unverified connection');
  });

  it('refuses a trusted certificate for another name, including the bare domain', async () => {
    for (const name of ['mta-sts.other.test', 'example.test', '*.mta-sts.example.test']) {
      const server = await serverWith(await certs.forName(name));
      const result = await lookupWith({
        https: { ca: certs.ca, connectTo: () => ({ address: '127.0.0.1', port: server.port }) },
      });
      assertTemporary(result, /not valid for mta-sts\.example\.test/);
      assert.equal(server.requests.length, 0, name);
    }
  });

  it('refuses a certificate that names the policy host only in its subject CN', async () => {
    const pair = await certs.commonNameOnly('mta-sts.example.test');
    const { X509Certificate } = await import('node:crypto');
    assert.equal(new X509Certificate(pair.cert).subjectAltName, undefined, 'the test certificate has no SAN');
    const server = await serverWith(pair);
    const result = await lookupWith({
      https: { ca: certs.ca, connectTo: () => ({ address: '127.0.0.1', port: server.port }) },
    });
    assertTemporary(result, /not valid for mta-sts\.example\.test/);
  });

  it('accepts a wildcard certificate for *.example.test (one leftmost label)', async () => {
    const server = await serverWith(await certs.forName('*.example.test'));
    const result = await lookupWith({
      https: { ca: certs.ca, connectTo: () => ({ address: '127.0.0.1', port: server.port }) },
    });
    assert.equal(result.kind, 'policy');
  });

  it('does not follow a redirect, even to a valid policy', async () => {
    world.https.handle = (req, res) => {
      if (req.url === '/.well-known/mta-sts.txt')
        res.writeHead(301, { location: 'https://mta-sts.example.test/moved.txt' }).end();
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(POLICY);
    };
    const before = world.https.requests.length;
    assertTemporary(await lookupWith(), /HTTP status 301 \(redirects are not followed\)/);
    assert.equal(world.https.requests.length, before + 1);
  });

  it('refuses any status but 200', async () => {
    for (const status of [204, 404, 500]) {
      world.https.handle = (_req, res) => {
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 204 ? undefined : POLICY);
      };
      assertTemporary(await lookupWith(), new RegExp(`HTTP status ${status}`));
    }
  });

  it('refuses a content type other than text/plain', async () => {
    for (const type of ['text/html', 'application/octet-stream', '']) {
      world.https.handle = (_req, res) => {
        res.writeHead(200, type === '' ? {} : { 'content-type': type }).end(POLICY);
      };
      assertTemporary(await lookupWith(), /is not text\/plain/);
    }
  });

  it('refuses a body over the size cap, whether announced by Content-Length or streamed', async () => {
    const big = `${POLICY}${'# padding\r\n'.repeat(200)}`;
    world.https.handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(big) }).end(big);
    };
    assertTemporary(await lookupWith({ maxBodySize: 1024 }), /larger than 1024 bytes/);
    // A body that never ends: only the cap, not the timeout, may end the fetch.
    const timers: NodeJS.Timeout[] = [];
    world.https.handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(POLICY);
      timers.push(setInterval(() => res.write('# more\r\n'.repeat(20)), 5));
      res.on('close', () => timers.forEach(clearInterval));
    };
    try {
      assertTemporary(await lookupWith({ maxBodySize: 1024, timeout: 1500 }), /larger than 1024 bytes/);
    } finally {
      timers.forEach(clearInterval);
    }
    world.https.serve(big);
    assert.equal((await lookupWith({ maxBodySize: 4096 })).kind, 'policy', 'the same body fits a larger cap');
  });

  it('refuses a malformed policy', async () => {
    const bodies = [
      'mode: enforce\nmx: mx1.example.test\nmax_age: 86400\n',
      'version: STSv2\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n',
      'version: STSv1\nmode: enforcing\nmx: mx1.example.test\nmax_age: 86400\n',
      'version: STSv1\nmode: enforce\nmax_age: 86400\n',
      'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 31557601\n',
      'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: soon\n',
      'version: STSv1\nmode: enforce\nmx: mx1..example.test\nmax_age: 86400\n',
      '<html>not a policy</html>',
    ];
    for (const body of bodies) {
      world.https.serve(body);
      assertTemporary(await lookupWith(), /invalid policy/);
    }
  });

  it('gives up after the timeout when the policy host never answers', async () => {
    world.https.handle = () => {};
    const started = Date.now();
    assertTemporary(await lookupWith({ timeout: 300 }), /timed out after 300 ms/);
    assert.ok(Date.now() - started < 2_000);
  });

  it('gives up after the timeout even when an injected fetcher ignores the signal', async () => {
    const result = await lookupWith({ timeout: 100, fetchPolicy: () => new Promise(() => {}) });
    assertTemporary(result, /timed out after 100 ms/);
  });

  it('turns a fetcher that throws, or answers too much, into a failure', async () => {
    assertTemporary(
      await lookupWith({
        fetchPolicy: () => {
          throw new Error('boom');
        },
      }),
      /boom/,
    );
    assertTemporary(
      await lookupWith({
        maxBodySize: 10,
        fetchPolicy: async () => ({ status: 200, contentType: 'text/plain', body: Buffer.from(POLICY) }),
      }),
      /larger than 10 bytes/,
    );
  });

  it('is temporary when the policy host refuses connections', async () => {
    const server = await serverWith(await certs.forName('mta-sts.example.test'));
    const port = server.port;
    await server.close();
    assertTemporary(
      await lookupWith({ https: { ca: certs.ca, connectTo: () => ({ address: '127.0.0.1', port }) } }),
      /ECONNREFUSED/,
    );
  });
});
