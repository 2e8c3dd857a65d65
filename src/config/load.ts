import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, Scalar } from 'yaml';
import { crossCheck } from './cross-check.ts';
import { ConfigError, type ConfigProblem } from './errors.ts';
import { describeIssue, expectsText } from './issue-messages.ts';
import { type Config, configSchema } from './schema.ts';

export interface LoadedConfig {
  readonly config: Config;
  /** Absolute path of the file it came from. */
  readonly file: string;
  /** Its folder: relative paths in the config are resolved against it. */
  readonly dir: string;
}

type Path = ReadonlyArray<PropertyKey>;

/** `receiveConnectors[1].limits.maxRecipients` */
export function formatPath(path: Path): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out;
}

/**
 * Reads, substitutes `${ENV}` references, validates and resolves a config file. Every problem
 * found is reported at once (a `ConfigError`), each with its line, column and field.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const absolute = resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EISDIR'
          ? 'is a folder, not a file'
          : `cannot read the file (${code ?? String(error)})`;
    throw new ConfigError([{ file: absolute, line: 0, column: 0, field: '', message: reason }]);
  }
  return parseConfig(text, absolute, env);
}

/** `loadConfig` on text already read; `file` names it in errors and anchors relative paths. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined, field: string, message: string): ConfigProblem => {
    const pos = offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset);
    return { file, line: pos.line, column: pos.col, field, message };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      sorted(
        doc.errors.map((e) => {
          const message =
            e.code === 'DUPLICATE_KEY'
              ? `duplicate key '${keyTextAt(text, e.pos[0])}': each field may appear once`
              : e.message.split('\n')[0]!;
          return at(e.pos[0], '', message);
        }),
      ),
    );
  }

  const problems: ConfigProblem[] = [];
  // Fields whose value is still an unresolved `${NAME}`: their other complaints would only be noise.
  const unresolved = new Set<string>();
  substituteEnv(doc.contents, [], env, (node, path, message) => {
    unresolved.add(formatPath(path));
    problems.push(at(node.range?.[0], formatPath(path), message));
  });

  const raw: unknown = doc.toJS() ?? {};
  const nodeAt = (path: Path): Node | undefined => {
    // Walk down as far as the YAML goes; a missing key is reported at its parent.
    let node: unknown = doc.contents;
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
        if (!pair) break;
        node = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof key === 'number' && node.items[key] !== undefined) {
        node = node.items[key];
      } else break;
    }
    return node as Node | undefined;
  };
  const report = (path: Path, field: Path, message: string) => {
    const name = formatPath(field);
    if (!unresolved.has(name)) problems.push(at(nodeAt(path)?.range?.[0], name, message));
  };

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const d of describeIssue(issue, (path) => valueAt(raw, path))) {
        if (issue.code === 'unrecognized_keys') {
          const key = d.path.at(-1) as string;
          const parent = nodeAt(d.path.slice(0, -1));
          const pair = isMap(parent)
            ? parent.items.find((p) => isScalar(p.key) && p.key.value === key)
            : undefined;
          const offset = pair && isScalar(pair.key) ? pair.key.range?.[0] : parent?.range?.[0];
          problems.push(at(offset, formatPath(d.field), d.message));
        } else report(d.path, d.field, d.message);
      }
    }
    throw new ConfigError(sorted(problems));
  }
  const dir = dirname(file);
  const config = resolvePaths(parsed.data, dir);
  for (const p of crossCheck(config)) report(p.path, p.path, p.message);
  if (problems.length > 0) throw new ConfigError(sorted(problems));
  return { config, file, dir };
}

function sorted(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** The key a duplicate-key error points at, as written. */
function keyTextAt(text: string, offset: number): string {
  return /^[^:\n]*/
    .exec(text.slice(offset))![0]
    .trim()
    .replace(/^["']|["']$/g, '');
}

function valueAt(root: unknown, path: Path): unknown {
  let value = root;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

const ENV_REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replaces `${NAME}` in every string scalar with the environment's value; `$${` stays a literal
 * `${`. An unquoted value that becomes a number or true/false is read as one, so
 * `maxRecipients: ${MAX_RCPT}` works; quote it to keep it text.
 */
function substituteEnv(
  node: unknown,
  path: PropertyKey[],
  env: NodeJS.ProcessEnv,
  report: (node: Node, path: Path, message: string) => void,
): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      substituteEnv(pair.value, [...path, key], env, report);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      substituteEnv(item, [...path, i], env, report);
    });
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
    let missing = false;
    const value = node.value.replace(ENV_REFERENCE, (match, name: string | undefined) => {
      if (name === undefined) return '${';
      const found = env[name];
      if (found === undefined) {
        report(node, path, `environment variable ${name} is not set`);
        missing = true;
        return match;
      }
      return found;
    });
    // A plain scalar gets the type YAML would have given the text, except in a text field: a
    // password of digits must stay text (and a type error would print it).
    node.value = missing || node.type !== Scalar.PLAIN || expectsText(path) ? value : plainValue(value);
  }
}

function plainValue(text: string): string | number | boolean {
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}

function resolvePaths(config: Config, dir: string): Config {
  const files = (f: { cert: string; key: string } | undefined) =>
    f ? { cert: resolve(dir, f.cert), key: resolve(dir, f.key) } : undefined;
  const nodeCert = files(config.node.certificate);
  return {
    ...config,
    node: {
      ...config.node,
      dataDir: resolve(dir, config.node.dataDir),
      ...(nodeCert ? { certificate: nodeCert } : {}),
    },
    receiveConnectors: config.receiveConnectors.map((c) => {
      const certificate = files(c.tls.certificate);
      const certificates = c.tls.certificates?.map((f) => files(f)!);
      const clients = c.tls.clientCertificates;
      const clientCertificates = clients ? { ...clients, caFile: resolve(dir, clients.caFile) } : undefined;
      return {
        ...c,
        tls: {
          ...c.tls,
          ...(certificate ? { certificate } : {}),
          ...(certificates ? { certificates } : {}),
          ...(clientCertificates ? { clientCertificates } : {}),
        },
      };
    }),
    sendConnectors: config.sendConnectors.map((c) => ({
      ...c,
      auth: c.auth.passwordFile ? { ...c.auth, passwordFile: resolve(dir, c.auth.passwordFile) } : c.auth,
      tls: c.tls.caFile ? { ...c.tls, caFile: resolve(dir, c.tls.caFile) } : c.tls,
    })),
    dkim: {
      ...config.dkim,
      keys: config.dkim.keys.map((k) => ({ ...k, privateKeyFile: resolve(dir, k.privateKeyFile) })),
    },
    ...(config.oauth?.jwksFile !== undefined
      ? { oauth: { ...config.oauth, jwksFile: resolve(dir, config.oauth.jwksFile) } }
      : {}),
    // Always set once loaded: the default follows dataDir (node.ts relies on it).
    protocolLog: {
      ...config.protocolLog,
      dir: resolve(dir, config.protocolLog.dir ?? resolve(dir, config.node.dataDir, 'logs', 'protocol')),
    },
  };
}

/**
 * Problems found after loading — files the config names that cannot be used, checked when a node
 * starts — located in the file as written (line 0 when it cannot be read again).
 */
export async function locatedError(
  loaded: LoadedConfig,
  found: ReadonlyArray<{ path: Path; message: string }>,
): Promise<ConfigError> {
  let text = '';
  try {
    text = await readFile(loaded.file, 'utf8');
  } catch {
    // Not located, still reported.
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  return new ConfigError(
    sorted(
      found.map((p) => {
        let node: unknown = doc.contents;
        for (const key of p.path) {
          if (isMap(node)) {
            const pair = node.items.find((i) => isScalar(i.key) && i.key.value === key);
            if (!pair) break;
            node = pair.value ?? pair.key;
          } else if (isSeq(node) && typeof key === 'number' && node.items[key] !== undefined) {
            node = node.items[key];
          } else break;
        }
        const offset = text === '' ? undefined : (node as Node | undefined)?.range?.[0];
        const pos = offset === undefined ? { line: 0, col: 0 } : lineCounter.linePos(offset);
        return {
          file: loaded.file,
          line: pos.line,
          column: pos.col,
          field: formatPath(p.path),
          message: p.message,
        };
      }),
    ),
  );
}
