import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./verify.py', import.meta.url));

/** Debian's python3-dkim lives in the system Python; a pyenv or venv python3 on PATH may lack it. */
const CANDIDATES = ['/usr/bin/python3', 'python3'];

function importable(python: string, modules: string): boolean {
  return spawnSync(python, ['-c', `import ${modules}`], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

/** A Python that can import dkim, or undefined. */
export const python = CANDIDATES.find((p) => importable(p, 'dkim'));

/** Why the verifier tests cannot run here, or undefined when they can. */
export const noPythonDkim = python
  ? undefined
  : 'python3-dkim is not installed (apt-get install python3-dkim; .ci/run installs it)';

/** Why the Ed25519 test cannot run here: python3-dkim verifies ed25519-sha256 with python3-nacl. */
export const noEd25519 =
  noPythonDkim ??
  (python && importable(python, 'dkim, nacl.signing')
    ? undefined
    : 'python3-nacl is not installed, which python3-dkim needs for ed25519-sha256 (apt-get install python3-nacl)');

export interface Verdict {
  readonly ok: boolean;
  /** The names python3-dkim asked the (stub) DNS for. */
  readonly asked: string[];
  /** python3-dkim's own log of the verification: the reason when it fails. */
  readonly log: string[];
}

/**
 * python3-dkim's verdict on the first DKIM-Signature of the message in `messageFile`, with the
 * one TXT record `name` answering `value` (the character-strings of the record joined).
 */
export async function verifyWithPythonDkim(
  messageFile: string,
  name: string,
  value: string,
): Promise<Verdict> {
  if (!python) throw new Error(noPythonDkim);
  const { stdout } = await run(python, [SCRIPT, messageFile, name, value], {
    maxBuffer: 16 * 1024 * 1024,
    timeout: 120_000,
  });
  return JSON.parse(stdout) as Verdict;
}

/** The owner name and the value of the TXT record line `ferrymail dkim keygen` prints. */
export function parseTxtRecord(output: string): { name: string; value: string; strings: string[] } {
  const line = output.split('\n').find((l) => / IN TXT "/.test(l));
  if (!line) throw new Error(`no TXT record in:\n${output}`);
  const name = line.slice(0, line.indexOf(' '));
  const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
  return { name, value: strings.join(''), strings };
}
