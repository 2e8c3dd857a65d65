import { UsageError } from './errors.ts';

/**
 * Argument helpers shared by the operations commands: times (ISO 8601 or relative to now),
 * counts, and option values that start with a dash.
 */

const RELATIVE = /^([+-])(\d{1,9})([smhdw])$/;
const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};
/** A date, optionally a time (to the minute or second, fractions allowed), optionally a zone. */
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

export const TIME_FORMATS = 'ISO 8601 (2026-12-01T09:30:00Z, 2026-12-01), relative (-1h, -30m, -2d) or now';

/**
 * A point in time as ms since epoch: `now`, relative to `now` (`-1h`, `-30m`, `-2d`, `+15m`;
 * units s m h d w), or ISO 8601 (a time without a zone is local time, as `Date` reads it).
 */
export function parseTime(text: string, option: string, now: number = Date.now()): number {
  const value = text.trim();
  if (value.toLowerCase() === 'now') return now;
  const relative = RELATIVE.exec(value);
  if (relative) {
    const ms = Number(relative[2]) * UNIT_MS[relative[3]!]!;
    return relative[1] === '-' ? now - ms : now + ms;
  }
  if (ISO.test(value)) {
    const ms = Date.parse(value.replace(' ', 'T'));
    if (Number.isFinite(ms)) return ms;
  }
  throw new UsageError(`${option}: not a time: ${text} (use ${TIME_FORMATS})`);
}

/** A whole number in [min, max]. */
export function parseCount(text: string, option: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new UsageError(`${option} must be a whole number from ${min} to ${max}, not ${text}`);
  }
  return n;
}

/**
 * parseArgs refuses `--start -1h` (a value that looks like an option); rewrite it as
 * `--start=-1h` for the given string options when the value is a relative time, so the form
 * the documentation shows works as typed.
 */
export function joinDashValues(args: ReadonlyArray<string>, options: ReadonlyArray<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    if (options.includes(arg) && next !== undefined && RELATIVE.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
