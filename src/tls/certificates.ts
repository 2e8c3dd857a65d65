import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import type { Logger } from '../core/logger.ts';
import { readNamedFile } from '../core/read-named-file.ts';

export interface CertificatePair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly generated: boolean;
}

const VALIDITY_MS = 2 * 365 * 86_400_000;
/** A kept self-signed certificate this close to expiry is replaced rather than served. */
const RENEW_BEFORE_MS = 7 * 86_400_000;

/** A PEM file's bytes; an error that names the file and what it was meant to hold. */
export function readPem(file: string, what: string): Promise<Buffer> {
  return readNamedFile(file, `the TLS ${what}`);
}

/** The parsed certificate when it and the key can be served as a pair, else what is wrong with them. */
export function checkPair(cert: Buffer, key: Buffer): X509Certificate | string {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return 'is not a PEM certificate';
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) return 'does not match its private key';
  } catch {
    return 'has a private key that is not a PEM private key (or is encrypted)';
  }
  return x509;
}

/**
 * The node's certificate: the configured files, or a self-signed one kept under
 * `<dataDir>/tls/` (generated on first start, reused afterwards) so a fresh node offers TLS at
 * once. Configured files that cannot be used are an error naming the file; a kept self-signed
 * certificate that is unusable, about to expire, or for another host name is replaced.
 */
export async function loadOrCreateCertificate(options: {
  dataDir: string;
  fqdn: string;
  configured?: { cert: string; key: string };
  logger: Logger;
}): Promise<CertificatePair> {
  const { logger, fqdn } = options;
  if (options.configured) {
    const { cert: certFile, key: keyFile } = options.configured;
    const cert = await readPem(certFile, 'certificate');
    const key = await readPem(keyFile, 'private key');
    const x509 = checkPair(cert, key);
    if (typeof x509 === 'string') throw new Error(`the TLS certificate ${certFile} ${x509} (${keyFile})`);
    if (Date.parse(x509.validTo) < Date.now()) {
      // Still served: opportunistic STARTTLS between servers rarely checks dates, and refusing to start is worse.
      logger.warn({ certFile, validTo: x509.validTo }, 'the configured TLS certificate has expired');
    }
    return { cert, key, generated: false };
  }

  const dir = join(options.dataDir, 'tls');
  const certFile = join(dir, 'selfsigned.crt');
  const keyFile = join(dir, 'selfsigned.key');
  const kept = await readKept(certFile, keyFile, fqdn);
  if (kept.pair) {
    logger.warn({ certFile }, 'using a self-signed certificate; configure node.certificate for production');
    return { ...kept.pair, generated: false };
  }
  if (kept.reason) logger.info({ certFile, reason: kept.reason }, 'replacing the self-signed certificate');

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date();
  const pems = await generate([{ name: 'commonName', value: fqdn }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + VALIDITY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          isIP(fqdn) ? { type: 7, ip: fqdn } : { type: 2, value: fqdn },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  // Key first, each written whole then renamed: a crash leaves the old pair or a new one, and
  // a certificate never sits next to a key it does not match for long enough to be read.
  await writeAtomically(keyFile, pems.private, 0o600);
  await writeAtomically(certFile, pems.cert, 0o644);
  logger.warn({ certFile }, 'generated a self-signed certificate; configure node.certificate for production');
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private), generated: true };
}

async function readKept(
  certFile: string,
  keyFile: string,
  fqdn: string,
): Promise<{ pair?: { cert: Buffer; key: Buffer }; reason?: string }> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  } catch {
    return {}; // first start
  }
  const x509 = checkPair(cert, key);
  if (typeof x509 === 'string') return { reason: `the kept certificate ${x509}` };
  if (Date.parse(x509.validTo) - Date.now() < RENEW_BEFORE_MS) return { reason: 'it expires soon' };
  const names = isIP(fqdn) ? x509.checkIP(fqdn) : x509.checkHost(fqdn);
  if (names === undefined) return { reason: `it does not name ${fqdn}` };
  return { pair: { cert, key } };
}

async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, content, { mode });
  // The mode given to writeFile is filtered by the umask; a private key must be 0600 regardless.
  await chmod(temp, mode);
  await rename(temp, file);
}
