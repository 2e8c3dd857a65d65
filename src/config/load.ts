import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { crossCheck } from './cross-check.ts';
import { ConfigError, type ConfigProblem } from './errors.ts';
import { type Config, configSchema } from './schema.ts';

export interface LoadedConfig {
  readonly config: Config;
  /** Absolute path of the file it came from. */
  readonly file: string;
  /** Its folder: relative paths in the config are resolved against it. */
  readonly dir: string;
}

type Path = ReadonlyArray<PropertyKey>;

export function formatPath(path: Path): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out;
}

/**
 * Reads, substitutes `${ENV}` references, validates and resolves a config file. Every problem
 * found is reported at once, each with its line and field.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const absolute = resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(error);
    throw new ConfigError([{ file: absolute, line: 0, column: 0, field: '', message: reason }]);
  }
  return parseConfig(text, absolute, env);
}

export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined, field: string, message: string): ConfigProblem => {
    const pos = offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset);
    return { file, line: pos.line, column: pos.col, field, message };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => at(e.pos[0], '', e.message.split('\n')[0]!)));
  }

  const problems: ConfigProblem[] = [];
  substituteEnv(doc.contents, [], env, (node, path, message) =>
    problems.push(at(node.range?.[0], formatPath(path), message)),
  );
  if (problems.length > 0) throw new ConfigError(problems);

  const raw: unknown = doc.toJS() ?? {};
  const nodeAt = (path: Path): Node | undefined => {
    // Walk down as far as the YAML goes; an error on a missing key points at its parent.
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
  const keyNodeAt = (path: Path, key: string): Node | undefined => {
    const parent = nodeAt(path);
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === key);
      if (pair && isScalar(pair.key)) return pair.key;
    }
    return parent;
  };

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(...describeIssue(issue, nodeAt, keyNodeAt, at));
    }
    throw new ConfigError(problems);
  }
  const dir = dirname(file);
  const config = resolvePaths(parsed.data, dir);
  for (const p of crossCheck(config))
    problems.push(at(nodeAt(p.path)?.range?.[0], formatPath(p.path), p.message));
  if (problems.length > 0) throw new ConfigError(problems);
  return { config, file, dir };
}

function describeIssue(
  issue: z.core.$ZodIssue,
  nodeAt: (path: Path) => Node | undefined,
  keyNodeAt: (path: Path, key: string) => Node | undefined,
  at: (offset: number | undefined, field: string, message: string) => ConfigProblem,
): ConfigProblem[] {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) =>
      at(keyNodeAt(path, key)?.range?.[0], formatPath([...path, key]), `unknown field '${key}'`),
    );
  }
  if (issue.code === 'invalid_union') {
    // Our unions are "number or a string with a unit": the string branch says what is expected.
    const messages = issue.errors.flat().map((e) => e.message);
    const best = messages.find((m) => m.startsWith('expected a ')) ?? messages[0] ?? issue.message;
    return [at(nodeAt(path)?.range?.[0], formatPath(path), best)];
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = `required: ${message}`;
  else if (issue.code === 'invalid_value')
    message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  return [at(nodeAt(path)?.range?.[0], formatPath(path), message)];
}

const ENV_REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replaces `${NAME}` in every string scalar with the environment's value; `$${` stays a literal `${`. */
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
    node.items.forEach((item, i) => substituteEnv(item, [...path, i], env, report));
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
    node.value = node.value.replace(ENV_REFERENCE, (match, name: string | undefined) => {
      if (name === undefined) return '${';
      const value = env[name];
      if (value === undefined) {
        report(node, path, `environment variable ${name} is not set`);
        return match;
      }
      return value;
    });
  }
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
      return certificate ? { ...c, tls: { ...c.tls, certificate } } : c;
    }),
  };
}
