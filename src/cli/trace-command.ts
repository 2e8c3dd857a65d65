import { parseArgs } from 'node:util';
import { TRACKING_EVENTS, type TrackingEventId } from '../observe/events.ts';
import type { StoredTrackingEvent, TrackingPage } from '../tracking/types.ts';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, connect } from './admin-client.ts';
import { joinDashValues, parseCount, parseTime, TIME_FORMATS } from './args.ts';
import { isParseArgsError, UsageError } from './errors.ts';
import { type Column, formatTime, outputWidth, table } from './format.ts';

export const TRACE_USAGE = `Usage: ferrymail trace [filters] [--json]

Searches the message tracking log (Exchange's Get-MessageTrackingLog), oldest first:
  --start <time>          events at or after (default: all that are kept)
  --end <time>            events before
  --event <id>            ${TRACKING_EVENTS.join(' ')}
  --sender <addr>         envelope sender
  --recipient <addr>      one of the event's recipients
  --message-id <id>       the Message-ID header, with or without <>
  --id <queue id>         the message's queue id (internal id)
  --subject <text>        part of the subject
  --limit <1-5000>        at most this many events (default 100)
  --cursor <cursor>       the next page, as printed after a full page
  --json                  the API's answer
Times: ${TIME_FORMATS}.

${CONNECTION_USAGE}

Exit codes: 0 done (also when nothing matches), 1 refused by the node, 2 wrong use, 3 the node
cannot be reached or refused the token.
`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  start: { type: 'string' },
  end: { type: 'string' },
  event: { type: 'string' },
  sender: { type: 'string' },
  recipient: { type: 'string' },
  'message-id': { type: 'string' },
  id: { type: 'string' },
  subject: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface TraceRequest {
  readonly query: Record<string, string | number | undefined>;
  readonly json: boolean;
  readonly help: boolean;
  readonly connection: { url?: string | undefined; token?: string | undefined; config?: string | undefined };
}

function eventId(text: string): TrackingEventId {
  const found = TRACKING_EVENTS.find((e) => e === text.toUpperCase());
  if (!found)
    throw new UsageError(`--event must be one of ${TRACKING_EVENTS.join(', ')}, not ${text}`, TRACE_USAGE);
  return found;
}

/** The command line as the API's query (times as ms since epoch, the API's other accepted form). */
function parseValues(args: string[]) {
  try {
    return parseArgs({ args: joinDashValues(args, ['--start', '--end']), options: OPTIONS }).values;
  } catch (error) {
    if (isParseArgsError(error)) throw new UsageError((error as Error).message, TRACE_USAGE);
    throw error;
  }
}

export function parseTrace(args: string[], now: number = Date.now()): TraceRequest {
  const values = parseValues(args);
  const withUsage = <T>(f: () => T): T => {
    try {
      return f();
    } catch (error) {
      if (error instanceof UsageError && error.usage === undefined)
        throw new UsageError(error.message, TRACE_USAGE);
      throw error;
    }
  };
  const start =
    values.start === undefined ? undefined : withUsage(() => parseTime(values.start!, '--start', now));
  const end = values.end === undefined ? undefined : withUsage(() => parseTime(values.end!, '--end', now));
  if (start !== undefined && end !== undefined && end <= start) {
    throw new UsageError('--end must be after --start', TRACE_USAGE);
  }
  return {
    query: {
      start,
      end,
      eventId: values.event === undefined ? undefined : eventId(values.event),
      sender: values.sender,
      recipient: values.recipient,
      messageId: values['message-id'],
      internalId: values.id,
      subject: values.subject,
      limit:
        values.limit === undefined
          ? undefined
          : withUsage(() => parseCount(values.limit!, '--limit', 1, 5000)),
      cursor: values.cursor,
    },
    json: values.json ?? false,
    help: values.help ?? false,
    connection: { url: values.url, token: values.token, config: values.config },
  };
}

/** Per recipient `addr: status` when they differ; the detail (hop, action, reason) after them. */
export function statusText(e: StoredTrackingEvent): string {
  const statuses = e.recipientStatus.filter(Boolean);
  const distinct = new Set(statuses);
  const perRecipient =
    distinct.size <= 1
      ? [...distinct]
      : e.recipients.map((r, i) => `${r}: ${e.recipientStatus[i] ?? ''}`).filter((s) => !s.endsWith(': '));
  return [...perRecipient, e.detail ?? ''].filter(Boolean).join('; ');
}

const TRACE_COLUMNS: ReadonlyArray<Column<StoredTrackingEvent>> = [
  { header: 'TIME', value: (e) => formatTime(e.time) },
  { header: 'EVENT', value: (e) => e.eventId },
  { header: 'SOURCE', value: (e) => e.source },
  { header: 'ID', value: (e) => e.internalId ?? '' },
  {
    header: 'SENDER',
    value: (e) => (e.sender === undefined ? '' : e.sender === '' ? '<>' : e.sender),
    flex: true,
  },
  { header: 'RECIPIENTS', value: (e) => e.recipients.join(', '), flex: true },
  { header: 'STATUS', value: statusText, flex: true },
];

export function traceTable(events: ReadonlyArray<StoredTrackingEvent>, width: number): string {
  return table(TRACE_COLUMNS, events, width);
}

/** `ferrymail trace`: returns the exit code. */
export async function traceCommand(args: string[]): Promise<number> {
  const request = parseTrace(args);
  if (request.help) {
    process.stdout.write(TRACE_USAGE);
    return 0;
  }
  const client = await connect(request.connection);
  const page = await client.getJson<TrackingPage>('/api/v1/tracking', request.query);
  if (request.json) process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
  else if (page.events.length === 0) process.stdout.write('No tracking events match.\n');
  else process.stdout.write(traceTable(page.events, outputWidth()));
  if (page.nextCursor) process.stderr.write(`(more events: add --cursor ${page.nextCursor})\n`);
  return 0;
}
