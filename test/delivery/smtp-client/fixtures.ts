import { type AddressInfo, createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { generate } from 'selfsigned';
import {
  type OutboundEnvelope,
  openSmtpConnection,
  type SmtpClientConnection,
  type SmtpClientOptions,
} from '../../../src/delivery/smtp/client/index.ts';
import { SmtpSink, type SmtpSinkOptions } from '../../helpers/smtp-sink.ts';

const opened: Array<{ close(): unknown }> = [];

/** A sink that `cleanup()` closes (so a failing test does not leave the process hanging). */
export async function startSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const sink = await SmtpSink.start(options);
  opened.push(sink);
  return sink;
}

/** Closes every sink and connection the test opened; for `afterEach`. */
export async function cleanup(): Promise<void> {
  for (const o of opened.splice(0).reverse()) await o.close();
}

/** An envelope for one recipient per address given, with everything else at its plainest. */
export function envelope(recipients: string[], overrides: Partial<OutboundEnvelope> = {}): OutboundEnvelope {
  return {
    sender: 'sender@origin.test',
    recipients: recipients.map((address) => ({ address })),
    size: 100,
    bodyType: '7BIT',
    smtpUtf8: false,
    dsn: {},
    ...overrides,
  };
}

/** A body opener streaming `content` in pieces of `pieceSize` bytes (to cut through CRLF and dots). */
export function body(content: string | Buffer, pieceSize = 64 * 1024): () => Readable {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  return () =>
    Readable.from(
      (function* () {
        for (let i = 0; i < bytes.length; i += pieceSize) yield bytes.subarray(i, i + pieceSize);
      })(),
      { objectMode: false },
    );
}

export const MESSAGE = 'Subject: test\r\nFrom: sender@origin.test\r\n\r\nHello.\r\n';

export function options(port: number, overrides: Partial<SmtpClientOptions> = {}): SmtpClientOptions {
  return {
    host: 'mx.example.test',
    address: '127.0.0.1',
    port,
    ehloName: 'client.origin.test',
    tls: { mode: 'none', verify: 'none' },
    ...overrides,
  };
}

export async function connectTo(
  sink: SmtpSink | number,
  overrides: Partial<SmtpClientOptions> = {},
): Promise<SmtpClientConnection> {
  const c = await openSmtpConnection(options(typeof sink === 'number' ? sink : sink.port, overrides));
  opened.push(c);
  return c;
}

/** The first bare CR or LF (a CR not followed by LF, an LF not preceded by CR), or -1. */
export function bareLineEnding(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a) return i;
    if (bytes[i] === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) return i;
  }
  return -1;
}

export interface TestPki {
  /** The test CA's certificate, to pass as `tls.ca`. */
  ca: string;
  /** Signed by the CA for mx.example.test and *.wild.example.test. */
  leaf: { cert: string; key: string };
  /** Self-signed for mx.example.test. */
  selfSigned: { cert: string; key: string };
}

let pki: Promise<TestPki> | undefined;

/** One CA, one leaf it signed and one self-signed certificate per test process. */
export function testPki(): Promise<TestPki> {
  pki ??= (async () => {
    const notBeforeDate = new Date(Date.now() - 3_600_000);
    const notAfterDate = new Date(Date.now() + 86_400_000);
    const ca = await generate([{ name: 'commonName', value: 'Ferrymail Test CA' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      ],
    });
    const leaf = await generate([{ name: 'commonName', value: 'mx.example.test' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      ca: { key: ca.private, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'mx.example.test' },
            { type: 2, value: '*.wild.example.test' },
          ],
        },
      ],
    });
    const self = await generate([{ name: 'commonName', value: 'mx.example.test' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'mx.example.test' }] }],
    });
    return {
      ca: ca.cert,
      leaf: { cert: leaf.cert, key: leaf.private },
      selfSigned: { cert: self.cert, key: self.private },
    };
  })();
  return pki;
}

/**
 * A peer written by the test, byte by byte: `onConnection` gets each socket and a function that
 * calls back once per line the client sends.
 */
export async function startRawPeer(
  onConnection: (socket: Socket, onLine: (handler: (line: string) => void) => void) => void,
): Promise<{ port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket, (handler) => {
      let pending = '';
      socket.on('data', (d: Buffer) => {
        pending += d.toString('latin1');
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
          const line = pending.slice(0, nl).replace(/\r$/, '');
          pending = pending.slice(nl + 1);
          handler(line);
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const peer = {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  opened.push(peer);
  return peer;
}
