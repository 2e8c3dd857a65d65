import assert from 'node:assert/strict';
import { chmod, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CliNode, startCliNode } from './cli-node.ts';
import { ferrymailAsync } from './run-cli-async.ts';

/** An unprivileged user to run the CLI as, when the tests run as root (who reads any file). */
const NOBODY = 65534;

/**
 * How the CLI reaches a node: on its host, from the config alone (admin.listen and the token
 * file only the node's user can read); otherwise --url/--token or the environment. Failing to
 * reach or authenticate is exit 3, with a message that says what to check.
 */
describe('ferrymail reaching the node', () => {
  let n: CliNode;
  before(async () => {
    n = await startCliNode();
  });
  after(() => n?.stop());

  it('finds the local node from --config alone, through a token file only its owner can read', async () => {
    const mode = (await import('node:fs/promises')).stat;
    assert.equal((await mode(n.tokenFile)).mode & 0o777, 0o600);
    assert.equal((await mode(dirname(n.tokenFile))).mode & 0o777, 0o700);
    const r = await ferrymailAsync(['queue', 'list', '--config', n.configFile]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('takes --url and --token, or FERRYMAIL_URL and FERRYMAIL_TOKEN, instead', async () => {
    const token = (await readFile(n.tokenFile, 'utf8')).trim();
    const url = `http://127.0.0.1:${n.adminPort}`;
    const flags = await ferrymailAsync([
      'queue',
      'list',
      '--url',
      url,
      '--token',
      token,
      '--config',
      '/nonexistent.yaml',
    ]);
    assert.equal(flags.code, 0, flags.stderr);
    const env = await ferrymailAsync(['trace', '--limit', '1', '--config', '/nonexistent.yaml'], {
      env: { FERRYMAIL_URL: url, FERRYMAIL_TOKEN: token },
    });
    assert.equal(env.code, 0, env.stderr);
  });

  it('exits 3 when the node refuses the token', async () => {
    const r = await ferrymailAsync(['queue', 'list', '--config', n.configFile, '--token', 'not-the-token']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^ferrymail: the node at http:\/\/127\.0\.0\.1:\d+ refused the token \(401 .*\)/);
  });

  it('exits 3 naming the token file when the user cannot read it', async (t) => {
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      await chmod(n.node.dir, 0o755); // nobody may read the config, as any user may on a host
    } else {
      await chmod(n.tokenFile, 0o000);
      t.after(() => chmod(n.tokenFile, 0o600));
    }
    // As root, run the CLI as nobody: the config is readable, the node's admin folder is not.
    const r = await ferrymailAsync(
      ['queue', 'list', '--config', n.configFile],
      asRoot ? { uid: NOBODY, gid: NOBODY, cwd: '/' } : {},
    );
    assert.equal(r.code, 3, r.stderr);
    assert.equal(
      r.stderr,
      `ferrymail: the token file ${n.tokenFile} cannot be read (permission denied): run as the node's user; or pass --token\n`,
    );
  });

  it('exits 3 when the node is stopped, asking whether it runs and saying where it looked', async () => {
    await n.stop();
    const r = await ferrymailAsync(['queue', 'list', '--config', n.configFile]);
    assert.equal(r.code, 3);
    assert.match(
      r.stderr,
      new RegExp(
        `^ferrymail: cannot reach the node at http://127\\.0\\.0\\.1:${n.adminPort} \\(.*ECONNREFUSED.*\\): is it running\\? admin\\.listen is 127\\.0\\.0\\.1:${n.adminPort} in ${n.configFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`,
      ),
    );
    assert.equal(r.stdout, '');
  });
});
