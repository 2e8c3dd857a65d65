import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { ferrymail, ROOT } from './run-cli.ts';

/** `ferrymail config check <file>`: exit 0 and a summary, or exit 1 and every problem located. */
describe('ferrymail config check', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-cli-');
  });
  after(() => removeDir(dir));

  it('accepts the demo config with exit 0 and a one-line summary', () => {
    const r = ferrymail(['config', 'check', 'config/ferrymail.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'OK: config/ferrymail.yaml: 1 accepted domain, 2 mailboxes, 1 alias, 1 group, 3 receive connectors, 1 send connector\n',
    );
    assert.equal(r.stderr, '');
  });

  it('prints every problem as file:line:column and exits 1', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      'acceptedDomains:\n  - name: example.test\nreceiveConnectors:\n  - name: A\n    bindings: [nowhere]\n    colour: blue\n',
    );
    const r = ferrymail(['config', 'check', file]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      [
        `${file}:5:16: receiveConnectors[0].bindings[0]: expected an address and port such as 127.0.0.1:2525`,
        `${file}:6:5: receiveConnectors[0].colour: unknown field 'colour'`,
        '',
      ].join('\n'),
    );
  });

  it('exits 1 naming a file that does not exist', () => {
    const r = ferrymail(['config', 'check', join(dir, 'none.yaml')]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${join(dir, 'none.yaml')}: file not found\n`);
  });

  it('runs the same through the bin/ferrymail.mjs launcher', () => {
    const r = ferrymail(['config', 'check', 'config/ferrymail.yaml'], {
      script: join(ROOT, 'bin/ferrymail.mjs'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^OK: config\/ferrymail\.yaml: /);
  });
});
