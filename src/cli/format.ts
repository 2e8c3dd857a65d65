/**
 * Plain-text output of the operations commands: tables that fit the terminal, times an
 * administrator can paste back into `--start`, and values made safe to print (a subject or a
 * remote server's reply is attacker-controlled text; control characters could drive the terminal).
 */

export interface Column<Row> {
  readonly header: string;
  readonly value: (row: Row) => string;
  /** May be cut (with …) so the table fits the width; fixed columns never are. */
  readonly flex?: boolean;
  /** Right-aligned (numbers). */
  readonly right?: boolean;
  /** A flex column is not cut below this (default 8, or its header when longer). */
  readonly min?: number;
}

const MIN_WIDTH = 20;

/** Columns of a terminal; else COLUMNS from the environment (`COLUMNS=200 ferrymail … | less`); else 80. */
export function outputWidth(
  stream: { isTTY?: boolean; columns?: number } = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): number {
  if (stream.isTTY && stream.columns && stream.columns >= MIN_WIDTH) return stream.columns;
  const columns = Number(env.COLUMNS);
  return Number.isInteger(columns) && columns >= MIN_WIDTH ? columns : 80;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

/** One printable line: control characters (C0, DEL, C1) become spaces. */
export function printable(text: string): string {
  return text.replace(CONTROL, ' ');
}

/** Cuts to `width` characters (code points), the last one an ellipsis when cut. */
export function truncate(text: string, width: number): string {
  const chars = Array.from(text);
  if (chars.length <= width) return text;
  if (width <= 0) return '';
  return `${chars.slice(0, width - 1).join('')}…`;
}

const length = (text: string) => Array.from(text).length;

function pad(text: string, width: number, right: boolean | undefined): string {
  const fill = ' '.repeat(Math.max(0, width - length(text)));
  return right ? fill + text : text + fill;
}

const MIN_FLEX = 8;
const GAP = 2;

/**
 * A table with a header line, columns two spaces apart, no line longer than `width`: the widest
 * flex column gives way first, down to a minimum; the last column is not padded.
 */
export function table<Row>(
  columns: ReadonlyArray<Column<Row>>,
  rows: ReadonlyArray<Row>,
  width: number,
): string {
  const cells = rows.map((row) => columns.map((c) => printable(c.value(row))));
  const widths = columns.map((c, i) => Math.max(length(c.header), ...cells.map((r) => length(r[i]!))));
  const total = () => widths.reduce((a, b) => a + b, 0) + GAP * (columns.length - 1);
  const floor = (i: number) =>
    Math.min(widths[i]!, Math.max(columns[i]!.min ?? MIN_FLEX, length(columns[i]!.header)));
  while (total() > width) {
    let widest = -1;
    for (let i = 0; i < columns.length; i++) {
      if (columns[i]!.flex && widths[i]! > floor(i) && (widest < 0 || widths[i]! > widths[widest]!))
        widest = i;
    }
    if (widest < 0) break; // nothing left to shrink: the fixed columns alone are wider
    widths[widest] = Math.max(floor(widest), widths[widest]! - (total() - width));
  }
  const line = (values: ReadonlyArray<string>) =>
    values
      .map((v, i) => {
        const cut = truncate(v, widths[i]!);
        return i === values.length - 1 && !columns[i]!.right ? cut : pad(cut, widths[i]!, columns[i]!.right);
      })
      .join(' '.repeat(GAP))
      .trimEnd();
  return `${[line(columns.map((c) => c.header)), ...cells.map(line)].join('\n')}\n`;
}

/** `2026-12-01T09:30:00Z`: UTC, to the second, accepted back by `--start`. */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** How long until `at`, roughly: `now` when due, `in 45s`, `in 4m`, `in 2h 5m`, `in 3d 4h`. */
export function formatIn(at: number | undefined, now: number): string {
  if (at === undefined || !Number.isFinite(at)) return '';
  const s = Math.round((at - now) / 1000);
  if (s <= 0) return 'now';
  if (s < 60) return `in ${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `in ${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `in ${h}h${m % 60 ? ` ${m % 60}m` : ''}`;
  const d = Math.floor(h / 24);
  return `in ${d}d${h % 24 ? ` ${h % 24}h` : ''}`;
}

/** 512 B, 12.3 KB, 4.0 MB (binary multiples, as a mail client shows sizes). */
export function formatSize(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  return `${(bytes / (1024 * 1024 * 1024)).toFixed(1)} GB`;
}

/** `name: value` lines, the names aligned; empty values are left out. */
export function fields(pairs: ReadonlyArray<readonly [string, string | undefined]>): string {
  const shown = pairs.filter((p): p is readonly [string, string] => p[1] !== undefined && p[1] !== '');
  const w = Math.max(0, ...shown.map(([k]) => k.length)) + 1;
  return shown.map(([k, v]) => `${`${k}:`.padEnd(w)} ${printable(v)}\n`).join('');
}
