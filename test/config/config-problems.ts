import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.ts';
import { parseConfig } from '../../src/config/load.ts';

export const CONFIG_FILE = '/etc/ferrymail/test.yaml';

/** The problems a config text is refused with, as `line:column field: message`. */
export function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, CONFIG_FILE, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems.map((p) => `${p.line}:${p.column} ${p.field}: ${p.message}`);
  }
  assert.fail('the config was accepted');
}

/** A domain and a mailbox, so the rest of a test's text is what is under test (5 lines). */
export const BASE = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
`;
