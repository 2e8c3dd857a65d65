import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DkimSigner } from '../../../src/delivery/dkim/signer.ts';
import { tempDir } from './temp-dir.ts';

/** A key file that cannot sign stops the load with an error naming the file and what is wrong. */
describe('DkimSigner.load', () => {
  let dir: string;
  let remove: () => Promise<void>;
  before(async () => {
    ({ path: dir, remove } = await tempDir('ferrymail-dkim-load-'));
  });
  after(() => remove());

  const load = (file: string) =>
    DkimSigner.load([{ domain: 'example.test', selector: 's1', privateKeyFile: file }]);

  async function rejects(file: string, problem: RegExp) {
    await assert.rejects(load(file), (error: Error) => {
      assert.ok(error.message.includes(file), `names ${file}: ${error.message}`);
      assert.match(error.message, problem);
      return true;
    });
  }

  it('names a key file that does not exist', async () => {
    await rejects(join(dir, 'missing.key'), /no such file/);
  });

  it('names a key file that is not a PEM private key', async () => {
    const garbage = join(dir, 'garbage.key');
    await writeFile(garbage, 'this is not a key\n');
    await rejects(garbage, /not a PEM private key/);
    const publicOnly = join(dir, 'public.pem');
    const { publicKey } = generateKeyPairSync('ed25519');
    await writeFile(publicOnly, publicKey.export({ type: 'spki', format: 'pem' }));
    await rejects(publicOnly, /not a PEM private key/);
  });

  it('refuses an RSA key shorter than 1024 bits, saying how long it is', async () => {
    const short = join(dir, 'short.key');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 768 });
    await writeFile(short, privateKey.export({ type: 'pkcs1', format: 'pem' }));
    await rejects(short, /768 bits; at least 1024/);
  });

  it('refuses a key of a type DKIM does not sign with', async () => {
    const ec = join(dir, 'ec.key');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(ec, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await rejects(ec, /is of type ec; DKIM signs with RSA or Ed25519/);
  });

  it('accepts RSA in PKCS#1 and PKCS#8 and Ed25519, and lists their domains', async () => {
    const files: string[] = [];
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const ed = generateKeyPairSync('ed25519').privateKey;
    for (const [name, pem] of [
      ['pkcs1.key', rsa.export({ type: 'pkcs1', format: 'pem' })],
      ['pkcs8.key', rsa.export({ type: 'pkcs8', format: 'pem' })],
      ['ed.key', ed.export({ type: 'pkcs8', format: 'pem' })],
    ] as const) {
      files.push(join(dir, name));
      await writeFile(join(dir, name), pem);
    }
    const signer = await DkimSigner.load([
      { domain: 'a.test', selector: 's', privateKeyFile: files[0]! },
      { domain: 'B.test', selector: 's', privateKeyFile: files[1]! },
      { domain: 'c.test', selector: 's', privateKeyFile: files[2]! },
    ]);
    assert.deepEqual(signer.domains, ['a.test', 'b.test', 'c.test']);
  });
});
