import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import type { Logger } from '../core/logger.ts';

export interface CertificatePair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly generated: boolean;
}

async function readPair(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (error) {
      throw new Error(
        `cannot read the TLS ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
  };
  return { cert: await read(certFile, 'certificate'), key: await read(keyFile, 'private key') };
}

/**
 * The node's certificate: the configured files, or a self-signed one kept under
 * `<dataDir>/tls/` (generated on first start, reused afterwards) so a fresh node offers TLS at once.
 */
export async function loadOrCreateCertificate(options: {
  dataDir: string;
  fqdn: string;
  configured?: { cert: string; key: string };
  logger: Logger;
}): Promise<CertificatePair> {
  if (options.configured) {
    return { ...(await readPair(options.configured.cert, options.configured.key)), generated: false };
  }
  const dir = join(options.dataDir, 'tls');
  const certFile = join(dir, 'selfsigned.crt');
  const keyFile = join(dir, 'selfsigned.key');
  try {
    const pair = await readPair(certFile, keyFile);
    options.logger.warn(
      { certFile },
      'using a self-signed certificate; configure node.certificate for production',
    );
    return { ...pair, generated: false };
  } catch {
    // Not there yet: generate below.
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date();
  const pems = await generate([{ name: 'commonName', value: options.fqdn }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + 2 * 365 * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: options.fqdn },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  await writeFile(keyFile, pems.private, { mode: 0o600 });
  await writeFile(certFile, pems.cert, { mode: 0o644 });
  options.logger.warn(
    { certFile },
    'generated a self-signed certificate; configure node.certificate for production',
  );
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private), generated: true };
}
