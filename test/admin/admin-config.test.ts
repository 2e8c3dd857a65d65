import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, type ConfigProblem } from '../../src/config/errors.ts';
import { parseConfig } from '../../src/config/load.ts';

const FILE = '/etc/ferrymail/ferrymail.yaml';
const HASH = '$scrypt$ln=14,r=8,p=1$1VyRfvwpgrH6qM7uw487tQ==$9dR8rJlqG7nqtv9/kMzH9h1M0ZweqQHumxaawzva5a8=';

function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return [...error.problems];
  }
  assert.fail('expected the config to be refused');
}

/** The `admin` section: off by default, Exchange-like defaults, and no API open to others without credentials. */
describe('admin config', () => {
  it('is off by default, with 8 h sessions and 5 failed logins per 15 minutes', () => {
    const { admin } = parseConfig('node: { name: x }\n', FILE).config;
    assert.deepEqual(admin, {
      listen: [],
      accounts: [],
      tokens: [],
      sessionLifetime: 8 * 3_600_000,
      loginRateLimit: { attempts: 5, window: 15 * 60_000 },
      anonymousHealth: false,
    });
  });

  it('listens on loopback without any account or token (the local token file is enough)', () => {
    for (const binding of ['127.0.0.1:8025', '[::1]:8025', 'localhost:8025', '127.0.0.2:0']) {
      const { admin } = parseConfig(`admin:\n  listen: ["${binding}"]\n`, FILE).config;
      assert.deepEqual(admin.listen, [binding]);
    }
  });

  it('refuses an address other hosts can reach without an account or token, at the binding', () => {
    for (const binding of [':8025', '0.0.0.0:8025', '192.0.2.10:8025', '[::]:8025']) {
      const found = problems(`admin:\n  listen:\n    - "127.0.0.1:8025"\n    - "${binding}"\n`);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.equal(found[0]!.field, 'admin.listen[1]');
      assert.equal(found[0]!.line, 4, 'the line of the binding');
      assert.match(found[0]!.message, /reached from other hosts.*no admin account or token/);
    }
  });

  it('listens beyond loopback once an account or a token is configured', () => {
    const withAccount = `admin:\n  listen: [":8025"]\n  accounts: [{ name: admin, passwordHash: "${HASH}" }]\n`;
    assert.equal(parseConfig(withAccount, FILE).config.admin.accounts[0]!.name, 'admin');
    const withToken = `admin:\n  listen: [":8025"]\n  tokens: [{ name: ci, sha256: ${'AB'.repeat(32)} }]\n`;
    assert.equal(
      parseConfig(withToken, FILE).config.admin.tokens[0]!.sha256,
      'ab'.repeat(32),
      'hex lowercased',
    );
  });

  it('refuses a clear-text password, a token that is not a SHA-256, bad bindings and names used twice', () => {
    const found = problems(
      [
        'admin:',
        '  listen: ["127.0.0.1:99999"]',
        '  accounts:',
        '    - { name: admin, passwordHash: change-me }',
        `    - { name: admin, passwordHash: "${HASH}" }`,
        '  tokens:',
        '    - { name: ci, sha256: not-a-hash }',
        '  sessionLifetime: forever',
        '',
      ].join('\n'),
    );
    const byField = new Map(found.map((p) => [p.field, p.message]));
    assert.match(byField.get('admin.listen[0]') ?? '', /port 99999 is out of range/);
    assert.match(byField.get('admin.tokens[0].sha256') ?? '', /SHA-256 of the token as 64 hex digits/);
    assert.match(byField.get('admin.sessionLifetime') ?? '', /duration/);
    // Cross-field checks run once the fields themselves are valid.
    const second = problems(
      `admin:\n  accounts:\n    - { name: admin, passwordHash: change-me }\n    - { name: admin, passwordHash: "${HASH}" }\n`,
    );
    const fields = new Map(second.map((p) => [p.field, p.message]));
    assert.match(fields.get('admin.accounts[0].passwordHash') ?? '', /ferrymail passwd/);
    assert.match(fields.get('admin.accounts[1].name') ?? '', /listed twice/);
  });
});
