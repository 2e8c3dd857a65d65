/** One thing wrong with a config file, located as precisely as the YAML allows. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted path to the field, e.g. `receiveConnectors[1].limits.maxRecipients`; '' for the whole file. */
  readonly field: string;
  readonly message: string;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/** A config that cannot be used; `problems` lists every finding, each with file, line and field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: ReadonlyArray<ConfigProblem>;
  constructor(problems: ReadonlyArray<ConfigProblem>) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}
