import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One protocol log line, by Exchange's field names. */
export interface LogRecord {
  readonly dateTime: string;
  readonly connector: string;
  readonly sessionId: string;
  readonly sequence: number;
  readonly local: string;
  readonly remote: string;
  readonly event: string;
  readonly data: string;
  readonly context: string;
}

export interface LogFile {
  readonly name: string;
  readonly raw: string;
  /** The `#...` lines at the top. */
  readonly header: string[];
  readonly records: LogRecord[];
}

/** Splits one CSV line (RFC 4180 quoting) into fields; throws on a malformed line. */
export function parseCsvLine(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new Error(`unterminated quote in ${line}`);
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      fields.push(value);
    } else {
      const comma = line.indexOf(',', i);
      fields.push(comma < 0 ? line.slice(i) : line.slice(i, comma));
      i = comma < 0 ? line.length : comma;
    }
    if (i >= line.length) return fields;
    if (line[i] !== ',') throw new Error(`expected a comma at ${i} in ${line}`);
    i++;
  }
}

/** Reads a protocol log file: every line must end in CRLF and data lines must have 9 fields. */
export function parseLogFile(name: string, raw: string): LogFile {
  if (raw !== '' && !raw.endsWith('\r\n')) throw new Error(`${name} does not end with a whole line`);
  const lines = raw.split('\r\n').slice(0, -1);
  const header: string[] = [];
  const records: LogRecord[] = [];
  for (const line of lines) {
    if (line.includes('\n') || line.includes('\r')) throw new Error(`${name}: a bare line break in ${line}`);
    if (line.startsWith('#')) {
      header.push(line);
      continue;
    }
    const f = parseCsvLine(line);
    if (f.length !== 9) throw new Error(`${name}: ${f.length} fields in ${line}`);
    records.push({
      dateTime: f[0]!,
      connector: f[1]!,
      sessionId: f[2]!,
      sequence: Number(f[3]),
      local: f[4]!,
      remote: f[5]!,
      event: f[6]!,
      data: f[7]!,
      context: f[8]!,
    });
  }
  return { name, raw, header, records };
}

/** Every log file in a folder (none when it does not exist), in name order. */
export async function readLogFolder(dir: string): Promise<LogFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  } catch {
    return [];
  }
  return Promise.all(names.map(async (n) => parseLogFile(n, await readFile(join(dir, n), 'utf8'))));
}

/** All records of a folder, file after file. */
export async function readRecords(dir: string): Promise<LogRecord[]> {
  return (await readLogFolder(dir)).flatMap((f) => f.records);
}

/** Every byte of every file of a folder, as one string (for "never appears anywhere" checks). */
export async function rawText(dir: string): Promise<string> {
  return (await readLogFolder(dir)).map((f) => f.raw).join('');
}

/** The records of each session, in order of their first line. */
export function bySession(records: ReadonlyArray<LogRecord>): Map<string, LogRecord[]> {
  const sessions = new Map<string, LogRecord[]>();
  for (const r of records) {
    const list = sessions.get(r.sessionId) ?? [];
    list.push(r);
    sessions.set(r.sessionId, list);
  }
  return sessions;
}

/** Polls a folder until its records satisfy `done` (lines reach the file a moment after the event). */
export async function waitForRecords(
  dir: string,
  done: (records: LogRecord[]) => boolean,
  timeoutMs = 10_000,
): Promise<LogRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = await readRecords(dir);
    if (done(records)) return records;
    if (Date.now() > deadline) {
      throw new Error(
        `protocol log in ${dir} did not reach the expected state; it holds:\n${records
          .map((r) => `${r.sessionId} ${r.sequence} ${r.event} ${r.data} ${r.context}`)
          .join('\n')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
