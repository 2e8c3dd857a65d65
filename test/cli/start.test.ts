import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { ferrymail, MAIN } from './run-cli.ts';

const CONFIG = `node:
  fqdn: mx.example.test
  dataDir: ./state
acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
receiveConnectors:
  - name: Default
    bindings: ["127.0.0.1:0"]
`;

/** `ferrymail start`: a node that runs until SIGINT/SIGTERM, or refuses a bad config before listening. */
describe('ferrymail start', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-start-');
  });
  after(() => removeDir(dir));

  it('runs the node until SIGTERM, then stops it and exits 0', async () => {
    const file = join(dir, 'ferrymail.yaml');
    await writeFile(file, CONFIG);
    const child = spawn(process.execPath, [MAIN, 'start', '--config', file], {
      env: { ...process.env, FERRYMAIL_LOG: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString('utf8');
          if (output.includes('ferrymail node started')) resolve();
        });
        child.on('exit', () => reject(new Error(`exited early: ${output}`)));
      });
      assert.match(output, /"connector":"Default","host":"127\.0\.0\.1","port":\d+/);
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.match(output, /ferrymail node stopped/);
      assert.ok((await stat(join(dir, 'state', 'tls', 'selfsigned.key'))).isFile(), 'state under dataDir');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses a broken config with exit 1 and its problems', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'node:\n  logLevel: loud\n');
    const r = ferrymail(['start', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:13: node\\.logLevel: `),
    );
  });

  it('reads config/ferrymail.yaml of the current directory by default', async () => {
    const cwd = join(dir, 'cwd');
    await mkdir(join(cwd, 'config'), { recursive: true });
    await writeFile(join(cwd, 'config', 'ferrymail.yaml'), 'colour: blue\n');
    const r = ferrymail(['start'], { cwd });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${join(cwd, 'config', 'ferrymail.yaml')}:1:1: colour: unknown field 'colour'\n`);
  });
});
