import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient, listenUrl, normalizeUrl, resolveTarget } from '../../src/cli/admin-client.ts';
import { CliError } from '../../src/cli/errors.ts';
import { freePort, makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const TOKEN = 'A'.repeat(43);

async function writeConfig(dir: string, name: string, admin: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `node:\n  dataDir: ./data-${name}\n${admin}`);
  return file;
}

function rejectsWith(exitCode: number, message: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CliError, `expected a CliError, got ${String(e)}`);
    assert.equal(e.exitCode, exitCode, e.message);
    assert.match(e.message, message);
    return true;
  };
}

/** How the CLI finds the node: flags, then environment, then the config and its token file. */
describe('CLI admin client: finding the node', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-cli-client-');
  });
  after(() => removeDir(dir));

  it('takes --url and --token as given, without reading any config', async () => {
    const t = await resolveTarget(
      { url: '127.0.0.1:9000/', token: 't1', config: join(dir, 'absent.yaml') },
      {},
    );
    assert.deepEqual(t, {
      baseUrl: 'http://127.0.0.1:9000',
      token: 't1',
      origin: '--url http://127.0.0.1:9000',
    });
  });

  it('takes FERRYMAIL_URL and FERRYMAIL_TOKEN from the environment, flags winning over them', async () => {
    const env = { FERRYMAIL_URL: 'https://node.example:8443', FERRYMAIL_TOKEN: 'env-token' };
    const t = await resolveTarget({ config: join(dir, 'absent.yaml') }, env);
    assert.equal(t.baseUrl, 'https://node.example:8443');
    assert.equal(t.token, 'env-token');
    assert.equal((await resolveTarget({ token: 'flag' }, env)).token, 'flag');
  });

  it('never sends the local token file to an address given by hand (exit 3, asking for --token)', async () => {
    const file = await writeConfig(dir, 'url-only.yaml', 'admin:\n  listen: ["127.0.0.1:8125"]\n');
    await mkdir(join(dir, 'data-url-only.yaml', 'admin'), { recursive: true });
    await writeFile(join(dir, 'data-url-only.yaml', 'admin', 'token'), `${TOKEN}\n`, { mode: 0o600 });
    await assert.rejects(
      resolveTarget({ url: 'http://other-node.example:8025', config: file }, {}),
      rejectsWith(3, /--url http:\/\/other-node\.example:8025, but no token was given: pass --token/),
    );
    await assert.rejects(
      resolveTarget({ config: file }, { FERRYMAIL_URL: 'http://other-node.example:8025' }),
      rejectsWith(3, /FERRYMAIL_URL is .*but no token was given/),
    );
  });

  it('reads the first admin.listen and <dataDir>/admin/token of the config', async () => {
    const file = await writeConfig(
      dir,
      'a.yaml',
      `admin:\n  listen: ["0.0.0.0:8125", "127.0.0.1:8126"]\n  tokens: [{ name: ops, sha256: "${'0'.repeat(64)}" }]\n`,
    );
    await mkdir(join(dir, 'data-a.yaml', 'admin'), { recursive: true });
    await writeFile(join(dir, 'data-a.yaml', 'admin', 'token'), `${TOKEN}\n`, { mode: 0o600 });
    const t = await resolveTarget({ config: file }, {});
    assert.equal(t.baseUrl, 'http://127.0.0.1:8125', 'a wildcard listener is reached on loopback');
    assert.equal(t.token, TOKEN, 'the trailing newline is not part of the token');
    assert.match(t.origin, /admin\.listen is 0\.0\.0\.0:8125 in .*a\.yaml/);
  });

  it('says which token file is missing (exit 3)', async () => {
    const file = await writeConfig(dir, 'b.yaml', 'admin:\n  listen: ["127.0.0.1:8125"]\n');
    await assert.rejects(
      resolveTarget({ config: file }, {}),
      rejectsWith(3, /the token file .*data-b\.yaml\/admin\/token does not exist .*or pass --token/),
    );
  });

  it('says so when the config serves no admin API, or cannot be loaded (exit 3)', async () => {
    const file = await writeConfig(dir, 'c.yaml', '');
    await assert.rejects(resolveTarget({ config: file }, {}), rejectsWith(3, /c\.yaml has no admin\.listen/));
    await assert.rejects(
      resolveTarget({ config: join(dir, 'none.yaml') }, {}),
      rejectsWith(3, /cannot find the node: .*none\.yaml.*file not found/s),
    );
  });

  it('turns bindings and --url values into URLs, refusing what is not http(s)', () => {
    assert.equal(listenUrl('[::]:8025'), 'http://[::1]:8025');
    assert.equal(listenUrl('[2001:db8::1]:8025'), 'http://[2001:db8::1]:8025');
    assert.equal(listenUrl('10.0.0.5:8025'), 'http://10.0.0.5:8025');
    assert.equal(normalizeUrl('http://h:1/base/'), 'http://h:1/base');
    assert.throws(() => normalizeUrl('ftp://h'), /expected http:\/\/ or https:\/\//);
    assert.throws(() => normalizeUrl('http://'), /--url: not a URL/);
  });
});

/** The client's requests and how it reports the node's answers. */
describe('CLI admin client: talking to the node', () => {
  let server: Server;
  let base: string;
  const seen: IncomingMessage[] = [];
  before(async () => {
    server = createServer((request, response) => {
      seen.push(request);
      const json = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (request.headers.authorization !== `Bearer ${TOKEN}`)
        return json(401, { error: 'unauthorized', message: 'bad token' });
      if (request.url?.startsWith('/api/v1/queues')) return json(200, { queues: [] });
      if (request.url === '/api/v1/messages/GONE')
        return json(404, { error: 'not-found', message: 'no message GONE' });
      if (request.url === '/api/v1/messages/X/release')
        return json(409, { error: 'conflict', message: 'X is not in Poison' });
      if (request.url === '/api/v1/messages/X/suspend') return response.writeHead(204).end();
      if (request.url === '/plain') return response.writeHead(502).end('Bad Gateway from a proxy');
      return json(500, { error: 'internal', message: 'internal error' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const client = (token = TOKEN) => new AdminClient({ baseUrl: base, token, origin: 'test origin' });

  it('sends the bearer token and the query, and parses the JSON answer', async () => {
    const answer = await client().getJson('/api/v1/queues', { a: 'x y', skip: undefined, n: 5 });
    assert.deepEqual(answer, { queues: [] });
    const request = seen.at(-1)!;
    assert.equal(request.url, '/api/v1/queues?a=x+y&n=5');
    assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
  });

  it('resolves a 204 to undefined', async () => {
    assert.equal(await client().change('POST', '/api/v1/messages/X/suspend'), undefined);
  });

  it('reports a refused token as exit 3', async () => {
    await assert.rejects(
      client('wrong').getJson('/api/v1/queues'),
      rejectsWith(3, /refused the token \(401 bad token\)/),
    );
  });

  it("reports the API's refusals with its message as exit 1", async () => {
    await assert.rejects(
      client().getJson('/api/v1/messages/GONE'),
      rejectsWith(1, /^no message GONE \(404\)$/),
    );
    await assert.rejects(
      client().change('POST', '/api/v1/messages/X/release'),
      rejectsWith(1, /^X is not in Poison \(409\)$/),
    );
    await assert.rejects(client().getJson('/plain'), rejectsWith(1, /^Bad Gateway from a proxy \(502\)$/));
  });

  it('reports a node that does not listen as exit 3, asking whether it runs and where it was looked for', async () => {
    const port = await freePort();
    const c = new AdminClient({
      baseUrl: `http://127.0.0.1:${port}`,
      token: TOKEN,
      origin: 'admin.listen is X in Y',
    });
    await assert.rejects(
      c.getJson('/api/v1/queues'),
      rejectsWith(
        3,
        new RegExp(
          `cannot reach the node at http://127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\): is it running\\? admin\\.listen is X in Y`,
        ),
      ),
    );
  });

  it('explains a port fetch will not use, instead of "bad port"', async () => {
    const c = new AdminClient({
      baseUrl: 'http://127.0.0.1:6000',
      token: TOKEN,
      origin: 'admin.listen is X',
    });
    await assert.rejects(
      c.getJson('/api/v1/queues'),
      rejectsWith(3, /fetch refuses port 6000, a port browsers block/),
    );
  });
});
