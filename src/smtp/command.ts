/**
 * Parsing of SMTP command lines (RFC 5321 §4.1) into a verb, a path and ESMTP parameters.
 * Pure functions: the session decides what each result means.
 */

export interface CommandLine {
  /** Upper-cased verb. */
  readonly verb: string;
  /** Everything after the verb and one space. */
  readonly args: string;
}

export function splitCommand(line: string): CommandLine {
  const space = line.indexOf(' ');
  if (space < 0) return { verb: line.toUpperCase(), args: '' };
  return { verb: line.slice(0, space).toUpperCase(), args: line.slice(space + 1) };
}

export type PathArgs =
  | { ok: true; path: string; params: ReadonlyMap<string, string | true> }
  | { ok: false; reason: 'syntax' | 'param' };

/**
 * `FROM:<path> [params]` / `TO:<path> [params]`. A space after the colon is tolerated (many
 * clients send it). A source route (`<@a,@b:user@c>`) is accepted and dropped (RFC 5321 §4.1.2).
 * Parameter keys are upper-cased; a repeated key is an error.
 */
export function parsePathArgs(args: string, keyword: 'FROM' | 'TO'): PathArgs {
  const prefix = `${keyword}:`;
  if (args.slice(0, prefix.length).toUpperCase() !== prefix) return { ok: false, reason: 'syntax' };
  let rest = args.slice(prefix.length);
  if (rest.startsWith(' ')) rest = rest.slice(1);
  if (!rest.startsWith('<')) return { ok: false, reason: 'syntax' };
  const close = findPathEnd(rest);
  if (close < 0) return { ok: false, reason: 'syntax' };
  let path = rest.slice(1, close);
  const routeEnd = path.startsWith('@') ? path.indexOf(':') : -1;
  if (path.startsWith('@')) {
    if (routeEnd < 0) return { ok: false, reason: 'syntax' };
    path = path.slice(routeEnd + 1);
  }
  const tail = rest.slice(close + 1);
  if (tail.length > 0 && !tail.startsWith(' ')) return { ok: false, reason: 'syntax' };
  const params = new Map<string, string | true>();
  for (const token of tail.split(' ')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const key = (eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key) || params.has(key)) return { ok: false, reason: 'param' };
    const value = eq < 0 ? true : token.slice(eq + 1);
    if (value === '') return { ok: false, reason: 'param' };
    params.set(key, value);
  }
  return { ok: true, path, params };
}

/** Index of the `>` closing the path, skipping quoted local parts. */
function findPathEnd(text: string): number {
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '>' && !quoted) return i;
  }
  return -1;
}
