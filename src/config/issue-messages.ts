import type { z } from 'zod';
import { configSchema } from './schema.ts';
import { duration, size } from './units.ts';

/**
 * Turns zod's issues into sentences an administrator can act on: what the field expects and
 * what the file says instead. zod's own wording ("Invalid input: expected number, received
 * string") names JavaScript types, not what to write in YAML.
 */

type Path = ReadonlyArray<PropertyKey>;

interface SchemaDef {
  readonly type: string;
  readonly innerType?: Schema;
  readonly shape?: Record<string, Schema>;
  readonly element?: Schema;
  readonly valueType?: Schema;
  readonly in?: Schema;
}
interface Schema {
  readonly _zod: { readonly def: unknown };
}

const DURATION_HINT = 'expected a duration such as 30s, 5m, 4h or 2d (or a number of milliseconds)';
const SIZE_HINT = 'expected a size such as 256KB, 36MB or 1GB (or a number of bytes)';

/** The schema of the field at `path`, without its default/optional wrapper. */
function schemaAt(path: Path): Schema | undefined {
  let schema: Schema | undefined = unwrap(configSchema);
  for (const key of path) {
    if (!schema) return undefined;
    const def = schema._zod.def as SchemaDef;
    if (def.type === 'object' && typeof key === 'string') schema = def.shape?.[key];
    else if (def.type === 'array' && typeof key === 'number') schema = def.element;
    else if (def.type === 'record') schema = def.valueType;
    else return undefined;
    schema = schema && unwrap(schema);
  }
  return schema;
}

/**
 * True when the field at `path` takes only text (a password, a name), so a value substituted from
 * the environment stays text even when it looks like a number or `true`.
 */
export function expectsText(path: Path): boolean {
  let schema = schemaAt(path);
  for (let def = schema?._zod.def as SchemaDef | undefined; def?.type === 'pipe' && def.in; ) {
    schema = def.in;
    def = schema._zod.def as SchemaDef;
  }
  return (schema?._zod.def as SchemaDef | undefined)?.type === 'string';
}

function unwrap(schema: Schema): Schema {
  let s = schema;
  for (;;) {
    const def = s._zod.def as SchemaDef;
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'prefault') && def.innerType)
      s = def.innerType;
    else return s;
  }
}

function unitHint(path: Path): string | undefined {
  const schema = schemaAt(path);
  if (schema === duration) return DURATION_HINT;
  if (schema === size) return SIZE_HINT;
  return undefined;
}

const EXPECTED: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a map of fields',
  record: 'a map of fields',
};

/** How a YAML value reads to its author: `a list`, `the text "many"`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string')
    return `the text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'a map of fields';
  return String(value);
}

function bound(issue: { minimum?: unknown; maximum?: unknown; inclusive?: boolean }, below: boolean): string {
  const limit = Number(below ? issue.minimum : issue.maximum);
  if (issue.inclusive === false) return below ? `greater than ${limit}` : `less than ${limit}`;
  return below ? `at least ${limit}` : `at most ${limit}`;
}

export interface DescribedIssue {
  /** Where the problem is: the path to point the line at. */
  readonly path: Path;
  readonly field: Path;
  readonly message: string;
}

/**
 * One issue, or several for unknown keys (each at its own key). `valueAt` reads the parsed
 * YAML so the message can quote what was written.
 */
export function describeIssue(issue: z.core.$ZodIssue, valueAt: (path: Path) => unknown): DescribedIssue[] {
  const path = issue.path;
  const one = (message: string): DescribedIssue[] => [{ path, field: path, message }];
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key],
        field: [...path, key],
        message: `unknown field '${key}'`,
      }));
    case 'invalid_union': {
      const hint = unitHint(path);
      const got = describeValue(valueAt(path));
      if (hint) return one(`${hint}, got ${got}`);
      const nested = issue.errors.flat().map((e) => e.message);
      return one(nested.find((m) => m.startsWith('expected a ')) ?? `${issue.message}, got ${got}`);
    }
    case 'invalid_type': {
      const value = valueAt(path);
      const field = path.at(-1);
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      if (value === undefined) {
        return one(
          typeof field === 'string' ? `'${field}' is required (${expected})` : `expected ${expected}`,
        );
      }
      const hint = unitHint(path);
      return one(`${hint ?? `expected ${expected}`}, got ${describeValue(value)}`);
    }
    case 'invalid_value':
      return one(
        `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(valueAt(path))}`,
      );
    case 'too_small':
      if (issue.origin === 'array')
        return one(
          `expected at least ${Number(issue.minimum)} entr${Number(issue.minimum) === 1 ? 'y' : 'ies'}`,
        );
      if (issue.origin === 'string') return one('must not be empty');
      return one(
        `${unitHint(path) ?? `expected a number ${bound(issue, true)}`}, got ${describeValue(valueAt(path))}`,
      );
    case 'too_big':
      if (issue.origin === 'array') return one(`expected at most ${Number(issue.maximum)} entries`);
      return one(
        `${unitHint(path) ?? `expected a number ${bound(issue, false)}`}, got ${describeValue(valueAt(path))}`,
      );
    case 'invalid_format':
      // Our patterns carry their own "expected ... such as ..." message.
      return one(issue.message);
    default:
      return one(issue.message);
  }
}
