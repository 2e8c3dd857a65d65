import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { type AdminServer, startAdminServer } from '../../src/admin/server.ts';
import { configSchema } from '../../src/config/schema.ts';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { hashPassword } from '../../src/directory/password.ts';
import { createEventBus } from '../../src/observe/events.ts';
import { type QueueAdmin, QueueAdminError } from '../../src/queue/admin-types.ts';
import { QueueUnavailableError } from '../../src/queue/types.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { httpCall } from './admin-fixture.ts';

const PASSWORD = 'a-password-that-must-not-be-logged';

/** A queue admin whose every call fails as the test says. */
function failingQueueAdmin(fail: () => never): QueueAdmin {
  const f = async () => fail();
  return {
    listQueues: f,
    getQueue: f,
    listMessages: f,
    getMessage: f,
    retryQueue: f,
    suspendQueue: f,
    resumeQueue: f,
    suspendMessage: f,
    resumeMessage: f,
    removeMessage: f,
    exportMessage: f,
    resubmitMessage: f,
    releasePoisonMessage: f,
  };
}

async function startWith(dir: string, queueAdmin: QueueAdmin, logger = silentLogger): Promise<AdminServer> {
  const config = configSchema.parse({
    node: { dataDir: join(dir, 'data') },
    admin: {
      listen: ['127.0.0.1:0'],
      accounts: [{ name: 'ops', passwordHash: await hashPassword(PASSWORD) }],
    },
  });
  return startAdminServer({
    config,
    logger,
    context: {
      queueAdmin,
      events: createEventBus(),
      readiness: async () => ({ queue: true, receive: true }),
      node: { name: 'n', fqdn: 'mx.example.test', startedAt: Date.now(), listeners: () => [] },
      clock: systemClock,
    },
  });
}

/** The API server on its own, over fake components: errors map to statuses, secrets stay out of logs. */
describe('admin API server over fake components', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-admin-');
  });
  after(() => removeDir(dir));

  it('never logs a token or a password, and logs one debug line per request', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const server = await startWith(
      join(dir, 'logs'),
      failingQueueAdmin(() => {
        throw new QueueAdminError('not-found', 'no queue x');
      }),
      logger,
    );
    try {
      const { port } = server.address()[0]!;
      const localToken = (await readFile(join(dir, 'logs', 'data', 'admin', 'token'), 'utf8')).trim();
      const login = await httpCall(port, 'POST', '/api/v1/login', {
        body: { username: 'ops', password: PASSWORD },
      });
      const { token } = login.json<{ token: string }>();
      await httpCall(port, 'POST', '/api/v1/login', { body: { username: 'ops', password: `${PASSWORD}!` } });
      await httpCall(port, 'GET', '/api/v1/queues/x', { authorization: `Bearer ${token}` });
      await httpCall(port, 'GET', '/api/v1/status', { authorization: `Bearer ${localToken}` });
      await httpCall(port, 'GET', '/api/v1/status', { authorization: `Bearer ${localToken}wrong` });
      const all = lines.join('\n');
      for (const secret of [PASSWORD, token, localToken])
        assert.ok(!all.includes(secret), 'a secret in the log');
      const requests = lines
        .map((l) => JSON.parse(l) as { msg: string; level: number })
        .filter((l) => l.msg === 'admin request');
      assert.equal(requests.length, 5, 'one line per request');
      assert.ok(
        requests.every((l) => l.level === 20),
        'at debug',
      );
    } finally {
      await server.close();
    }
  });

  it('maps component errors: invalid → 400, unavailable queue → 503, a bug → 500 without its details', async () => {
    const cases: Array<[() => never, number, string]> = [
      [
        () => {
          throw new QueueAdminError('invalid', 'bad queue name');
        },
        400,
        'bad-request',
      ],
      [
        () => {
          throw new QueueAdminError('conflict', 'does not apply');
        },
        409,
        'conflict',
      ],
      [
        () => {
          throw new QueueUnavailableError('queue is closed');
        },
        503,
        'unavailable',
      ],
      [
        () => {
          throw new TypeError('secret internal detail');
        },
        500,
        'internal',
      ],
    ];
    for (const [i, [fail, status, code]] of cases.entries()) {
      const server = await startWith(join(dir, `errors-${i}`), failingQueueAdmin(fail));
      try {
        const { port } = server.address()[0]!;
        const token = (await readFile(join(dir, `errors-${i}`, 'data', 'admin', 'token'), 'utf8')).trim();
        const r = await httpCall(port, 'GET', '/api/v1/queues', { authorization: `Bearer ${token}` });
        assert.equal(r.status, status, r.body.toString());
        assert.equal(r.json().error, code);
        if (status === 500) assert.ok(!r.body.toString().includes('secret internal detail'));
      } finally {
        await server.close();
      }
    }
  });

  it('takes an empty JSON body as no body, and refuses a body that is not JSON with 400', async () => {
    const server = await startWith(
      join(dir, 'bodies'),
      failingQueueAdmin(() => {
        throw new QueueAdminError('not-found', 'no queue x');
      }),
    );
    try {
      const { port } = server.address()[0]!;
      const token = (await readFile(join(dir, 'bodies', 'data', 'admin', 'token'), 'utf8')).trim();
      const post = (path: string, body: string) =>
        fetch(`http://127.0.0.1:${port}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body,
        });
      assert.equal((await post('/api/v1/queues/x/retry', '')).status, 404, 'reached the queue admin');
      const garbled = await post('/api/v1/login', '{"username": ');
      assert.equal(garbled.status, 400);
      const answer = (await garbled.json()) as { error: string; message: string };
      assert.equal(answer.error, 'bad-request');
      assert.match(answer.message, /not JSON/);
      const empty = await post('/api/v1/login', '');
      assert.equal(empty.status, 400, 'login still needs its body');
    } finally {
      await server.close();
    }
  });

  it('keeps an existing token file, tightening loose permissions, and replaces one that holds no token', async () => {
    const folder = join(dir, 'existing', 'data', 'admin');
    await mkdir(folder, { recursive: true });
    const kept = 'A'.repeat(43);
    await writeFile(join(folder, 'token'), `${kept}\n`, { mode: 0o644 });
    await chmod(join(folder, 'token'), 0o644);
    const noop = failingQueueAdmin(() => {
      throw new Error('unused');
    });
    let server = await startWith(join(dir, 'existing'), noop);
    await server.close();
    assert.equal((await readFile(join(folder, 'token'), 'utf8')).trim(), kept);
    assert.equal((await stat(join(folder, 'token'))).mode & 0o777, 0o600);

    await writeFile(join(folder, 'token'), 'half');
    server = await startWith(join(dir, 'existing'), noop);
    await server.close();
    const replaced = (await readFile(join(folder, 'token'), 'utf8')).trim();
    assert.match(replaced, /^[A-Za-z0-9_-]{43}$/);
  });

  it('closes promptly with a keep-alive connection open', async () => {
    const server = await startWith(
      join(dir, 'close'),
      failingQueueAdmin(() => {
        throw new Error('unused');
      }),
    );
    const { port } = server.address()[0]!;
    // fetch keeps its connection alive after the answer.
    await fetch(`http://127.0.0.1:${port}/health/live`);
    const start = Date.now();
    await server.close();
    assert.ok(Date.now() - start < 1500, `closed in ${Date.now() - start} ms`);
  });
});
