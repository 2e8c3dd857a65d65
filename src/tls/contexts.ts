import { constants, type X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Config } from '../config/schema.ts';
import { checkPair, readPem } from './certificates.ts';

/**
 * What every receive connector's TLS allows (RFC 8996, BSI TR-02102-2, Mozilla "intermediate"):
 * TLS 1.2 and 1.3 only; for 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM,
 * CHACHA20-POLY1305) — no CBC, no RSA key exchange, no 3DES/RC4/NULL/EXPORT; the server's order
 * wins; no TLS compression (CRIME); no renegotiation at all (Node would otherwise allow a
 * client three renegotiations per ten minutes).
 */
export const RECEIVE_TLS_OPTIONS = {
  minVersion: 'TLSv1.2' as const,
  ciphers: [
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'TLS_AES_128_GCM_SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
  ].join(':'),
  honorCipherOrder: true,
  secureOptions:
    constants.SSL_OP_NO_COMPRESSION |
    constants.SSL_OP_NO_RENEGOTIATION |
    constants.SSL_OP_CIPHER_SERVER_PREFERENCE,
};

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export interface CertificatePem {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** What a TLSSocket in server mode needs: the default context and the SNI choice. */
export interface ServerTlsOptions {
  readonly secureContext: SecureContext;
  readonly SNICallback: (
    servername: string,
    callback: (error: Error | null, context?: SecureContext) => void,
  ) => void;
}

interface Served {
  readonly x509: X509Certificate;
  readonly context: SecureContext;
}

/** A secure context for one certificate, or an error naming what is wrong with it. */
export function contextFor(pem: CertificatePem, name: string): Served {
  const x509 = checkPair(pem.cert, pem.key);
  if (typeof x509 === 'string') throw new Error(`the TLS certificate ${name} ${x509}`);
  return { x509, context: createSecureContext({ ...RECEIVE_TLS_OPTIONS, cert: pem.cert, key: pem.key }) };
}

async function readPair(files: CertificateFiles): Promise<CertificatePem> {
  return { cert: await readPem(files.cert, 'certificate'), key: await readPem(files.key, 'private key') };
}

/** Where one connector's certificates come from: its own files, or the node's certificate. */
export type CertificateSource =
  | { readonly kind: 'files'; readonly files: ReadonlyArray<CertificateFiles> }
  | { readonly kind: 'node'; readonly load: () => Promise<CertificatePem> };

/**
 * The certificates one connector serves. The one whose names match the client's SNI is chosen
 * (wildcards as RFC 6125 has them); without SNI, or when none matches, the first. `reload()`
 * builds new contexts from the files; handshakes already done keep the context they used, and a
 * reload that fails keeps the contexts that were being served.
 */
export class ConnectorCertificates {
  readonly #source: CertificateSource;
  #served: ReadonlyArray<Served>;

  private constructor(source: CertificateSource, served: ReadonlyArray<Served>) {
    this.#source = source;
    this.#served = served;
  }

  static async load(source: CertificateSource): Promise<ConnectorCertificates> {
    return new ConnectorCertificates(source, await ConnectorCertificates.#build(source));
  }

  static async #build(source: CertificateSource): Promise<Served[]> {
    if (source.kind === 'node') return [contextFor(await source.load(), 'of the node')];
    const served: Served[] = [];
    for (const files of source.files) served.push(contextFor(await readPair(files), files.cert));
    if (served.length === 0) throw new Error('no certificate');
    return served;
  }

  /** The options for a new handshake: always the contexts current at that moment. */
  options(): ServerTlsOptions {
    return {
      secureContext: this.contextFor(undefined),
      SNICallback: (servername, callback) => callback(null, this.contextFor(servername)),
    };
  }

  /** The context for a client that asked for `servername` (SNI), or the default one. */
  contextFor(servername: string | undefined): SecureContext {
    if (servername) {
      for (const s of this.#served) if (s.x509.checkHost(servername) !== undefined) return s.context;
    }
    return this.#served[0]!.context;
  }

  /** Re-reads the files; on any failure the old contexts stay and the error is thrown. */
  async reload(): Promise<void> {
    this.#served = await ConnectorCertificates.#build(this.#source);
  }
}

/** The certificate files a config names for receiving that cannot be served, each at its field. */
export async function certificateFileProblems(
  config: Config,
): Promise<Array<{ path: PropertyKey[]; message: string }>> {
  const problems: Array<{ path: PropertyKey[]; message: string }> = [];
  const check = async (files: CertificateFiles, path: PropertyKey[]) => {
    let cert: Buffer | undefined;
    let key: Buffer | undefined;
    try {
      cert = await readPem(files.cert, 'certificate');
    } catch (error) {
      problems.push({ path: [...path, 'cert'], message: (error as Error).message });
    }
    try {
      key = await readPem(files.key, 'private key');
    } catch (error) {
      problems.push({ path: [...path, 'key'], message: (error as Error).message });
    }
    if (cert && key) {
      const x509 = checkPair(cert, key);
      if (typeof x509 === 'string') {
        problems.push({
          path: [...path, 'cert'],
          message: `the TLS certificate ${files.cert} ${x509} (${files.key})`,
        });
      }
    }
  };
  if (config.node.certificate) await check(config.node.certificate, ['node', 'certificate']);
  for (const [i, c] of config.receiveConnectors.entries()) {
    if (!c.enabled || c.tls.mode === 'none') continue;
    if (c.tls.certificate) await check(c.tls.certificate, ['receiveConnectors', i, 'tls', 'certificate']);
    for (const [j, f] of (c.tls.certificates ?? []).entries()) {
      await check(f, ['receiveConnectors', i, 'tls', 'certificates', j]);
    }
  }
  return problems;
}

/** A connector's own certificate files, `certificate` first; empty when it uses the node's. */
export function connectorCertificateFiles(tls: {
  certificate?: CertificateFiles | undefined;
  certificates?: ReadonlyArray<CertificateFiles> | undefined;
}): CertificateFiles[] {
  return [...(tls.certificate ? [tls.certificate] : []), ...(tls.certificates ?? [])];
}
