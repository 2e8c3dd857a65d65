import { parseArgs } from 'node:util';
import { ConfigError } from '../config/errors.ts';
import type { LoadedConfig } from '../config/load.ts';
import { hashPassword } from '../directory/password.ts';
import { cramMd5Secret } from '../receive/auth/cram-md5.ts';
import { CliError, UsageError } from './errors.ts';
import { QUEUE_USAGE, queueCommand } from './queue-commands.ts';
import { readPassword } from './read-password.ts';
import { SEND_TEST_USAGE, sendTest } from './send-test.ts';
import { TRACE_USAGE, traceCommand } from './trace-command.ts';

const USAGE = `Usage: ferrymail <command> [options]

Commands:
  start [--config <file>]     run a node (default config: config/ferrymail.yaml)
  config check <file>         validate a config file without starting; exit 0 when good, 1 when not
  passwd [--cram-md5]         read a password (a line on stdin, or asked twice on a terminal)
                              and print its hash for a mailbox's passwordHash; with --cram-md5,
                              print passwordHash and cramMd5Secret lines (for AUTH CRAM-MD5)
  dkim keygen <domain> <selector> [--type rsa|ed25519] [--bits 2048] [--out <dir>]
                              write a DKIM private key, print its DNS TXT record and config entry
  queue list|show|retry|suspend|resume|remove|export|resubmit|release
                              the queue viewer: list queues and messages, act on them
                              (ferrymail queue --help for each command)
  trace [filters]             search the message tracking log (ferrymail trace --help)
  send-test [--to <addr>]     send a test message over SMTP, print its queue id
  help [<command>]            this text, or a command's (also <command> --help)

The operations commands (queue, trace) reach the node's admin API: on the node's own host, as
its user, through the config's admin.listen and the token file <dataDir>/admin/token, with no
flag; elsewhere with --url and --token (or FERRYMAIL_URL and FERRYMAIL_TOKEN). --json prints
the API's answer.

Exit codes: 0 success; 1 the operation failed (a bad config, an unknown queue or message, the
node refused it); 2 wrong use of the command line; 3 the node cannot be reached or refused the
token.
`;

/** Commands with a usage of their own, for `help <command>` and `<command> --help`; the others are in USAGE. */
const COMMAND_USAGE: Record<string, string> = {
  queue: QUEUE_USAGE,
  trace: TRACE_USAGE,
  'send-test': SEND_TEST_USAGE,
};

/** Commands whose usage is their lines in USAGE. */
const BRIEF_COMMANDS = new Set(['start', 'config', 'passwd', 'dkim', 'help']);

const DEFAULT_CONFIG = 'config/ferrymail.yaml';

const USAGE_CODES = new Set([
  'ERR_PARSE_ARGS_UNKNOWN_OPTION',
  'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL',
  'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
]);

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function summary(loaded: LoadedConfig): string {
  const c = loaded.config;
  return [
    plural(c.acceptedDomains.length, 'accepted domain', 'accepted domains'),
    plural(c.mailboxes.length, 'mailbox', 'mailboxes'),
    plural(c.aliases.length, 'alias', 'aliases'),
    plural(c.groups.length, 'group', 'groups'),
    plural(c.receiveConnectors.length, 'receive connector', 'receive connectors'),
    plural(c.sendConnectors.length, 'send connector', 'send connectors'),
  ].join(', ');
}

/** Runs until SIGINT or SIGTERM (SIGHUP reloads certificates); resolves only when startup fails (the exit code). */
async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const { loadConfig } = await import('../config/load.ts');
  const { createLogger } = await import('../core/logger.ts');
  const loaded = await loadConfig(values.config ?? DEFAULT_CONFIG);
  const logger = createLogger(loaded.config.node.logLevel);
  const { startNode } = await import('../node.ts');
  const node = await startNode(loaded, { logger });
  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    // A second signal while stopping gets the default action: the process ends at once.
    process.removeAllListeners('SIGINT').removeAllListeners('SIGTERM');
    node.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP: re-read the TLS certificates (renewed files) without dropping a session.
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reloading TLS certificates');
    node.reloadCertificates().catch((error: unknown) => logger.error({ err: error }, 'reload failed'));
  });
  return new Promise<number>(() => undefined);
}

async function configCheck(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length !== 1) throw new UsageError('config check needs exactly one file');
  const file = positionals[0]!;
  const { loadConfig } = await import('../config/load.ts');
  const loaded = await loadConfig(file);
  process.stdout.write(`OK: ${file}: ${summary(loaded)}\n`);
  return 0;
}

async function passwd(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'cram-md5': { type: 'boolean' } } });
  const password = await readPassword(process.stdin, process.stderr);
  if (password === '') throw new UsageError('empty password');
  const hash = await hashPassword(password);
  if (values['cram-md5']) {
    // YAML lines for the mailbox entry; the CRAM-MD5 secret is password-equivalent (docs/security.md).
    process.stdout.write(`passwordHash: "${hash}"\ncramMd5Secret: "${cramMd5Secret(password)}"\n`);
  } else {
    process.stdout.write(`${hash}\n`);
  }
  return 0;
}

/** The whole command line; returns the exit code (`start` returns only if it cannot start). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (
      command !== undefined &&
      BRIEF_COMMANDS.has(command) &&
      (rest.includes('--help') || rest.includes('-h'))
    ) {
      process.stdout.write(USAGE);
      return 0;
    }
    switch (command) {
      case 'start':
        return await start(rest);
      case 'config':
        if (rest[0] !== 'check') throw new UsageError(`unknown config command: ${rest[0] ?? '(none)'}`);
        return await configCheck(rest.slice(1));
      case 'passwd':
        return await passwd(rest);
      case 'dkim':
        if (rest[0] !== 'keygen') throw new UsageError(`unknown dkim command: ${rest[0] ?? '(none)'}`);
        return await (await import('./dkim-keygen.ts')).dkimKeygen(rest.slice(1));
      case 'queue':
        return await queueCommand(rest);
      case 'trace':
        return await traceCommand(rest);
      case 'send-test':
        return await sendTest(rest);
      case 'help':
        if (rest[0] !== undefined && COMMAND_USAGE[rest[0]] === undefined && !BRIEF_COMMANDS.has(rest[0])) {
          throw new UsageError(`no help for unknown command: ${rest[0]}`);
        }
        process.stdout.write(COMMAND_USAGE[rest[0] ?? ''] ?? USAGE);
        return 0;
      case undefined:
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command: ${command}`);
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    if (error instanceof CliError) {
      process.stderr.write(`ferrymail: ${error.message}\n`);
      return error.exitCode;
    }
    const code = (error as { code?: unknown }).code;
    if (error instanceof UsageError || (typeof code === 'string' && USAGE_CODES.has(code))) {
      const usage = error instanceof UsageError && error.usage !== undefined ? error.usage : USAGE;
      process.stderr.write(`ferrymail: ${(error as Error).message}\n\n${usage}`);
      return 2;
    }
    process.stderr.write(`ferrymail: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/**
 * Ends the process once what was written has left: exit() rather than exitCode because a node
 * that failed half-way through starting may hold handles open, and after a flush because pipes
 * are asynchronous on some systems.
 */
export function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

if (import.meta.main) main(process.argv.slice(2)).then(exitAfterFlush);
