/** One thing wrong with a config file, located as precisely as the YAML allows. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based; 0 when the problem is the file as a whole (it cannot be read). */
  readonly line: number;
  readonly column: number;
  /** Dotted path to the field, e.g. `receiveConnectors[1].limits.maxRecipients`; '' for the whole file. */
  readonly field: string;
  readonly message: string;
}

/** `config/ferrymail.yaml:42:7: receiveConnectors[0].bindings[0]: expected ...`, the compiler convention editors jump to. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  return `${where}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/** A config that cannot be used; `problems` lists every finding, each with file, line and field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: ReadonlyArray<ConfigProblem>;
  constructor(problems: ReadonlyArray<ConfigProblem>) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }

  /** The problems alone, one a line: no `ConfigError:` prefix in front of the first. */
  override toString(): string {
    return this.message;
  }
}
