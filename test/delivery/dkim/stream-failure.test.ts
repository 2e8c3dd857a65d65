import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DkimSigner } from '../../../src/delivery/dkim/signer.ts';
import { tempDir } from './temp-dir.ts';

/** A message that cannot be read to its end is not signed: the read error comes back to the caller. */
describe('DKIM signing when the message stream fails', () => {
  let remove: () => Promise<void>;
  let signer: DkimSigner;
  before(async () => {
    const dir = await tempDir('ferrymail-dkim-fail-');
    remove = dir.remove;
    const file = join(dir.path, 'k.key');
    await writeFile(file, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    signer = await DkimSigner.load([{ domain: 'example.test', selector: 's', privateKeyFile: file }]);
  });
  after(() => remove());

  function failingAfter(parts: string[]): Readable {
    return Readable.from(
      (async function* () {
        for (const part of parts) yield Buffer.from(part);
        throw new Error('disk read failed');
      })(),
    );
  }

  it('rejects with the read error when the body fails after the header section', async () => {
    await assert.rejects(
      signer.signatureFor(() => failingAfter(['From: a@example.test\r\n\r\n', 'first part of the body\r\n'])),
      /disk read failed/,
    );
  });

  it('rejects with the read error when the header section itself fails', async () => {
    await assert.rejects(
      signer.signatureFor(() => failingAfter(['From: a@exam'])),
      /disk read failed/,
    );
  });
});
