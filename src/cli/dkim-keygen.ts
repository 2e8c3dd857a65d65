import { generateKeyPair, type KeyObject } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { stringify } from 'yaml';
import { dkimKeySchema } from '../config/schema.ts';

const USAGE = `Usage: ferrymail dkim keygen <domain> <selector> [--type rsa|ed25519] [--bits 2048] [--out <dir>]

  Writes a new private key to <dir>/<domain>.<selector>.key (default dir: ./data/dkim), never
  over an existing file, and prints the DNS TXT record to publish and the dkim.keys entry.
  --bits is the RSA modulus length (1024 to 8192, default 2048).
`;

const DEFAULT_OUT = './data/dkim';
const DEFAULT_RSA_BITS = 2048;
const MIN_RSA_BITS = 1024;
const MAX_RSA_BITS = 8192;
/** One character-string in a TXT record holds at most 255 bytes (RFC 1035 §3.3). */
const TXT_STRING_MAX = 255;

const generate = promisify(generateKeyPair);

class UsageError extends Error {}

type KeyType = 'rsa' | 'ed25519';

interface KeygenOptions {
  readonly domain: string;
  readonly selector: string;
  readonly type: KeyType;
  readonly bits: number;
  readonly out: string;
}

function parse(args: string[]): KeygenOptions {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { type: { type: 'string' }, bits: { type: 'string' }, out: { type: 'string' } },
  });
  if (positionals.length !== 2) throw new UsageError('dkim keygen needs a domain and a selector');
  const domain = dkimKeySchema.shape.domain.safeParse(positionals[0]);
  if (!domain.success) throw new UsageError(`not a domain name: ${positionals[0]}`);
  const selector = dkimKeySchema.shape.selector.safeParse(positionals[1]);
  if (!selector.success) throw new UsageError(`not a DKIM selector: ${positionals[1]}`);
  const type = values.type ?? 'rsa';
  if (type !== 'rsa' && type !== 'ed25519')
    throw new UsageError(`--type must be rsa or ed25519, not ${type}`);
  let bits = DEFAULT_RSA_BITS;
  if (values.bits !== undefined) {
    if (type !== 'rsa') throw new UsageError('--bits is for RSA keys only');
    bits = Number(values.bits);
    if (!/^\d+$/.test(values.bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS)
      throw new UsageError(`--bits must be a whole number from ${MIN_RSA_BITS} to ${MAX_RSA_BITS}`);
  }
  return { domain: domain.data, selector: selector.data, type, bits, out: values.out ?? DEFAULT_OUT };
}

/** The p= value: the SubjectPublicKeyInfo for RSA (RFC 6376), the bare 32-byte key for Ed25519 (RFC 8463). */
export function publicKeyValue(publicKey: KeyObject): string {
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const jwk = publicKey.export({ format: 'jwk' });
    return Buffer.from(jwk.x ?? '', 'base64url').toString('base64');
  }
  return publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** `<selector>._domainkey.<domain>. IN TXT "…" "…"`, the value cut into 255-character strings. */
export function txtRecord(domain: string, selector: string, type: KeyType, p: string): string {
  const value = `v=DKIM1; k=${type}; p=${p}`;
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += TXT_STRING_MAX)
    strings.push(`"${value.slice(i, i + TXT_STRING_MAX)}"`);
  return `${selector}._domainkey.${domain}. IN TXT ${strings.join(' ')}`;
}

async function newKeyPair(
  type: KeyType,
  bits: number,
): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return type === 'rsa' ? generate('rsa', { modulusLength: bits }) : generate('ed25519');
}

/** `ferrymail dkim keygen`: returns the exit code (0 written, 1 refused or failed, 2 wrong use). */
export async function dkimKeygen(args: string[]): Promise<number> {
  let options: KeygenOptions;
  try {
    options = parse(args);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (error instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'))) {
      process.stderr.write(`ferrymail: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  const { domain, selector, type, bits } = options;
  const dir = resolve(options.out);
  const file = join(dir, `${domain}.${selector}.key`);
  const { privateKey, publicKey } = await newKeyPair(type, bits);
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      process.stderr.write(
        `ferrymail: ${file} already exists; not overwriting it (choose another selector)\n`,
      );
      return 1;
    }
    throw error;
  }
  try {
    // The umask may only take bits away, but say it explicitly: nobody else reads a private key.
    await handle.chmod(0o600);
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const entry = stringify([{ domain, selector, privateKeyFile: file }])
    .trimEnd()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
  process.stdout.write(
    [
      `Wrote the ${type === 'rsa' ? `${bits}-bit RSA` : 'Ed25519'} private key to ${file}`,
      '',
      'Publish this DNS record before mail is signed with the key:',
      '',
      txtRecord(domain, selector, type, publicKeyValue(publicKey)),
      '',
      'Then add the key to the config:',
      '',
      'dkim:',
      '  keys:',
      entry,
      '',
    ].join('\n'),
  );
  return 0;
}
