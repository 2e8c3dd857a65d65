import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifyPassword } from '../../src/directory/password.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

function ferrymail(args: string[], input?: string) {
  const r = spawnSync(process.execPath, ['src/cli/main.ts', ...args], { cwd: root, input, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The command line: exit codes and messages an administrator and a script can rely on. */
describe('the ferrymail command', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-cli-');
  });
  after(() => removeDir(dir));

  it('config check accepts the demo config with exit 0 and a summary', () => {
    const r = ferrymail(['config', 'check', 'config/ferrymail.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^OK: config\/ferrymail\.yaml: 1 accepted domain\(s\), 2 mailbox\(es\), 1 alias\(es\), 1 group\(s\), 3 receive connector\(s\)/,
    );
  });

  it('config check prints every problem as file:line:column and exits 1', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'receiveConnectors:\n  - name: A\n    bindings: [nowhere]\n    colour: blue\n');
    const r = ferrymail(['config', 'check', file]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`${file}:3:16: receiveConnectors\\[0\\]\\.bindings\\[0\\]: expected an address and port`),
    );
    assert.match(
      r.stderr,
      new RegExp(`${file}:4:5: receiveConnectors\\[0\\]\\.colour: unknown field 'colour'`),
    );
  });

  it('passwd reads a password from stdin and prints a hash that verifies', async () => {
    const r = ferrymail(['passwd'], 'correct horse\n');
    assert.equal(r.code, 0, r.stderr);
    const hash = r.stdout.trim();
    assert.match(hash, /^\$scrypt\$/);
    assert.equal(await verifyPassword('correct horse', hash), true);
  });

  it('exits 2 with the usage for an unknown command, and 0 for help', () => {
    const r = ferrymail(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command: frobnicate/);
    assert.match(r.stderr, /Usage: ferrymail <command>/);
    assert.equal(ferrymail(['help']).code, 0);
  });

  it('start refuses a broken config with exit 1 before listening', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'node: [\n');
    const r = ferrymail(['start', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /broken\.yaml:\d+:\d+/);
  });
});
