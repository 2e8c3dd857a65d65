import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'nmap-open-relay.sh');
const nmap = spawnSync('nmap', ['--version'], { encoding: 'utf8' });
const skip = nmap.status === 0 ? false : 'nmap is not installed (Debian package nmap; .ci/run installs it)';

function run(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString('utf8');
    });
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/**
 * nmap's smtp-open-relay script (16 relay tricks: percent hack, bang paths, quoted local parts,
 * IP literals...) against every receive connector of the demo config, through
 * scripts/nmap-open-relay.sh; and the same script must catch a connector that does relay.
 */
describe('open relay scan (nmap)', { skip }, () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-nmap-');
  });
  after(() => removeDir(dir));

  it('finds no open relay on the demo config, and reports one where anonymous senders may relay', async () => {
    const demo = await readFile(join(ROOT, 'config', 'ferrymail.yaml'), 'utf8');
    const relaying = demo.replace(/anonymous: \[submit\]/, 'anonymous: [submit, relay]');
    assert.notEqual(
      relaying,
      demo,
      'the demo config changed: its Default connector grants anonymous: [submit]',
    );
    const relayingFile = join(dir, 'relaying.yaml');
    await writeFile(relayingFile, relaying);
    const [clean, open] = await Promise.all([
      run({ PORT_OFFSET: '40000' }),
      run({ PORT_OFFSET: '41000', FERRYMAIL_CONFIG: relayingFile }),
    ]);
    assert.equal(clean.code, 0, clean.output);
    for (const name of ['Default', 'Client', 'ClientTls']) {
      assert.match(
        clean.output,
        new RegExp(`^ok   ${name} \\(`, 'm'),
        `${name} was not tested:\n${clean.output}`,
      );
    }
    assert.equal(open.code, 1, `the relaying connector was not caught:\n${open.output}`);
    assert.match(open.output, /^FAIL Default \(127\.0\.0\.1:\d+\): open relay/m);
  });
});
