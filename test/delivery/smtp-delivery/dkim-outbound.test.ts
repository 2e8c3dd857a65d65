import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ferrymail } from '../../cli/run-cli.ts';
import { removeDir, startTestNode, type TestNode } from '../../helpers/node-fixture.ts';
import { SmtpSink } from '../../helpers/smtp-sink.ts';
import { noPythonDkim, parseTxtRecord, verifyWithPythonDkim } from '../dkim/python-dkim.ts';
import { outboundConfig, submit } from './outbound-fixture.ts';

/**
 * Outbound mail is DKIM-signed with the key of its From: domain on the way out, and what arrives
 * at the next hop verifies with an independent verifier (Debian's python3-dkim) against the TXT
 * record `ferrymail dkim keygen` printed. Mail from a domain without a key leaves unsigned.
 */
describe('outbound DKIM signing, end to end', { skip: noPythonDkim }, () => {
  let sink: SmtpSink;
  let t: TestNode;
  let dir: string;
  let record: { name: string; value: string };

  before(async () => {
    sink = await SmtpSink.start();
    const made = await outboundConfig([
      {
        name: 'SmartHost',
        addressSpaces: ['*'],
        routing: { type: 'smartHost', hosts: [`127.0.0.1:${sink.port}`] },
      },
    ]);
    dir = made.dir;
    const keygen = ferrymail(['dkim', 'keygen', 'example.test', 's2026', '--out', join(dir, 'dkim')]);
    assert.equal(keygen.code, 0, keygen.stderr);
    record = parseTxtRecord(keygen.stdout);
    made.config.dkim = {
      keys: [
        {
          domain: 'example.test',
          selector: 's2026',
          privateKeyFile: join(dir, 'dkim', 'example.test.s2026.key'),
        },
      ],
    };
    t = await startTestNode({ dir, config: made.config });
  });
  after(async () => {
    await t.stop();
    await sink.close();
    await removeDir(dir);
  });

  it('signs with the From: domain key, and the relayed message verifies with python3-dkim', async () => {
    await submit(
      t.port('Relay'),
      'alice@example.test',
      ['x@remote.test'],
      'From: Alice <alice@example.test>\r\nTo: x@remote.test\r\nSubject: signed\r\nDate: Tue, 1 Dec 2026 07:00:00 +0000\r\n\r\nSigned body.\r\n',
    );
    await sink.waitFor(() => sink.transactions.length === 1);
    const delivered = sink.transactions[0]!.body;
    assert.match(
      delivered.toString('latin1'),
      /^DKIM-Signature: [^\r]*\r\n/,
      'the signature is the first header',
    );
    assert.match(delivered.toString('latin1'), /\bd=example\.test;/);
    assert.match(delivered.toString('latin1'), /\bs=s2026;/);
    const file = join(dir, 'delivered.eml');
    await writeFile(file, delivered);
    const verdict = await verifyWithPythonDkim(file, record.name, record.value);
    assert.equal(verdict.ok, true, verdict.log.join('\n'));

    const tampered = join(dir, 'tampered.eml');
    await writeFile(
      tampered,
      Buffer.from(delivered.toString('latin1').replace('Signed body.', 'Changed body.'), 'latin1'),
    );
    assert.equal(
      (await verifyWithPythonDkim(tampered, record.name, record.value)).ok,
      false,
      'the check can fail',
    );
  });

  it('leaves mail from a domain without a key unsigned', async () => {
    await submit(
      t.port('Relay'),
      'app@other.test',
      ['y@remote.test'],
      'From: <app@other.test>\r\nSubject: plain\r\n\r\nx\r\n',
    );
    await sink.waitFor(() => sink.transactions.length === 2);
    assert.doesNotMatch(sink.transactions[1]!.body.toString('latin1'), /^DKIM-Signature:/im);
  });
});
