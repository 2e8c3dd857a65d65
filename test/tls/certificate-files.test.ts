import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import { ferrymail, MAIN } from '../cli/run-cli.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

async function writeCertificate(certFile: string, keyFile: string, name: string): Promise<void> {
  const pems = await generate([{ name: 'commonName', value: name }], { keyType: 'ec', curve: 'P-256' });
  await writeFile(certFile, pems.cert);
  await writeFile(keyFile, pems.private);
}

function handshake(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
}

function commonName(s: TLSSocket): string {
  return /CN=([^\n,]+)/.exec(s.getPeerX509Certificate()!.subject)![1]!;
}

/** The certificate files a config names: checked at start with file:line:field, re-read on SIGHUP. */
describe('receive certificate files', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ferrymail-cert-files-');
  });
  after(() => removeDir(dir));

  it('refuses to start when a certificate file is missing, naming the file, line and field', async () => {
    await writeCertificate(join(dir, 'ok.crt'), join(dir, 'ok.key'), 'ok.example.test');
    const file = join(dir, 'missing.yaml');
    await writeFile(
      file,
      [
        'node:',
        '  fqdn: mx.example.test',
        '  dataDir: ./state',
        '  certificate: { cert: ok.crt, key: gone.key }',
        'receiveConnectors:',
        '  - name: Default',
        '    bindings: ["127.0.0.1:0"]',
        '    tls:',
        '      certificates:',
        '        - { cert: ok.crt, key: ok.key }',
        '        - cert: nowhere.crt',
        '          key: ok.key',
        '',
      ].join('\n'),
    );
    const r = ferrymail(['start', '--config', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `${file}:4:\\d+: node\\.certificate\\.key: cannot read the TLS private key ${join(dir, 'gone.key')}: no such file`,
      ),
    );
    assert.match(
      r.stderr,
      new RegExp(
        `${file}:11:\\d+: receiveConnectors\\[0\\]\\.tls\\.certificates\\[1\\]\\.cert: cannot read the TLS certificate ${join(dir, 'nowhere.crt')}: no such file`,
      ),
    );
    assert.doesNotMatch(r.stderr, /certificates\[0\]/, 'the good pair was reported');
  });

  it('serves renewed files to new handshakes after SIGHUP, without dropping a TLS session', async () => {
    const cert = join(dir, 'live.crt');
    const key = join(dir, 'live.key');
    await writeCertificate(cert, key, 'before.example.test');
    const file = join(dir, 'live.yaml');
    await writeFile(
      file,
      `node:\n  fqdn: mx.example.test\n  dataDir: ./live-state\nreceiveConnectors:\n  - name: Tls\n    bindings: ["127.0.0.1:0"]\n    tls: { mode: implicit, certificate: { cert: live.crt, key: live.key } }\n`,
    );
    const child = spawn(process.execPath, [MAIN, 'start', '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const seen = (pattern: RegExp) =>
      new Promise<RegExpExecArray>((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(output);
          if (m) {
            child.stdout.off('data', onData);
            resolve(m);
          }
        };
        const onData = (chunk: Buffer) => {
          output += chunk.toString('utf8');
          check();
        };
        child.stdout.on('data', onData);
        child.once('exit', () => reject(new Error(`exited: ${output}`)));
        check();
      });
    try {
      const port = Number((await seen(/"connector":"Tls","host":"127\.0\.0\.1","port":(\d+)/))[1]);
      const old = await handshake(port);
      assert.equal(commonName(old), 'before.example.test');
      await writeCertificate(cert, key, 'after.example.test');
      child.kill('SIGHUP');
      await seen(/TLS certificates reloaded/);
      const renewed = await handshake(port);
      assert.equal(commonName(renewed), 'after.example.test', 'SIGHUP did not reload the certificate');
      renewed.destroy();
      const greeting = await new Promise<string>((resolve) =>
        old.once('data', (b: Buffer) => resolve(String(b))),
      );
      assert.match(greeting, /^220 /, 'the session from before the reload was dropped');
      old.write('NOOP\r\n');
      const noop = await new Promise<string>((resolve) =>
        old.once('data', (b: Buffer) => resolve(String(b))),
      );
      assert.match(noop, /^250 /);
      old.destroy();
      assert.ok((await readFile(cert, 'utf8')).includes('BEGIN CERTIFICATE'));
    } finally {
      child.kill('SIGKILL');
    }
  });
});
