import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { Config } from '../config/schema.ts';
import type { SmtpReply } from '../delivery/smtp/client/reply.ts';
import { parseMailbox } from '../smtp/address.ts';
import { DEFAULT_CONFIG } from './admin-client.ts';
import { CliError, EXIT_FAILED, EXIT_UNREACHABLE, isParseArgsError, UsageError } from './errors.ts';

export const SEND_TEST_USAGE = `Usage: ferrymail send-test [--from <addr>] [--to <addr>] [--server <host:port>] [--subject <text>] [--config <file>]

Sends a small test message over SMTP and prints the queue id from the node's 250 reply.
Defaults, from the config (default ${DEFAULT_CONFIG}):
  --to        the first mailbox
  --server    the first enabled receive connector that lets anonymous clients submit
  --from      postmaster@<the default accepted domain>
  --subject   "Ferrymail test message"
STARTTLS is used when offered (the certificate is not checked: this tests the node's own flow).

Exit codes: 0 queued, 1 the server refused the message (its reply is printed), 2 wrong use,
3 the server cannot be reached.
`;

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  server: { type: 'string' },
  subject: { type: 'string' },
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DEFAULT_SUBJECT = 'Ferrymail test message';
const TIMEOUT_MS = 30_000;

export interface SendTestPlan {
  readonly from: string;
  readonly to: string;
  readonly host: string;
  readonly port: number;
  /** The connector takes TLS from the first byte. */
  readonly implicitTls: boolean;
  readonly subject: string;
}

/** `host:port`, `[v6]:port`, `:port`: the wildcard addresses of a binding mean this host. */
export function parseServer(text: string, option = '--server'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^[\]:]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535)
    throw new UsageError(`${option}: expected host:port, not ${text}`, SEND_TEST_USAGE);
  let host = (m[1] ?? m[2])!;
  // A binding of `:25` listens on every address, as 0.0.0.0 does (src/receive/server.ts).
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  return { host, port };
}

function address(text: string, option: string): string {
  const parsed = parseMailbox(text, true);
  if (!parsed.ok) throw new UsageError(`${option}: not an email address: ${text}`, SEND_TEST_USAGE);
  return parsed.address;
}

/** The connector a test message from this host should enter by: anonymous submission, no AUTH required. */
function anonymousConnector(config: Config) {
  return config.receiveConnectors.find(
    (c) => c.enabled && (c.permissionGroups.anonymous ?? []).includes('submit') && !c.auth.required,
  );
}

function defaultDomain(config: Config): string | undefined {
  const domains = config.acceptedDomains;
  return (domains.find((d) => d.default) ?? domains.find((d) => d.type === 'authoritative') ?? domains[0])
    ?.name;
}

/**
 * What to send where: the options given, the rest from the config. The config is read only
 * when an option is missing, so `send-test --from a --to b --server h:p` needs none.
 */
export async function planSendTest(
  values: { from?: string; to?: string; server?: string; subject?: string },
  loadConfig: () => Promise<Config>,
): Promise<SendTestPlan> {
  const subject = values.subject ?? DEFAULT_SUBJECT;
  // A line break would end the header and let the rest be taken for headers or body.
  if (/[\r\n]/.test(subject)) throw new UsageError('--subject must be one line', SEND_TEST_USAGE);
  const needsConfig = values.from === undefined || values.to === undefined || values.server === undefined;
  const config = needsConfig ? await loadConfig() : undefined;
  let to = values.to;
  if (to === undefined) {
    to = config?.mailboxes[0]?.address;
    if (to === undefined)
      throw new UsageError('the config has no mailbox to send to: pass --to', SEND_TEST_USAGE);
  }
  let from = values.from;
  if (from === undefined) {
    const domain = config && defaultDomain(config);
    if (domain === undefined)
      throw new UsageError('the config has no accepted domain: pass --from', SEND_TEST_USAGE);
    from = `postmaster@${domain}`;
  }
  let server: { host: string; port: number };
  let implicitTls = false;
  if (values.server !== undefined) {
    server = parseServer(values.server);
  } else {
    const connector = config && anonymousConnector(config);
    if (!connector) {
      throw new UsageError(
        'no enabled receive connector lets anonymous clients submit: pass --server',
        SEND_TEST_USAGE,
      );
    }
    const binding = connector.bindings[0]!;
    if (binding.endsWith(':0')) {
      throw new UsageError(
        `receive connector ${connector.name} listens on ${binding}, a port chosen at start: pass --server`,
        SEND_TEST_USAGE,
      );
    }
    server = parseServer(binding, `receive connector ${connector.name}`);
    implicitTls = connector.tls.mode === 'implicit';
  }
  return { from: address(from, '--from'), to: address(to, '--to'), ...server, implicitTls, subject };
}

/** The test message, CRLF line ends, 7-bit unless an address needs SMTPUTF8. */
export function testMessage(plan: SendTestPlan, now: Date, host: string): Buffer {
  const id = `${randomBytes(9).toString('base64url')}@${host}`;
  return Buffer.from(
    [
      `From: <${plan.from}>`,
      `To: <${plan.to}>`,
      `Subject: ${plan.subject}`,
      `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${id}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `A test message sent by "ferrymail send-test" on ${host} at ${now.toISOString()}.`,
      '',
    ].join('\r\n'),
  );
}

/** The queue id of `250 2.0.0 Ok: queued as <id>`. */
export function queuedId(reply: SmtpReply): string | undefined {
  return /queued as (\S+)/i.exec(reply.lines.join(' '))?.[1];
}

async function send(plan: SendTestPlan): Promise<number> {
  const address = isIP(plan.host) ? plan.host : (await lookup(plan.host).catch(() => undefined))?.address;
  if (address === undefined) throw new CliError(EXIT_UNREACHABLE, `cannot resolve ${plan.host}`);
  // Loaded when sending, so help and usage errors do not pay for the SMTP client.
  const { formatReply, openSmtpConnection, SmtpClientError } = await import(
    '../delivery/smtp/client/index.ts'
  );
  const body = testMessage(plan, new Date(), hostname());
  const smtpUtf8 = /[^\x20-\x7e]/.test(plan.from + plan.to);
  let connection: Awaited<ReturnType<typeof openSmtpConnection>>;
  try {
    connection = await openSmtpConnection({
      host: plan.host,
      address,
      port: plan.port,
      ehloName: hostname(),
      tls: { mode: plan.implicitTls ? 'implicit' : 'opportunistic', verify: 'none' },
      timeouts: { connect: TIMEOUT_MS, greeting: TIMEOUT_MS, command: TIMEOUT_MS, dataEnd: TIMEOUT_MS },
    });
  } catch (error) {
    if (error instanceof SmtpClientError && error.stage === 'connect') {
      throw new CliError(EXIT_UNREACHABLE, `${error.message}: is the node running?`);
    }
    if (error instanceof SmtpClientError) throw new CliError(EXIT_FAILED, error.message);
    throw error;
  }
  try {
    const result = await connection.send(
      {
        sender: plan.from,
        recipients: [{ address: plan.to }],
        size: body.length,
        bodyType: '7BIT',
        smtpUtf8,
        dsn: {},
      },
      () => Readable.from([body]),
    );
    const refused = [result.mail, ...result.recipients, result.data].find(
      (r): r is SmtpReply => r !== undefined && (r.code < 200 || r.code >= 300),
    );
    if (refused)
      throw new CliError(
        EXIT_FAILED,
        `${plan.host}:${plan.port} refused the message: ${formatReply(refused)}`,
      );
    const data = result.data!;
    const id = queuedId(data);
    process.stdout.write(
      id === undefined
        ? `Accepted by ${plan.host}:${plan.port}: ${formatReply(data)}\n`
        : `Queued as ${id} (${plan.from} to ${plan.to} through ${plan.host}:${plan.port})\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof SmtpClientError) throw new CliError(EXIT_FAILED, error.message);
    throw error;
  } finally {
    await connection.quit();
  }
}

/** `ferrymail send-test`: returns the exit code. */
export async function sendTest(args: string[]): Promise<number> {
  let values: {
    from?: string;
    to?: string;
    server?: string;
    subject?: string;
    config?: string;
    help?: boolean;
  };
  try {
    values = parseArgs({ args, options: OPTIONS }).values;
  } catch (error) {
    if (isParseArgsError(error)) throw new UsageError((error as Error).message, SEND_TEST_USAGE);
    throw error;
  }
  if (values.help) {
    process.stdout.write(SEND_TEST_USAGE);
    return 0;
  }
  const { loadConfig } = await import('../config/load.ts');
  const plan = await planSendTest(
    values,
    async () => (await loadConfig(values.config ?? DEFAULT_CONFIG)).config,
  );
  return send(plan);
}
