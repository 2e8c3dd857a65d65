import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { domainToASCII } from 'node:url';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DkimKeyConfig } from '../../config/schema.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { type Logger, silentLogger } from '../../core/logger.ts';
import { authorDomain } from './author.ts';

/** RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits. */
const MIN_RSA_BITS = 1024;
/** A header section longer than this is not one we sign (the receive limits keep real ones far below). */
export const MAX_HEADER_SECTION = 1024 * 1024;

/** The fields a signature covers when the message has them: what a reader sees and relies on. */
export const SIGNED_HEADERS: ReadonlyArray<string> = [
  'From',
  'Sender',
  'Reply-To',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'List-Id',
  'List-Help',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
  'List-Subscribe',
  'List-Post',
  'List-Owner',
  'List-Archive',
];

interface SigningKey {
  /** Lower-case A-labels: the d= of its signatures. */
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** PKCS#8 PEM, checked at load; mailauth takes a key as PEM. */
  readonly pem: Buffer;
}

/**
 * DKIM signatures for outbound mail. The key follows the RFC 5322 From: domain (the identity
 * DMARC aligns with): a key for that domain, else the key of its closest parent domain, else no
 * signature. The crypto and canonicalisation are mailauth's; this class picks the key and feeds
 * the message through as a stream.
 */
export class DkimSigner {
  readonly #keys: ReadonlyMap<string, SigningKey>;
  readonly #clock: Clock;
  readonly #logger: Logger;

  private constructor(keys: ReadonlyMap<string, SigningKey>, clock: Clock, logger: Logger) {
    this.#keys = keys;
    this.#clock = clock;
    this.#logger = logger;
  }

  /**
   * Reads and checks every key file (RSA of at least 1024 bits, or Ed25519). A file that cannot
   * be used throws an Error naming the file and what is wrong with it. When a domain is listed
   * twice, the first key listed signs.
   */
  static async load(
    keys: ReadonlyArray<DkimKeyConfig>,
    options: { clock?: Clock; logger?: Logger } = {},
  ): Promise<DkimSigner> {
    const byDomain = new Map<string, SigningKey>();
    for (const config of keys) {
      const key = await loadKey(config);
      if (!byDomain.has(key.domain)) byDomain.set(key.domain, key);
    }
    return new DkimSigner(byDomain, options.clock ?? systemClock, options.logger ?? silentLogger);
  }

  /** The domains that have a key, each once, in lower-case A-labels. */
  get domains(): ReadonlyArray<string> {
    return [...this.#keys.keys()];
  }

  /**
   * The DKIM-Signature header (folded, ending in CRLF) to put in front of the message, or
   * undefined when no key covers it. `openBody` gives the message (headers, empty line, body,
   * CRLF line endings); it is opened once and streamed, never held whole. A message with no
   * usable From: is logged and left unsigned; a failing stream rejects.
   */
  async signatureFor(openBody: () => Readable): Promise<Buffer | undefined> {
    if (this.#keys.size === 0) return undefined;
    const source = openBody();
    const iterator = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      const head = await readHead(iterator);
      if (head.tooLong) {
        this.#logger.warn({ limit: MAX_HEADER_SECTION }, 'DKIM: header section too long, not signing');
        return undefined;
      }
      const author = authorDomain(head.section);
      if ('problem' in author) {
        this.#logger.warn({ problem: author.problem }, 'DKIM: no usable From:, not signing');
        return undefined;
      }
      const key = this.#keyFor(author.domain);
      if (!key) {
        this.#logger.debug({ domain: author.domain }, 'DKIM: no key for the From: domain');
        return undefined;
      }
      const message = Readable.from(replay(head.chunks, iterator, head.done), { objectMode: false });
      const signature = {
        signingDomain: key.domain,
        selector: key.selector,
        privateKey: key.pem,
        algorithm: key.algorithm,
      };
      // mailauth signs what signatureData lists; its types also want the fields at the top level,
      // which it does not read.
      const result = await dkimSign(message, {
        ...signature,
        signatureData: [signature],
        signTime: new Date(this.#clock.now()),
        canonicalization: 'relaxed/relaxed',
        headerList: [...SIGNED_HEADERS],
        strict: true,
      });
      if (result.signatures === '') {
        const reasons = result.errors.map((e) => e.err?.message ?? String(e.err));
        this.#logger.warn(
          { domain: key.domain, selector: key.selector, reasons },
          'DKIM: mailauth made no signature',
        );
        return undefined;
      }
      return Buffer.from(result.signatures, 'utf8');
    } finally {
      // Read to its end when signed, or given up on after the header section: released either way.
      source.destroy();
    }
  }

  /** The key of the domain itself, else of its closest parent domain. */
  #keyFor(domain: string): SigningKey | undefined {
    for (let d = domain; ; d = d.slice(d.indexOf('.') + 1)) {
      const key = this.#keys.get(d);
      if (key) return key;
      if (!d.includes('.')) return undefined;
    }
  }
}

async function loadKey(config: DkimKeyConfig): Promise<SigningKey> {
  const file = config.privateKeyFile;
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      `cannot read the DKIM key ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(error))}`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: bytes, format: 'pem' });
  } catch {
    throw new Error(`the DKIM key ${file} is not a PEM private key (or is encrypted)`);
  }
  let algorithm: SigningKey['algorithm'];
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      throw new Error(
        `the DKIM key ${file} is an RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are needed`,
      );
    algorithm = 'rsa-sha256';
  } else if (key.asymmetricKeyType === 'ed25519') {
    algorithm = 'ed25519-sha256';
  } else {
    throw new Error(
      `the DKIM key ${file} is of type ${key.asymmetricKeyType ?? 'unknown'}; DKIM signs with RSA or Ed25519`,
    );
  }
  const pem = key.export({ type: 'pkcs8', format: 'pem' });
  return {
    domain: domainToASCII(config.domain).toLowerCase(),
    selector: config.selector,
    algorithm,
    pem: Buffer.isBuffer(pem) ? pem : Buffer.from(pem),
  };
}

interface Head {
  /** The header section, with the line ending of its last line, without the empty line. */
  readonly section: Buffer;
  /** Every chunk read so far, to be replayed in front of the rest. */
  readonly chunks: Buffer[];
  /** The source ended while reading. */
  readonly done: boolean;
  readonly tooLong: boolean;
}

/** Reads only as far as the empty line that ends the header section. */
async function readHead(iterator: AsyncIterator<Buffer>): Promise<Head> {
  const chunks: Buffer[] = [];
  let size = 0;
  // The last bytes already read: the empty line may straddle chunks.
  let tail = Buffer.alloc(0);
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { section: Buffer.concat(chunks, size), chunks, done: true, tooLong: false };
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    chunks.push(chunk);
    const window = Buffer.concat([tail, chunk]);
    const windowStart = size - tail.length;
    size += chunk.length;
    const end = endOfHeaders(window, windowStart === 0);
    if (end !== undefined) {
      const section = Buffer.concat(chunks, size).subarray(0, windowStart + end);
      return { section, chunks, done: false, tooLong: false };
    }
    if (size > MAX_HEADER_SECTION) return { section: Buffer.alloc(0), chunks, done: false, tooLong: true };
    tail = Buffer.from(window.subarray(Math.max(0, window.length - 3)));
  }
}

/**
 * Offset in `buf` just past the line ending of the last header line, 0 when the message opens
 * with an empty line (`atStart`: buf begins the message).
 */
function endOfHeaders(buf: Buffer, atStart: boolean): number | undefined {
  if (atStart && (buf[0] === 0x0a || (buf[0] === 0x0d && buf[1] === 0x0a))) return 0;
  for (let i = buf.indexOf(0x0a); i !== -1; i = buf.indexOf(0x0a, i + 1)) {
    const next = buf[i + 1];
    if (next === 0x0a) return i + 1;
    if (next === 0x0d && buf[i + 2] === 0x0a) return i + 1;
    if (next === undefined) break;
  }
  return undefined;
}

/** The chunks already read, then the rest of the source. */
async function* replay(
  chunks: Buffer[],
  iterator: AsyncIterator<Buffer>,
  done: boolean,
): AsyncGenerator<Buffer> {
  try {
    while (chunks.length > 0) yield chunks.shift()!;
    if (done) return;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    }
  } finally {
    await iterator.return?.();
  }
}
