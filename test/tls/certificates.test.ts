import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createSecureContext } from 'node:tls';
import { pino } from 'pino';
import { loadOrCreateCertificate } from '../../src/tls/certificates.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

/** A logger whose messages the test can read. */
function recordingLogger() {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      messages.push((JSON.parse(chunk.toString('utf8')) as { msg: string }).msg);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), messages };
}

/** The node's TLS certificate: the configured files, or a self-signed one made once and kept. */
describe('the node certificate', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-tls-');
  });
  after(() => removeDir(dir));

  it('is generated on first start and reused afterwards, with the key readable by its owner only', async () => {
    const dataDir = join(dir, 'reuse');
    const { logger, messages } = recordingLogger();
    const first = await loadOrCreateCertificate({ dataDir, fqdn: 'mx.example.test', logger });
    assert.equal(first.generated, true);
    const second = await loadOrCreateCertificate({ dataDir, fqdn: 'mx.example.test', logger });
    assert.equal(second.generated, false);
    assert.deepEqual(second.cert, first.cert);
    assert.deepEqual(second.key, first.key);
    assert.deepEqual(await readFile(join(dataDir, 'tls', 'selfsigned.crt')), first.cert);
    assert.equal((await stat(join(dataDir, 'tls', 'selfsigned.key'))).mode & 0o777, 0o600);
    assert.ok(
      messages.every((m) => /self-signed certificate/.test(m)) && messages.length === 2,
      'each start warns that the certificate is self-signed',
    );
  });

  it('names the host, localhost and 127.0.0.1, lasts two years, and is usable for TLS', async () => {
    const { cert, key } = await loadOrCreateCertificate({
      dataDir: join(dir, 'names'),
      fqdn: 'mx.example.test',
      logger: recordingLogger().logger,
    });
    const x509 = new X509Certificate(cert);
    assert.equal(x509.checkHost('mx.example.test'), 'mx.example.test');
    assert.equal(x509.checkHost('localhost'), 'localhost');
    assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
    const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000;
    assert.ok(days >= 729 && days <= 731, `${days} days`);
    assert.doesNotThrow(() => createSecureContext({ cert, key }));
  });

  it('is replaced when the host name changes or the files are damaged', async () => {
    const dataDir = join(dir, 'replace');
    const logger = recordingLogger().logger;
    const original = await loadOrCreateCertificate({ dataDir, fqdn: 'old.example.test', logger });
    const renamed = await loadOrCreateCertificate({ dataDir, fqdn: 'new.example.test', logger });
    assert.equal(renamed.generated, true);
    assert.notDeepEqual(renamed.cert, original.cert);
    assert.equal(new X509Certificate(renamed.cert).checkHost('new.example.test'), 'new.example.test');
    await writeFile(join(dataDir, 'tls', 'selfsigned.key'), 'not a key');
    assert.equal(
      (await loadOrCreateCertificate({ dataDir, fqdn: 'new.example.test', logger })).generated,
      true,
    );
  });

  it('uses configured files as they are', async () => {
    const made = await loadOrCreateCertificate({
      dataDir: join(dir, 'made'),
      fqdn: 'mx.example.test',
      logger: recordingLogger().logger,
    });
    const certFile = join(dir, 'made', 'tls', 'selfsigned.crt');
    const keyFile = join(dir, 'made', 'tls', 'selfsigned.key');
    const used = await loadOrCreateCertificate({
      dataDir: join(dir, 'unused'),
      fqdn: 'mx.example.test',
      configured: { cert: certFile, key: keyFile },
      logger: recordingLogger().logger,
    });
    assert.deepEqual(used, { cert: made.cert, key: made.key, generated: false });
    await assert.rejects(stat(join(dir, 'unused')), { code: 'ENOENT' }, 'nothing generated');
  });

  it('refuses configured files that are missing or do not belong together, naming the file', async () => {
    const logger = recordingLogger().logger;
    const a = await loadOrCreateCertificate({ dataDir: join(dir, 'a'), fqdn: 'a.test', logger });
    await loadOrCreateCertificate({ dataDir: join(dir, 'b'), fqdn: 'b.test', logger });
    const missing = join(dir, 'nowhere.crt');
    await assert.rejects(
      loadOrCreateCertificate({
        dataDir: dir,
        fqdn: 'a.test',
        configured: { cert: missing, key: join(dir, 'a', 'tls', 'selfsigned.key') },
        logger,
      }),
      { message: `cannot read the TLS certificate ${missing}: no such file` },
    );
    const certFile = join(dir, 'a', 'tls', 'selfsigned.crt');
    await assert.rejects(
      loadOrCreateCertificate({
        dataDir: dir,
        fqdn: 'a.test',
        configured: { cert: certFile, key: join(dir, 'b', 'tls', 'selfsigned.key') },
        logger,
      }),
      (error: Error) =>
        error.message.includes(certFile) && /does not match its private key/.test(error.message),
    );
    assert.ok(a.generated);
  });
});
