import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DkimSigner } from '../../../src/delivery/dkim/signer.ts';
import { ferrymail } from '../../cli/run-cli.ts';
import { noPythonDkim, parseTxtRecord, verifyWithPythonDkim } from './python-dkim.ts';
import { tempDir } from './temp-dir.ts';

const MESSAGE_BYTES = 20 * 1024 * 1024;
/** What signing may hold at once: a fraction of the message, so holding it whole cannot pass. */
const MEMORY_BUDGET = 6 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** heap + Buffers, after a full collection: what is still referenced. */
function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** 20 MB of base64-looking lines, written in 64 KB chunks, never whole in memory. */
async function writeLargeMessage(file: string): Promise<void> {
  const line = `${'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0'}\r\n`;
  async function* chunks() {
    yield Buffer.from(
      'From: big@example.test\r\nTo: someone@elsewhere.test\r\nSubject: large\r\n' +
        'MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n',
    );
    let written = 0;
    let n = 0;
    while (written < MESSAGE_BYTES) {
      // Each chunk differs, so a body hash over the wrong bytes cannot come out right by chance.
      const chunk = Buffer.from(`${String(n++).padStart(8, '0')}${line}`.repeat(800));
      written += chunk.length;
      yield chunk;
    }
  }
  await pipeline(chunks, createWriteStream(file));
}

/**
 * A large message is signed as a stream: the signer holds a small part of it at any time, and
 * the signature is still right for every byte.
 */
describe('DKIM signing of a large message', () => {
  let dir: string;
  let remove: () => Promise<void>;
  let messageFile: string;
  let record: { name: string; value: string };
  let signature: Buffer | undefined;
  let peakGrowth = 0;

  before(async () => {
    ({ path: dir, remove } = await tempDir('ferrymail-dkim-large-'));
    messageFile = join(dir, 'large.eml');
    await writeLargeMessage(messageFile);
    const r = ferrymail(['dkim', 'keygen', 'example.test', 'big', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    record = parseTxtRecord(r.stdout);
  });
  after(() => remove());

  it('signs 20 MB read from a file while holding well under its size in memory', async () => {
    const signer = await DkimSigner.load([
      { domain: 'example.test', selector: 'big', privateKeyFile: join(dir, 'example.test.big.key') },
    ]);
    const baseline = liveBytes();
    let seen = 0;
    let sinceSample = 0;
    const sampling = () =>
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          seen += chunk.length;
          sinceSample += chunk.length;
          if (sinceSample >= 1024 * 1024) {
            sinceSample = 0;
            peakGrowth = Math.max(peakGrowth, liveBytes() - baseline);
          }
          done(null, chunk);
        },
      });
    signature = await signer.signatureFor(() => createReadStream(messageFile).pipe(sampling()));
    assert.ok(signature, 'signed');
    const { size } = await stat(messageFile);
    assert.equal(seen, size, 'the whole message went through the signer');
    assert.ok(size >= MESSAGE_BYTES);
    assert.ok(
      peakGrowth < MEMORY_BUDGET,
      `memory grew by ${(peakGrowth / 1048576).toFixed(1)} MB while signing ${(size / 1048576).toFixed(0)} MB`,
    );
  });

  it('the signature of the large message verifies with python3-dkim', { skip: noPythonDkim }, async () => {
    assert.ok(signature, 'the signing test ran first');
    const signed = join(dir, 'signed.eml');
    await pipeline(async function* () {
      yield signature!;
      yield* createReadStream(messageFile);
    }, createWriteStream(signed));
    const verdict = await verifyWithPythonDkim(signed, record.name, record.value);
    assert.equal(verdict.ok, true, `python3-dkim refused it: ${verdict.log.join('\n')}`);
  });
});
