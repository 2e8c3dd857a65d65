import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { DkimSigner } from '../../../src/delivery/dkim/signer.ts';
import { ferrymail } from '../../cli/run-cli.ts';
import { parseTxtRecord } from './python-dkim.ts';
import { tempDir } from './temp-dir.ts';

/**
 * `ferrymail dkim keygen <domain> <selector>`: a private key only its owner can read, never
 * over an existing one; the TXT record for that key; the config entry that loads it.
 */
describe('ferrymail dkim keygen', () => {
  let dir: string;
  let remove: () => Promise<void>;
  before(async () => {
    ({ path: dir, remove } = await tempDir('ferrymail-dkim-keygen-'));
  });
  after(() => remove());

  it('writes an RSA 2048 key with mode 0600 into a new folder and prints its TXT record', async () => {
    const out = join(dir, 'new', 'keys');
    const r = ferrymail(['dkim', 'keygen', 'Example.Test', 's2026', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const file = join(out, 'example.test.s2026.key');
    const mode = (await stat(file)).mode & 0o777;
    assert.equal(mode.toString(8), '600', 'only the owner reads the private key');
    const key = createPrivateKey(await readFile(file));
    assert.equal(key.asymmetricKeyType, 'rsa');
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);

    const record = parseTxtRecord(r.stdout);
    assert.equal(record.name, 's2026._domainkey.example.test.');
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('base64');
    assert.equal(record.value, `v=DKIM1; k=rsa; p=${spki}`, 'p= is the public half of the written key');
    assert.ok(record.strings.length > 1, 'a 2048-bit key needs more than one string');
    assert.ok(
      record.strings.every((s) => s.length <= 255),
      'each TXT string holds at most 255 characters',
    );
  });

  it('prints a dkim.keys entry that loads the key it wrote', async () => {
    const r = ferrymail(['dkim', 'keygen', 'example.test', 'yaml', '--type', 'ed25519', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    const yaml = r.stdout.slice(r.stdout.indexOf('dkim:\n'));
    const entries = (
      parse(yaml) as { dkim: { keys: Array<{ domain: string; selector: string; privateKeyFile: string }> } }
    ).dkim.keys;
    assert.deepEqual(entries, [
      { domain: 'example.test', selector: 'yaml', privateKeyFile: join(dir, 'example.test.yaml.key') },
    ]);
    const signer = await DkimSigner.load(entries);
    assert.deepEqual(signer.domains, ['example.test']);
  });

  it('writes an Ed25519 key whose TXT record has k=ed25519 and the bare 32-byte public key', async () => {
    const r = ferrymail(['dkim', 'keygen', 'example.test', 'ed', '--type', 'ed25519', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    const file = join(dir, 'example.test.ed.key');
    assert.equal(((await stat(file)).mode & 0o777).toString(8), '600');
    const key = createPrivateKey(await readFile(file));
    assert.equal(key.asymmetricKeyType, 'ed25519');
    const record = parseTxtRecord(r.stdout);
    const p = /p=(.*)$/.exec(record.value)?.[1] ?? '';
    assert.equal(Buffer.from(p, 'base64').length, 32);
    // RFC 8463: the raw key, which is the last 32 bytes of its SubjectPublicKeyInfo.
    const raw = createPublicKey(key).export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
    assert.equal(record.value, `v=DKIM1; k=ed25519; p=${raw}`);
  });

  it('refuses to overwrite an existing key file with exit 1, leaving it as it was', async () => {
    const file = join(dir, 'example.test.taken.key');
    await writeFile(file, 'the old key\n');
    const r = ferrymail(['dkim', 'keygen', 'example.test', 'taken', '--out', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
    assert.ok(r.stderr.includes(file), r.stderr);
    assert.equal(r.stdout, '', 'no TXT record for a key that was not written');
    assert.equal(await readFile(file, 'utf8'), 'the old key\n');
  });

  it('exits 2 with the usage for a command line that makes no sense', () => {
    for (const args of [
      ['dkim'],
      ['dkim', 'rotate'],
      ['dkim', 'keygen'],
      ['dkim', 'keygen', 'example.test'],
      ['dkim', 'keygen', 'example.test', 's1', 'extra'],
      ['dkim', 'keygen', 'not a domain', 's1'],
      ['dkim', 'keygen', 'example.test', 'bad_selector'],
      ['dkim', 'keygen', 'example.test', 's1', '--type', 'dsa'],
      ['dkim', 'keygen', 'example.test', 's1', '--bits', '512'],
      ['dkim', 'keygen', 'example.test', 's1', '--bits', 'many'],
      ['dkim', 'keygen', 'example.test', 's1', '--type', 'ed25519', '--bits', '2048'],
      ['dkim', 'keygen', 'example.test', 's1', '--colour'],
    ]) {
      const r = ferrymail([...args, '--out', dir]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage: ferrymail/, args.join(' '));
      assert.equal(r.stdout, '', args.join(' '));
    }
  });
});
