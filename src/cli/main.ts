import { parseArgs } from 'node:util';
import { ConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load.ts';
import { createLogger } from '../core/logger.ts';
import { hashPassword } from '../directory/password.ts';

const USAGE = `Usage: ferrymail <command> [options]

Commands:
  start [--config <file>]     run a node (default config: config/ferrymail.yaml)
  config check <file>         validate a config file without starting
  passwd                      read a password (stdin or prompt) and print its hash for the config
  help                        this text
`;

const DEFAULT_CONFIG = 'config/ferrymail.yaml';

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  const ask = (prompt: string) =>
    new Promise<string>((resolve) => {
      process.stdout.write(prompt);
      process.stdin.setRawMode(true);
      process.stdin.resume();
      let text = '';
      const onData = (data: Buffer) => {
        for (const ch of data.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            process.stdin.off('data', onData);
            process.stdin.setRawMode(false);
            process.stdin.pause();
            process.stdout.write('\n');
            resolve(text);
            return;
          }
          if (ch === '\u0003') process.exit(130);
          text = ch === '\u007f' ? text.slice(0, -1) : text + ch;
        }
      };
      process.stdin.on('data', onData);
    });
  const first = await ask('Password: ');
  const second = await ask('Again: ');
  if (first !== second) throw new UsageError('the passwords differ');
  return first;
}

class UsageError extends Error {}

async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const loaded = await loadConfig(values.config ?? DEFAULT_CONFIG);
  const logger = createLogger(loaded.config.node.logLevel);
  const { startNode } = await import('../node.ts');
  const node = await startNode(loaded, { logger });
  const stop = async (signal: string) => {
    logger.info({ signal }, 'stopping');
    await node.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  return new Promise<number>(() => undefined);
}

async function configCheck(args: string[]): Promise<number> {
  const file = args[0];
  if (!file) throw new UsageError('config check needs a file');
  const { config } = await loadConfig(file);
  process.stdout.write(
    `OK: ${file}: ${config.acceptedDomains.length} accepted domain(s), ${config.mailboxes.length} mailbox(es), ` +
      `${config.aliases.length} alias(es), ${config.groups.length} group(s), ${config.receiveConnectors.length} receive connector(s)\n`,
  );
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case 'config':
        if (rest[0] !== 'check') throw new UsageError(`unknown config command: ${rest[0] ?? '(none)'}`);
        return await configCheck(rest.slice(1));
      case 'passwd': {
        const password = await readPassword();
        if (password === '') throw new UsageError('empty password');
        process.stdout.write(`${await hashPassword(password)}\n`);
        return 0;
      }
      case undefined:
      case 'help':
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
    if (
      error instanceof UsageError ||
      (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
    ) {
      process.stderr.write(`ferrymail: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`ferrymail: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
