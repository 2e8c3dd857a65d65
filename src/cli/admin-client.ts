import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { localTokenPath } from '../admin/token-file.ts';
import { ConfigError } from '../config/errors.ts';
import type { LoadedConfig } from '../config/load.ts';
import { CliError, EXIT_FAILED, EXIT_UNREACHABLE, UsageError } from './errors.ts';
import { printable } from './format.ts';

/**
 * How the command line finds and talks to a node's admin API (docs/admin-api.md).
 *
 * The address: `--url`, else FERRYMAIL_URL, else the first `admin.listen` of the config.
 * The token: `--token`, else FERRYMAIL_TOKEN, else the local token file `<dataDir>/admin/token`
 * that the node writes at start (mode 0600): on the node's own host, as its user, no flag is
 * needed. Failures to reach or authenticate are exit 3; the API refusing an operation is exit 1.
 */

export const DEFAULT_CONFIG = 'config/ferrymail.yaml';

/** parseArgs options every command that talks to the node takes. */
export const CONNECTION_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  config: { type: 'string', short: 'c' },
} as const;

export const CONNECTION_USAGE = `Finding the node: --url <http://host:port> and --token <token>, else the environment's
FERRYMAIL_URL and FERRYMAIL_TOKEN, else --config <file> (default ${DEFAULT_CONFIG}): its first
admin.listen address and the token file <dataDir>/admin/token the node writes (readable only by
the node's user).`;

export interface ConnectionOptions {
  readonly url?: string | undefined;
  readonly token?: string | undefined;
  readonly config?: string | undefined;
}

export interface AdminTarget {
  /** `http://127.0.0.1:8025`, no trailing slash. */
  readonly baseUrl: string;
  readonly token: string;
  /** Where the address came from, for "is it running?" messages. */
  readonly origin: string;
}

/** ms before a request without an answer counts as the node not answering. */
const REQUEST_TIMEOUT_MS = 30_000;

/** `127.0.0.1:8025` or `[::1]:8025` (a binding) as a URL to connect to; wildcard hosts mean this host. */
export function listenUrl(binding: string): string {
  const at = binding.lastIndexOf(':');
  let host = binding.slice(0, at);
  const port = binding.slice(at + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `--url 127.0.0.1:8025` is taken as http://; a trailing slash is dropped. */
export function normalizeUrl(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`--url: not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url: expected http:// or https://, not ${url.protocol}`);
  }
  return url.href.replace(/\/+$/, '');
}

async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'does not exist (has the node been started with this config?)'
        : code === 'EACCES' || code === 'EPERM'
          ? "cannot be read (permission denied): run as the node's user"
          : `cannot be read (${code ?? String(error)})`;
    throw new CliError(EXIT_UNREACHABLE, `the token file ${file} ${reason}; or pass --token`);
  }
  const token = text.trim();
  if (token === '') throw new CliError(EXIT_UNREACHABLE, `the token file ${file} is empty; or pass --token`);
  return token;
}

/** Loads the config only when something is still missing; a config we cannot load means we cannot find the node. */
async function configFor(options: ConnectionOptions, env: NodeJS.ProcessEnv): Promise<LoadedConfig> {
  const file = options.config ?? DEFAULT_CONFIG;
  // Loaded here, not at the top: the schema is most of the CLI's start-up, and --url with --token needs none.
  const { loadConfig } = await import('../config/load.ts');
  try {
    return await loadConfig(file, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new CliError(
        EXIT_UNREACHABLE,
        `cannot find the node: ${error.message}\n(pass --config <file>, or --url and --token)`,
      );
    }
    throw error;
  }
}

/** Works out where the node is and which token to present; throws CliError (exit 3) when it cannot. */
export async function resolveTarget(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AdminTarget> {
  let baseUrl: string | undefined;
  let origin = '';
  if (options.url !== undefined) {
    baseUrl = normalizeUrl(options.url);
    origin = `--url ${baseUrl}`;
  } else if (env.FERRYMAIL_URL) {
    baseUrl = normalizeUrl(env.FERRYMAIL_URL);
    origin = `FERRYMAIL_URL is ${baseUrl}`;
  }
  const token = options.token ?? (env.FERRYMAIL_TOKEN || undefined);
  if (baseUrl !== undefined) {
    if (token !== undefined) return { baseUrl, token, origin };
    // The local token is full admin on this node: it goes only to the address its config names,
    // never to one given by hand, which may be another host and plain HTTP.
    throw new CliError(
      EXIT_UNREACHABLE,
      `${origin}, but no token was given: pass --token or set FERRYMAIL_TOKEN (the local token file is only sent to the node's own admin.listen)`,
    );
  }

  const loaded = await configFor(options, env);
  const first = loaded.config.admin.listen[0];
  if (first === undefined) {
    throw new CliError(
      EXIT_UNREACHABLE,
      `${loaded.file} has no admin.listen: the node serves no admin API (add admin.listen, such as 127.0.0.1:8025, and restart it)`,
    );
  }
  return {
    baseUrl: listenUrl(first),
    token: token ?? (await readTokenFile(localTokenPath(loaded.config.node.dataDir))),
    origin: `admin.listen is ${first} in ${loaded.file}`,
  };
}

interface ApiErrorBody {
  readonly error?: unknown;
  readonly message?: unknown;
}

/** What fetch's "fetch failed" was really about (ECONNREFUSED 127.0.0.1:8025). */
function networkReason(error: unknown, url: string): string {
  const cause = (error as { cause?: unknown }).cause;
  // fetch will not use the ports browsers block (25, 587, 6000…): say so rather than "bad port".
  if (cause instanceof Error && cause.message === 'bad port') {
    return `fetch refuses port ${new URL(url).port}, a port browsers block: listen on another, such as 8025`;
  }
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** A thin client of the admin API: JSON in and out, the API's errors turned into CliErrors. */
export class AdminClient {
  readonly target: AdminTarget;
  readonly #fetch: typeof fetch;

  constructor(target: AdminTarget, fetchImpl: typeof fetch = fetch) {
    this.target = target;
    this.#fetch = fetchImpl;
  }

  /** Sends the request; resolves only to a 2xx response. */
  async request(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    query: Record<string, string | number | boolean | undefined> = {},
  ): Promise<Response> {
    const url = new URL(this.target.baseUrl + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.target.token}`, accept: 'application/json' },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      const timedOut = (error as { name?: unknown }).name === 'TimeoutError';
      throw new CliError(
        EXIT_UNREACHABLE,
        timedOut
          ? `the node at ${this.target.baseUrl} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s (${this.target.origin})`
          : `cannot reach the node at ${this.target.baseUrl} (${networkReason(error, this.target.baseUrl)}): is it running? ${this.target.origin}`,
      );
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => '');
    let body: ApiErrorBody = {};
    try {
      body = JSON.parse(text) as ApiErrorBody;
    } catch {
      // not JSON: a proxy or something that is not a Ferrymail node; the status says enough
    }
    // Printed to a terminal: whatever answered, its text gets no control characters through.
    const reason = printable(
      typeof body.message === 'string' ? body.message : text.trim().slice(0, 200) || response.statusText,
    );
    if (response.status === 401) {
      throw new CliError(
        EXIT_UNREACHABLE,
        `the node at ${this.target.baseUrl} refused the token (401 ${reason}): check --token, FERRYMAIL_TOKEN or the token file`,
      );
    }
    throw new CliError(EXIT_FAILED, `${reason} (${response.status})`);
  }

  async getJson<T>(path: string, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    return (await this.request('GET', path, query)).json() as Promise<T>;
  }

  /** POST or DELETE; the JSON answer, or undefined for 204. */
  async change<T = unknown>(
    method: 'POST' | 'DELETE',
    path: string,
    query?: Record<string, string | number | boolean | undefined>,
  ): Promise<T | undefined> {
    const response = await this.request(method, path, query);
    const text = await response.text();
    return text === '' ? undefined : (JSON.parse(text) as T);
  }

  /** The body as a byte stream (message export). */
  async getStream(path: string): Promise<Readable> {
    const response = await this.request('GET', path);
    if (!response.body) return Readable.from([]);
    return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }
}

/** Resolves the target and builds the client. */
export async function connect(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AdminClient> {
  return new AdminClient(await resolveTarget(options, env));
}
