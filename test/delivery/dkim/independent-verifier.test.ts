import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DkimSigner } from '../../../src/delivery/dkim/signer.ts';
import { ferrymail } from '../../cli/run-cli.ts';
import { noEd25519, noPythonDkim, parseTxtRecord, verifyWithPythonDkim } from './python-dkim.ts';
import { tempDir } from './temp-dir.ts';

const MESSAGE = Buffer.from(
  [
    'From: "Alice Example" <alice@example.test>',
    'To: bob@elsewhere.test,',
    '  carol@elsewhere.test',
    'Subject:   A   folded',
    '\tsubject line',
    'Date: Tue, 01 Dec 2026 06:00:00 +0000',
    'Message-ID: <m1@example.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'X-Not-Signed: whatever',
    '',
    'Hello Bob,   with trailing space   ',
    '',
    'Grüße',
    '',
    '',
  ].join('\r\n'),
);

/**
 * A signature Ferrymail makes with a key from `ferrymail dkim keygen` verifies with an
 * independent implementation (Debian's python3-dkim), given the TXT record keygen printed; and
 * a message changed after signing does not.
 */
describe('DKIM signatures verify with python3-dkim', { skip: noPythonDkim }, () => {
  let dir: string;
  let remove: () => Promise<void>;
  before(async () => {
    ({ path: dir, remove } = await tempDir('ferrymail-dkim-verify-'));
  });
  after(() => remove());

  async function keyFor(type: 'rsa' | 'ed25519', selector: string) {
    const r = ferrymail(['dkim', 'keygen', 'example.test', selector, '--type', type, '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    const record = parseTxtRecord(r.stdout);
    const signer = await DkimSigner.load([
      { domain: 'example.test', selector, privateKeyFile: join(dir, `example.test.${selector}.key`) },
    ]);
    return { record, signer };
  }

  async function verify(name: string, message: Buffer, record: { name: string; value: string }) {
    const file = join(dir, `${name}.eml`);
    await writeFile(file, message);
    return verifyWithPythonDkim(file, record.name, record.value);
  }

  async function sign(signer: DkimSigner, message: Buffer) {
    const signature = await signer.signatureFor(() => Readable.from([message]));
    assert.ok(signature, 'a key covers example.test');
    const text = signature.toString('latin1');
    assert.ok(text.endsWith('\r\n'), 'ends in CRLF');
    const lines = text.slice(0, -2).split('\r\n');
    assert.match(lines[0]!, /^DKIM-Signature: /);
    assert.ok(lines.length > 1, 'folded');
    assert.ok(
      lines.every((l, i) => (i === 0 || /^[ \t]/.test(l)) && l.length <= 998 && !/[\r\n]/.test(l)),
      `one folded header field: ${JSON.stringify(text)}`,
    );
    return signature;
  }

  it('an rsa-sha256 signature over relaxed/relaxed verifies, and an altered body then fails', async () => {
    const { record, signer } = await keyFor('rsa', 'rsa1');
    const signature = await sign(signer, MESSAGE);
    const text = signature.toString('latin1');
    assert.match(text, /a=rsa-sha256/);
    assert.match(text, /c=relaxed\/relaxed/);
    assert.match(text, /d=example\.test/);
    assert.match(text, /s=rsa1/);
    assert.equal(text.match(/DKIM-Signature:/g)?.length, 1, 'exactly one signature');

    const good = await verify('rsa-good', Buffer.concat([signature, MESSAGE]), record);
    assert.equal(good.ok, true, `python3-dkim refused it: ${good.log.join('\n')}`);
    assert.deepEqual(good.asked, ['rsa1._domainkey.example.test.']);

    const altered = Buffer.from(MESSAGE.toString('utf8').replace('Hello Bob', 'Hello Eve'), 'utf8');
    const bad = await verify('rsa-altered-body', Buffer.concat([signature, altered]), record);
    assert.equal(bad.ok, false, 'a body changed after signing must not verify');
  });

  it('a signed header changed after signing fails, while an unsigned one may change', async () => {
    const { record, signer } = await keyFor('rsa', 'rsa2');
    const signature = await sign(signer, MESSAGE);
    const subject = Buffer.from(MESSAGE.toString('utf8').replace('A   folded', 'B   folded'), 'utf8');
    const bad = await verify('rsa-altered-subject', Buffer.concat([signature, subject]), record);
    assert.equal(bad.ok, false, 'Subject is signed');
    const unsigned = Buffer.from(MESSAGE.toString('utf8').replace('whatever', 'changed'), 'utf8');
    const good = await verify('rsa-altered-unsigned', Buffer.concat([signature, unsigned]), record);
    assert.equal(good.ok, true, `X-Not-Signed is not signed: ${good.log.join('\n')}`);
  });

  it('an ed25519-sha256 signature verifies, and an altered body then fails', {
    skip: noEd25519,
  }, async () => {
    const { record, signer } = await keyFor('ed25519', 'ed1');
    const signature = await sign(signer, MESSAGE);
    assert.match(signature.toString('latin1'), /a=ed25519-sha256/);

    const good = await verify('ed-good', Buffer.concat([signature, MESSAGE]), record);
    assert.equal(good.ok, true, `python3-dkim refused it: ${good.log.join('\n')}`);

    const altered = Buffer.concat([signature, MESSAGE, Buffer.from('appended line\r\n')]);
    const bad = await verify('ed-altered-body', altered, record);
    assert.equal(bad.ok, false, 'a body changed after signing must not verify');
  });
});
