import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import type { MessageStatus, QueuedMessageView, QueueSummary } from '../queue/admin-types.ts';
import { queueName } from '../queue/queue-name.ts';
import type { QueuedRecipient } from '../queue/types.ts';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, connect } from './admin-client.ts';
import { parseCount } from './args.ts';
import { isParseArgsError, UsageError } from './errors.ts';
import { type Column, fields, formatIn, formatSize, formatTime, outputWidth, table } from './format.ts';

export const QUEUE_USAGE = `Usage: ferrymail queue <command> [options]

  list [--json]                        every queue: name, type, status, messages, next retry, last error
  show <queue> [filters] [--json]      the queue's messages; filters: --status <Active|Ready|Retry|
                                       Suspended|Poison> --sender <addr> --recipient <addr>
                                       --subject <text> --limit <1-1000> --after <message id>
  show <message-id> [--json]           one message, every recipient's status and last response
  retry <queue>                        make every waiting recipient of the queue due now
  suspend <queue-or-message-id>        stop delivering it (survives restarts)
  resume <queue-or-message-id>         deliver it again
  remove <message-id> --ndr|--no-ndr   delete it; with --ndr the sender gets a non-delivery report
  export <message-id> [--out <file>]   the stored message (.eml), exactly, to stdout or a file
  resubmit <message-id>                route its undelivered recipients again, due now
  release <message-id>                 take it out of the Poison queue, back to delivery

Queues are named mailbox, unreachable, poison and smtp:<domain or smart hosts>; anything else is
taken as a message id. --json prints the API's answer.

${CONNECTION_USAGE}

Exit codes: 0 done, 1 refused by the node (unknown queue or message, operation that does not
apply), 2 wrong use, 3 the node cannot be reached or refused the token.
`;

const QUEUE_WORDS = new Set(['mailbox', 'unreachable', 'poison']);

/** Queue names as in src/queue/admin-types.ts; message ids are everything else. */
export function isQueueName(text: string): boolean {
  return QUEUE_WORDS.has(text.toLowerCase()) || /^smtp:./i.test(text);
}

const STATUSES: ReadonlyArray<MessageStatus> = ['Active', 'Ready', 'Retry', 'Suspended', 'Poison'];

export function parseStatus(text: string): MessageStatus {
  const found = STATUSES.find((s) => s.toLowerCase() === text.toLowerCase());
  if (!found)
    throw new UsageError(`--status must be one of ${STATUSES.join(', ')}, not ${text}`, QUEUE_USAGE);
  return found;
}

const queuePath = (name: string) => `/api/v1/queues/${encodeURIComponent(name)}`;
const messagePath = (id: string) => `/api/v1/messages/${encodeURIComponent(id)}`;

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value ?? {}, null, 2)}\n`);
}

/** The newest reply of an undelivered recipient, else the newest of any: what an administrator asks first. */
export function lastResponse(message: Pick<QueuedMessageView, 'recipients'>): string {
  const withResponse = message.recipients.filter((r) => r.lastResponse);
  const open = withResponse.filter((r) => r.status !== 'delivered');
  const pool = open.length > 0 ? open : withResponse;
  const newest = pool.reduce<QueuedRecipient | undefined>(
    (best, r) => (best === undefined || r.updatedAt > best.updatedAt ? r : best),
    undefined,
  );
  return newest?.lastResponse ?? '';
}

/** Exchange's delivery types, short enough for an 80-column table (--json has the full names). */
const SHORT_TYPE: Record<QueueSummary['deliveryType'], string> = {
  MailboxDelivery: 'Mailbox',
  DnsConnectorDelivery: 'Dns',
  SmartHostConnectorDelivery: 'SmartHost',
  Unreachable: 'Unreachable',
  Poison: 'Poison',
};

/** `now` anchors NEXT RETRY (`in 4m`): when it happens matters more than the clock time. */
export function queueTable(
  queues: ReadonlyArray<QueueSummary>,
  width: number,
  now: number = Date.now(),
): string {
  const columns: ReadonlyArray<Column<QueueSummary>> = [
    { header: 'QUEUE', value: (q) => q.name, flex: true, min: 16 },
    { header: 'TYPE', value: (q) => SHORT_TYPE[q.deliveryType] ?? q.deliveryType },
    { header: 'STATUS', value: (q) => q.status },
    { header: 'MESSAGES', value: (q) => String(q.messageCount), right: true },
    { header: 'NEXT RETRY', value: (q) => formatIn(q.nextRetryAt, now) },
    { header: 'LAST ERROR', value: (q) => q.lastError ?? '', flex: true },
  ];
  return table(columns, queues, width);
}

const MESSAGE_COLUMNS: ReadonlyArray<Column<QueuedMessageView>> = [
  { header: 'ID', value: (m) => m.id },
  { header: 'FROM', value: (m) => (m.sender === '' ? '<>' : m.sender), flex: true },
  { header: 'RECEIVED', value: (m) => formatTime(m.receivedAt) },
  { header: 'SIZE', value: (m) => formatSize(m.size), right: true },
  { header: 'STATUS', value: (m) => m.status },
  { header: 'RECIPIENTS', value: (m) => m.recipients.map((r) => r.address).join(', '), flex: true },
  { header: 'LAST RESPONSE', value: lastResponse, flex: true },
];

export function messageTable(messages: ReadonlyArray<QueuedMessageView>, width: number): string {
  return table(MESSAGE_COLUMNS, messages, width);
}

const RECIPIENT_COLUMNS: ReadonlyArray<Column<QueuedRecipient>> = [
  { header: 'RECIPIENT', value: (r) => r.address, flex: true },
  { header: 'STATUS', value: (r) => r.status },
  { header: 'QUEUE', value: (r) => queueName(r.nextHop), flex: true },
  { header: 'ATTEMPTS', value: (r) => String(r.attempts), right: true },
  { header: 'NEXT ATTEMPT', value: (r) => (r.status === 'pending' ? formatTime(r.nextAttemptAt) : '') },
  { header: 'LAST RESPONSE', value: (r) => r.lastResponse ?? '', flex: true },
];

/** One message: its facts, then a line per recipient. */
export function messageDetail(m: QueuedMessageView, width: number): string {
  const o = m.origin;
  const origin = [
    `${o.clientIp}${o.clientHelo ? ` (${o.clientHelo})` : ''} on ${o.connector}`,
    o.tls ? 'TLS' : '',
    o.authUser ? `authenticated as ${o.authUser}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const auth = m.authResults
    ? `spf=${m.authResults.spf} dkim=${m.authResults.dkim} dmarc=${m.authResults.dmarc} arc=${m.authResults.arc}`
    : undefined;
  return `${fields([
    ['ID', m.id],
    ['Message-ID', m.messageId],
    ['Subject', m.subject],
    ['From', m.sender === '' ? '<>' : m.sender],
    ['Status', m.status],
    ['Queues', m.queues.join(', ')],
    ['Received', `${formatTime(m.receivedAt)} from ${origin}`],
    ['Expires', formatTime(m.expiresAt)],
    ['Size', formatSize(m.size)],
    ['Auth', auth],
    ['Crashes', m.crashCount > 0 ? String(m.crashCount) : undefined],
  ])}\n${table(RECIPIENT_COLUMNS, m.recipients, width)}`;
}

const FILTER_OPTIONS = {
  status: { type: 'string' },
  sender: { type: 'string' },
  recipient: { type: 'string' },
  subject: { type: 'string' },
  limit: { type: 'string' },
  after: { type: 'string' },
} as const;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  ...FILTER_OPTIONS,
  json: { type: 'boolean' },
  ndr: { type: 'boolean' },
  'no-ndr': { type: 'boolean' },
  out: { type: 'string', short: 'o' },
} as const;

type OptionName = keyof typeof OPTIONS;
const CONNECTION_NAMES = Object.keys(CONNECTION_OPTIONS) as OptionName[];

/**
 * Parses one queue subcommand's arguments with every queue option, then refuses the ones this
 * subcommand does not take (so `queue list --ndr` is a usage error, not silently ignored).
 */
function parse(command: string, args: string[], allowed: ReadonlyArray<OptionName>) {
  let parsed: ReturnType<typeof parseAll>;
  try {
    parsed = parseAll(args);
  } catch (error) {
    if (isParseArgsError(error)) throw new UsageError((error as Error).message, QUEUE_USAGE);
    throw error;
  }
  for (const name of Object.keys(parsed.values) as OptionName[]) {
    if (!allowed.includes(name) && !CONNECTION_NAMES.includes(name)) {
      throw new UsageError(`queue ${command} does not take --${name}`, QUEUE_USAGE);
    }
  }
  return parsed;
}

function parseAll(args: string[]) {
  return parseArgs({ args, allowPositionals: true, options: OPTIONS });
}

function onePositional(positionals: string[], what: string, command: string): string {
  if (positionals.length !== 1) throw new UsageError(`queue ${command} needs ${what}`, QUEUE_USAGE);
  return positionals[0]!;
}

function messageId(positionals: string[], command: string): string {
  const id = onePositional(positionals, 'a message id', command);
  if (isQueueName(id))
    throw new UsageError(`queue ${command} takes a message id, not a queue (${id})`, QUEUE_USAGE);
  return id;
}

function moreNote(what: string, option: string, value: string | undefined): void {
  if (value) process.stderr.write(`(more ${what}: add ${option} ${value})\n`);
}

async function list(args: string[]): Promise<number> {
  const { values, positionals } = parse('list', args, ['json']);
  if (positionals.length > 0) throw new UsageError('queue list takes no arguments', QUEUE_USAGE);
  const client = await connect(values);
  const answer = await client.getJson<{ queues: QueueSummary[] }>('/api/v1/queues');
  if (values.json) printJson(answer);
  else if (answer.queues.length === 0) process.stdout.write('No queues: nothing is waiting.\n');
  else process.stdout.write(queueTable(answer.queues, outputWidth()));
  return 0;
}

async function show(args: string[]): Promise<number> {
  const { values, positionals } = parse('show', args, [
    'json',
    ...(Object.keys(FILTER_OPTIONS) as OptionName[]),
  ]);
  const target = onePositional(positionals, 'a queue name or a message id', 'show');
  const filters = Object.keys(FILTER_OPTIONS).filter((k) => values[k as keyof typeof values] !== undefined);
  if (!isQueueName(target)) {
    if (filters.length > 0) {
      throw new UsageError(
        `--${filters[0]} filters a queue's messages; ${target} is a message id`,
        QUEUE_USAGE,
      );
    }
    const message = await (await connect(values)).getJson<QueuedMessageView>(messagePath(target));
    if (values.json) printJson(message);
    else process.stdout.write(messageDetail(message, outputWidth()));
    return 0;
  }
  const query = {
    queue: target,
    status: values.status === undefined ? undefined : parseStatus(values.status),
    sender: values.sender,
    recipient: values.recipient,
    subject: values.subject,
    limit: values.limit === undefined ? undefined : parseCount(values.limit, '--limit', 1, 1000),
    after: values.after,
  };
  const client = await connect(values);
  const answer = await client.getJson<{ messages: QueuedMessageView[]; nextAfter?: string }>(
    '/api/v1/messages',
    query,
  );
  // A remote queue exists while something waits in it: none by that name is a typo or a queue
  // already drained, which the administrator should hear (exit 1), not an empty table.
  if (answer.messages.length === 0 && !QUEUE_WORDS.has(target.toLowerCase())) {
    await client.getJson(queuePath(target));
  }
  if (values.json) printJson(answer);
  else if (answer.messages.length === 0)
    process.stdout.write(`No messages in ${target}${filters.length ? ' that match' : ''}.\n`);
  else process.stdout.write(messageTable(answer.messages, outputWidth()));
  moreNote('messages', '--after', answer.nextAfter);
  return 0;
}

/** retry, suspend, resume, resubmit, release: one POST each. */
async function post(
  command: 'retry' | 'suspend' | 'resume' | 'resubmit' | 'release',
  args: string[],
): Promise<number> {
  const { values, positionals } = parse(command, args, ['json']);
  let path: string;
  let done: string;
  if (command === 'retry') {
    const name = onePositional(positionals, 'a queue name', command);
    if (!isQueueName(name))
      throw new UsageError(`queue retry takes a queue, not a message id (${name})`, QUEUE_USAGE);
    path = `${queuePath(name)}/retry`;
    done = name;
  } else if (command === 'suspend' || command === 'resume') {
    const target = onePositional(positionals, 'a queue name or a message id', command);
    path = `${isQueueName(target) ? queuePath(target) : messagePath(target)}/${command}`;
    done = `${isQueueName(target) ? 'queue' : 'message'} ${target}`;
  } else {
    const id = messageId(positionals, command);
    path = `${messagePath(id)}/${command}`;
    done = `message ${id}`;
  }
  const client = await connect(values);
  const answer = await client.change<{ recipients?: number }>('POST', path);
  if (values.json) printJson(answer);
  else if (command === 'retry') {
    const n = answer?.recipients ?? 0;
    process.stdout.write(`Retrying now: ${n} recipient${n === 1 ? '' : 's'} in ${done}\n`);
  } else {
    const verb = { suspend: 'Suspended', resume: 'Resumed', resubmit: 'Resubmitted', release: 'Released' }[
      command
    ];
    process.stdout.write(`${verb} ${done}${command === 'release' ? ' from the Poison queue' : ''}\n`);
  }
  return 0;
}

async function remove(args: string[]): Promise<number> {
  const { values, positionals } = parse('remove', args, ['json', 'ndr', 'no-ndr']);
  const id = messageId(positionals, 'remove');
  // Deleting mail is not undoable: the administrator says whether the sender hears of it.
  if (Boolean(values.ndr) === Boolean(values['no-ndr'])) {
    throw new UsageError('queue remove needs exactly one of --ndr or --no-ndr', QUEUE_USAGE);
  }
  const ndr = Boolean(values.ndr);
  const answer = await (await connect(values)).change('DELETE', messagePath(id), { ndr });
  if (values.json) printJson(answer);
  else {
    process.stdout.write(
      `Removed message ${id}; ${ndr ? 'the sender gets a non-delivery report' : 'no non-delivery report'}\n`,
    );
  }
  return 0;
}

async function exportMessage(args: string[]): Promise<number> {
  const { values, positionals } = parse('export', args, ['out']);
  const id = messageId(positionals, 'export');
  // A message's bytes are the sender's: escape sequences in them would drive the terminal.
  if (values.out === undefined && process.stdout.isTTY) {
    throw new UsageError(
      'queue export writes the message exactly as stored, not to a terminal: redirect it (> file.eml), pipe it, or pass --out <file>',
      QUEUE_USAGE,
    );
  }
  const body = await (await connect(values)).getStream(`${messagePath(id)}/eml`);
  if (values.out === undefined) {
    // The bytes as stored, nothing added: `> file.eml` gives the same file as --out.
    for await (const chunk of body) {
      if (!process.stdout.write(chunk as Buffer)) await once(process.stdout, 'drain');
    }
    return 0;
  }
  // A message may hold anything: the file is the administrator's alone.
  const file = createWriteStream(values.out, { mode: 0o600 });
  await pipeline(body, file);
  process.stdout.write(`Wrote message ${id} (${file.bytesWritten} bytes) to ${values.out}\n`);
  return 0;
}

/** `ferrymail queue …`: returns the exit code; CliError and UsageError are left to main. */
export async function queueCommand(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (
    command === undefined ||
    command === 'help' ||
    rest.includes('--help') ||
    rest.includes('-h') ||
    command === '--help' ||
    command === '-h'
  ) {
    process.stdout.write(QUEUE_USAGE);
    return 0;
  }
  switch (command) {
    case 'list':
      return list(rest);
    case 'show':
      return show(rest);
    case 'retry':
    case 'suspend':
    case 'resume':
    case 'resubmit':
    case 'release':
      return post(command, rest);
    case 'remove':
      return remove(rest);
    case 'export':
      return exportMessage(rest);
    default:
      throw new UsageError(`unknown queue command: ${command}`, QUEUE_USAGE);
  }
}
