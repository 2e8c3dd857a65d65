/**
 * The command line's failures and their exit codes, which scripts rely on:
 * 0 success, 1 the operation failed (unknown id, refused by the node), 2 wrong use of the
 * command line, 3 the node cannot be reached or does not accept our credentials.
 */

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

/** Wrong use of the command line: the usage follows, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  /** The usage text to print after the message (the command's own; main's when absent). */
  readonly usage: string | undefined;
  constructor(message: string, usage?: string) {
    super(message);
    this.usage = usage;
  }
}

/** A failure with its exit code and a message for the administrator (no usage text). */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: typeof EXIT_FAILED | typeof EXIT_UNREACHABLE;
  constructor(exitCode: typeof EXIT_FAILED | typeof EXIT_UNREACHABLE, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** parseArgs' complaints about the command line (unknown option, missing value…) are usage errors. */
export function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
