import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import { generate } from 'selfsigned';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { connector, type ReceiveHarness, startReceiveHarness } from '../helpers/receive-fakes.ts';
import { SmtpTestClient } from '../helpers/smtp-client.ts';

/** A self-signed certificate for `name` (RSA or EC), written to `<dir>/<file>.crt|.key`. */
async function makeCertificate(dir: string, file: string, name: string, keyType: 'rsa' | 'ec') {
  const pems = await generate([{ name: 'commonName', value: name }], {
    keyType,
    ...(keyType === 'ec' ? { curve: 'P-256' as const } : { keySize: 2048 }),
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: name }] }],
  });
  const cert = join(dir, `${file}.crt`);
  const key = join(dir, `${file}.key`);
  await writeFile(cert, pems.cert);
  await writeFile(key, pems.private);
  return { cert, key };
}

function commonName(socket: TLSSocket): string {
  const pem = socket.getPeerX509Certificate();
  assert.ok(pem, 'the server sent no certificate');
  return /CN=([^\n,]+)/.exec((pem as X509Certificate).subject)![1]!;
}

/** A TLS handshake on an implicit-TLS port; resolves with the socket or rejects with the handshake error. */
function handshake(port: number, options: ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed during the handshake')));
  });
}

/** Plain SMTP up to STARTTLS, then the handshake with `options` (SNI and the like). */
async function starttls(port: number, options: ConnectionOptions = {}): Promise<TLSSocket> {
  const plain = tcpConnect(port, '127.0.0.1');
  let text = '';
  const until = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(text)) {
          plain.off('data', onData);
          resolve();
        }
      };
      const onData = (chunk: Buffer) => {
        text += chunk.toString('latin1');
        check();
      };
      plain.on('data', onData);
      plain.once('error', reject);
    });
  await until(/^220 .*\r\n/m);
  plain.write('EHLO client.test\r\n');
  await until(/^250 .*\r\n/m);
  text = '';
  plain.write('STARTTLS\r\n');
  await until(/^220 .*\r\n/m);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ socket: plain, rejectUnauthorized: false, ...options }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** Sends one command on an established TLS session and resolves with its reply line. */
function command(socket: TLSSocket, line: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')));
    socket.write(`${line}\r\n`);
  });
}

describe('TLS settings, SNI and certificate reload on receive connectors', () => {
  let dir: string;
  let h: ReceiveHarness;
  let files: Record<'rsa' | 'ec' | 'one' | 'two', { cert: string; key: string }>;
  const logged: string[] = [];
  before(async () => {
    dir = await makeTempDir('ferrymail-receive-tls-');
    files = {
      rsa: await makeCertificate(dir, 'rsa', 'rsa.example.test', 'rsa'),
      ec: await makeCertificate(dir, 'ec', 'ec.example.test', 'ec'),
      one: await makeCertificate(dir, 'reload', 'one.example.test', 'ec'),
      two: await makeCertificate(dir, 'two', 'two.example.test', 'ec'),
    };
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logged.push(chunk.toString('utf8'));
          done();
        },
      }),
    );
    h = await startReceiveHarness(
      [
        connector({ name: 'Rsa', tls: { mode: 'implicit', required: false, certificate: files.rsa } }),
        connector({
          name: 'Sni',
          tls: { mode: 'implicit', required: false, certificates: [files.rsa, files.ec] },
        }),
        connector({
          name: 'SniStarttls',
          tls: { mode: 'starttls', required: false, certificates: [files.rsa, files.ec] },
        }),
        connector({ name: 'Reload', tls: { mode: 'starttls', required: false, certificate: files.one } }),
      ],
      { logger },
    );
  });
  after(async () => {
    await h.close();
    await removeDir(dir);
  });

  it('refuses TLS 1.0 and 1.1 from a client that would speak them', async () => {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      await assert.rejects(
        handshake(h.port('Rsa'), { minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }),
        `${version} was accepted`,
      );
    }
  });

  it('refuses TLS 1.2 suites with CBC or RSA key exchange (no forward secrecy)', async () => {
    for (const cipher of [
      'ECDHE-RSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA384',
      'AES128-GCM-SHA256',
      'AES256-SHA',
    ]) {
      await assert.rejects(
        handshake(h.port('Rsa'), { maxVersion: 'TLSv1.2', ciphers: `${cipher}@SECLEVEL=0` }),
        `${cipher} was negotiated`,
      );
    }
  });

  it("speaks TLS 1.3, and TLS 1.2 with ECDHE and AES-GCM or CHACHA20-POLY1305, in the server's order", async () => {
    const tls13 = await handshake(h.port('Rsa'));
    assert.equal(tls13.getProtocol(), 'TLSv1.3');
    tls13.destroy();
    for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const s = await handshake(h.port('Rsa'), { maxVersion: 'TLSv1.2', ciphers: cipher });
      assert.equal(s.getCipher().standardName.includes('ECDHE_RSA'), true);
      s.destroy();
    }
    // The client prefers AES128; the server's order (AES256 first) wins.
    const ordered = await handshake(h.port('Rsa'), {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384',
    });
    assert.equal(ordered.getCipher().name, 'ECDHE-RSA-AES256-GCM-SHA384', 'the client chose the cipher');
    ordered.destroy();
  });

  it('refuses a client-initiated renegotiation', async () => {
    const s = await handshake(h.port('Rsa'), { maxVersion: 'TLSv1.2' });
    const outcome = await new Promise<string>((resolve) => {
      s.once('close', () => resolve('closed'));
      s.once('error', () => resolve('error'));
      const started = s.renegotiate({ rejectUnauthorized: false }, (error) =>
        resolve(error ? 'error' : 'renegotiated'),
      );
      if (!started) resolve('not started');
    });
    assert.notEqual(outcome, 'renegotiated');
    s.destroy();
  });

  it('serves the certificate naming the SNI host, and the first one without SNI or for another name', async () => {
    for (const [port, open] of [
      [h.port('Sni'), handshake],
      [h.port('SniStarttls'), starttls],
    ] as const) {
      const ec = await open(port, { servername: 'ec.example.test' });
      assert.equal(commonName(ec), 'ec.example.test');
      ec.destroy();
      const rsa = await open(port, { servername: 'rsa.example.test' });
      assert.equal(commonName(rsa), 'rsa.example.test');
      rsa.destroy();
      const other = await open(port, { servername: 'other.example.test' });
      assert.equal(commonName(other), 'rsa.example.test');
      other.destroy();
      const none = await open(port, {});
      assert.equal(commonName(none), 'rsa.example.test');
      none.destroy();
    }
  });

  it('reloads certificates for new handshakes, keeps sessions in progress, and keeps the old ones when the new files are bad', async () => {
    const port = h.port('Reload');
    const old = await starttls(port);
    assert.equal(commonName(old), 'one.example.test');
    const waiting = await SmtpTestClient.connect(port);
    await waiting.greeting();
    await waiting.command('EHLO client.test');

    // Renew: the same files now hold another certificate.
    const { readFile } = await import('node:fs/promises');
    await writeFile(files.one.cert, await readFile(files.two.cert));
    await writeFile(files.one.key, await readFile(files.two.key));
    const results = await h.server.reloadCertificates();
    assert.deepEqual(
      results.find((r) => r.connector === 'Reload'),
      { connector: 'Reload', ok: true },
    );
    const renewed = await starttls(port);
    assert.equal(commonName(renewed), 'two.example.test', 'a new handshake still got the old certificate');
    renewed.destroy();
    assert.match(await command(old, 'EHLO client.test'), /^250[- ]/, 'the session in TLS was dropped');
    old.destroy();
    // A session still in plaintext at the reload gets the new certificate when it starts TLS.
    assert.equal((await waiting.startTls()).code, 220);
    assert.equal((await waiting.command('EHLO client.test')).code, 250);
    waiting.close();

    await writeFile(files.one.cert, 'not a certificate');
    const bad = await h.server.reloadCertificates();
    const reload = bad.find((r) => r.connector === 'Reload');
    assert.equal(reload?.ok, false);
    assert.match(reload?.error ?? '', /reload\.crt is not a PEM certificate/);
    assert.ok(
      logged.some((l) => l.includes('cannot reload TLS certificates') && l.includes('Reload')),
      'the failed reload was not logged',
    );
    const kept = await starttls(port);
    assert.equal(commonName(kept), 'two.example.test', 'the bad file replaced the certificate in use');
    kept.destroy();
  });
});
