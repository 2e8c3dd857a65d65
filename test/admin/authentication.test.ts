import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_ACCOUNT,
  ADMIN_PASSWORD,
  type AdminTestNode,
  API_TOKEN,
  httpCall,
  startAdminNode,
} from './admin-fixture.ts';

/**
 * The admin API answers nobody without a bearer token: the local token file, a config API token
 * or a session from a login. Logins are rate limited per client IP and per account.
 */
describe('admin API authentication', () => {
  let node: AdminTestNode;
  before(async () => {
    node = await startAdminNode();
  });
  after(() => node.stop());

  /** Every operation of the OpenAPI document, with its path parameters filled in. */
  async function operations(): Promise<Array<{ method: string; path: string }>> {
    const doc = (await node.api('GET', '/api/v1/openapi.json')).json<{ paths: Record<string, object> }>();
    const out: Array<{ method: string; path: string }> = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        const filled = path.replace('{queue}', 'mailbox').replace('{id}', 'AAAAAAAA');
        out.push({
          method: method.toUpperCase(),
          path: method === 'delete' ? `${filled}?ndr=false` : filled,
        });
      }
    }
    return out;
  }

  it('refuses every route of the OpenAPI document without a token, with WWW-Authenticate: Bearer', async () => {
    const all = await operations();
    assert.ok(all.length >= 19, `the document lists every route (found ${all.length})`);
    for (const { method, path } of all) {
      if (path === '/api/v1/login') continue; // the one way to get a token
      const r = await node.api(method, path, { token: null });
      assert.equal(r.status, 401, `${method} ${path} without a token`);
      assert.equal(r.headers['www-authenticate'], 'Bearer', `${method} ${path} challenge`);
      assert.equal(r.json().error, 'unauthorized');
    }
  });

  it('refuses every route with a wrong token, and with a malformed Authorization header', async () => {
    for (const { method, path } of await operations()) {
      if (path === '/api/v1/login') continue;
      const r = await node.api(method, path, { token: `${node.localToken}x` });
      assert.equal(r.status, 401, `${method} ${path} with a wrong token`);
    }
    for (const authorization of [`Basic ${node.localToken}`, 'Bearer', `Bearer ${node.localToken} extra`]) {
      const r = await httpCall(node.port, 'GET', '/api/v1/status', { authorization });
      assert.equal(r.status, 401, `Authorization: ${authorization.slice(0, 12)}…`);
    }
  });

  it('refuses unknown routes without a token too (401 before 404)', async () => {
    assert.equal((await node.api('GET', '/api/v1/nothing', { token: null })).status, 401);
    const r = await node.api('GET', '/api/v1/nothing');
    assert.equal(r.status, 404);
    assert.equal(r.json().error, 'not-found');
  });

  it('writes the local token file with mode 0600 in a 0700 folder, and the token works', async () => {
    const file = join(node.t.node.dataDir, 'admin', 'token');
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'token file mode');
    assert.equal((await stat(join(node.t.node.dataDir, 'admin'))).mode & 0o777, 0o700, 'folder mode');
    assert.match(node.localToken, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
    const r = await node.api('GET', '/api/v1/status');
    assert.equal(r.status, 200);
    assert.equal(r.json().fqdn, 'mx.example.test');
  });

  it('accepts a config API token (stored in the config as its SHA-256)', async () => {
    const r = await node.api('GET', '/api/v1/status', { token: API_TOKEN });
    assert.equal(r.status, 200);
    assert.equal(r.json().name, 'test');
  });

  it('logs in an account: the session token works until it expires', async () => {
    const before = Date.now();
    const login = await node.api('POST', '/api/v1/login', {
      token: null,
      body: { username: ADMIN_ACCOUNT, password: ADMIN_PASSWORD },
    });
    assert.equal(login.status, 200, login.body.toString());
    const { token, expiresAt } = login.json<{ token: string; expiresAt: number }>();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const eightHours = 8 * 3_600_000;
    assert.ok(
      expiresAt >= before + eightHours && expiresAt <= Date.now() + eightHours,
      'default lifetime 8 h',
    );
    assert.equal((await node.api('GET', '/api/v1/status', { token })).status, 200);
  });

  it('answers a wrong password or an unknown account with 401, and a malformed login with 400', async () => {
    for (const body of [
      { username: ADMIN_ACCOUNT, password: 'wrong' },
      { username: 'nobody', password: ADMIN_PASSWORD },
    ]) {
      // Each from its own address, so these failures do not count against the other tests' IP.
      const r = await node.api('POST', '/api/v1/login', { token: null, body, localAddress: '127.0.0.9' });
      assert.equal(r.status, 401, `login ${body.username}`);
      assert.equal(r.json().error, 'unauthorized');
    }
    const r = await node.api('POST', '/api/v1/login', { token: null, body: { username: ADMIN_ACCOUNT } });
    assert.equal(r.status, 400);
    assert.match(String(r.json().message), /password/);
  });

  it('checks an unknown account name at the cost of a real password check', async () => {
    const timed = async (username: string) => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        await node.api('POST', '/api/v1/login', {
          token: null,
          body: { username, password: 'wrong' },
          localAddress: `127.0.1.${i + 1}`,
        });
        times.push(performance.now() - start);
      }
      // The fastest of five: what the work costs, without the pauses of a busy machine.
      return Math.min(...times);
    };
    const known = await timed(`${ADMIN_ACCOUNT}`);
    const unknown = await timed('nobody-at-all');
    assert.ok(
      unknown > known * 0.3,
      `unknown account ${unknown.toFixed(1)} ms vs wrong password ${known.toFixed(1)} ms`,
    );
  });
});

describe('admin login rate limit', () => {
  let node: AdminTestNode;
  before(async () => {
    node = await startAdminNode({
      loginRateLimit: { attempts: 3, window: '10m' },
      anonymousHealth: true,
    });
  });
  after(() => node.stop());

  const login = (password: string, localAddress: string, username = ADMIN_ACCOUNT) =>
    node.api('POST', '/api/v1/login', { token: null, body: { username, password }, localAddress });

  it('answers 429 with Retry-After after N failures from one IP, even for the right password', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login('wrong', '127.0.0.2', 'someone')).status, 401);
    const limited = await login(ADMIN_PASSWORD, '127.0.0.2');
    assert.equal(limited.status, 429, 'the right password is refused while the IP is limited');
    assert.equal(limited.json().error, 'rate-limited');
    const retryAfter = Number(limited.headers['retry-after']);
    assert.ok(retryAfter > 0 && retryAfter <= 600, `Retry-After ${limited.headers['retry-after']}`);
    assert.equal((await login(ADMIN_PASSWORD, '127.0.0.3')).status, 200, 'another IP is not limited');
  });

  it('limits an account after N failures, from any IP', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login('wrong', `127.0.2.${i + 1}`)).status, 401);
    const r = await login(ADMIN_PASSWORD, '127.0.3.1');
    assert.equal(r.status, 429, 'the account is limited wherever the login comes from');
    assert.ok(Number(r.headers['retry-after']) > 0);
  });

  it('verifies one login at a time per IP: parallel guesses cannot outrun the limit', async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => login('wrong', '127.0.4.1', 'parallel-guesser')),
    );
    const statuses = answers.map((a) => a.status);
    assert.ok(
      statuses.filter((s) => s === 401).length <= 3,
      `more than the limit of 3 guesses were checked in parallel: ${statuses.join(',')}`,
    );
    assert.ok(statuses.includes(429), `no parallel attempt was refused: ${statuses.join(',')}`);
  });

  it('ends a session after sessionLifetime', async () => {
    const other = await startAdminNode({ sessionLifetime: '1s' });
    try {
      const r = await other.api('POST', '/api/v1/login', {
        token: null,
        body: { username: ADMIN_ACCOUNT, password: ADMIN_PASSWORD },
      });
      const { token } = r.json<{ token: string }>();
      assert.equal((await other.api('GET', '/api/v1/status', { token })).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.equal((await other.api('GET', '/api/v1/status', { token })).status, 401, 'expired');
    } finally {
      await other.stop();
    }
  });

  it('answers health without a token when anonymousHealth is on, and nothing else', async () => {
    assert.equal((await node.api('GET', '/health/live', { token: null })).status, 200);
    const ready = await node.api('GET', '/health/ready', { token: null });
    assert.equal(ready.status, 200, ready.body.toString());
    assert.equal((await node.api('GET', '/metrics', { token: null })).status, 401);
    assert.equal((await node.api('GET', '/api/v1/status', { token: null })).status, 401);
  });
});
