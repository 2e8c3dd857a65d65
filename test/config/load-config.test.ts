import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/config/errors.ts';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';

const HASH = '$scrypt$ln=14,r=8,p=1$yQRuEZlTt2dSk/wQ1w6tfQ==$T2Bc5zr8+Z1J/+ZjxJx+M0ohk9eyslmU8v3xZgY+kHY=';

function problems(text: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parseConfig(text, '/etc/ferrymail/test.yaml', env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems.map((p) => `${p.line}:${p.column} ${p.field}: ${p.message}`);
  }
  assert.fail('the config was accepted');
}

const BASE = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
`;

/** A config error names the file, the line, the field, and what was expected. */
describe('loading a config file', () => {
  it('applies the Exchange defaults to a minimal connector', () => {
    const { config } = parseConfig(
      `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["127.0.0.1:25"]\n`,
      '/x/f.yaml',
    );
    const c = config.receiveConnectors[0]!;
    assert.equal(c.limits.maxMessageSize, 36 * 1024 * 1024);
    assert.equal(c.limits.maxRecipients, 200);
    assert.equal(c.limits.maxConnectionsPerSource, 20);
    assert.equal(c.limits.inactivityTimeout, 5 * 60_000);
    assert.equal(c.limits.maxProtocolErrors, 5);
    assert.equal(c.tls.mode, 'starttls');
    assert.equal(c.bareLineEndings, 'reject');
    assert.deepEqual(c.permissionGroups, { anonymous: ['submit'] });
    assert.equal(config.node.dataDir, '/x/data', 'relative paths resolve against the config folder');
    assert.equal(config.queue.messageExpiration, 2 * 86_400_000);
  });

  it('points at the line and field of a wrong type', () => {
    const text = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["127.0.0.1:25"]\n    limits:\n      maxRecipients: many\n`;
    assert.deepEqual(problems(text), [
      '9:22 receiveConnectors[0].limits.maxRecipients: Invalid input: expected number, received string',
    ]);
  });

  it('names an unknown field at its own line', () => {
    const text = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["127.0.0.1:25"]\n    maxRecipeints: 10\n`;
    assert.deepEqual(problems(text), [
      "8:5 receiveConnectors[0].maxRecipeints: unknown field 'maxRecipeints'",
    ]);
  });

  it('explains durations, bindings and enumerations', () => {
    const text = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["localhost"]\n    tls:\n      mode: sometimes\n    limits:\n      inactivityTimeout: 5 minutes\n`;
    assert.deepEqual(problems(text), [
      '7:16 receiveConnectors[0].bindings[0]: expected an address and port such as 127.0.0.1:2525',
      '9:13 receiveConnectors[0].tls.mode: expected one of "none", "starttls", "implicit"',
      '11:26 receiveConnectors[0].limits.inactivityTimeout: expected a duration such as 30s, 5m, 4h or 2d',
    ]);
  });

  it('reports YAML syntax errors and duplicate keys with their position', () => {
    assert.match(problems('node:\n  name: [unclosed\n')[0]!, /^\d+:\d+ : /);
    assert.match(problems('node:\n  name: a\n  name: b\n')[0]!, /^3:3 : Map keys must be unique/);
  });

  it('substitutes $-brace ENV references and reports unset ones by line', () => {
    const text = `node:\n  name: \${NODE_NAME}\n  fqdn: "$\${literal}"\n`;
    const { config } = parseConfig(text, '/x/f.yaml', { NODE_NAME: 'from-env' });
    assert.equal(config.node.name, 'from-env');
    assert.equal(config.node.fqdn, `$${'{'}literal}`);
    assert.deepEqual(problems(text), ['2:9 node.name: environment variable NODE_NAME is not set']);
  });

  it('checks references across the file', () => {
    const text = `acceptedDomains:
  - name: example.test
mailboxes:
  - address: alice@example.test
    passwordHash: change-me
  - address: alice@example.test
  - address: carol@elsewhere.test
aliases:
  - address: info@example.test
    target: nobody@example.test
groups:
  - address: all@example.test
    members: [alice@example.test, ghost@example.test, friend@outside.test]
receiveConnectors:
  - name: A
    bindings: ["127.0.0.1:25"]
  - name: A
    bindings: ["127.0.0.1:25"]
`;
    assert.deepEqual(problems(text), [
      '5:19 mailboxes[0].passwordHash: expected a hash from `ferrymail passwd` ($scrypt$...), not a clear-text password',
      '6:14 mailboxes[1].address: alice@example.test is already used by mailbox alice@example.test',
      '7:14 mailboxes[2].address: carol@elsewhere.test is not in an accepted domain (add elsewhere.test to acceptedDomains)',
      '10:13 aliases[0].target: nobody@example.test is not a mailbox, alias or group',
      '13:35 groups[0].members[1]: ghost@example.test is not a mailbox, alias or group',
      '17:11 receiveConnectors[1].name: connector name A is used twice',
      '18:16 receiveConnectors[1].bindings[0]: connector A already listens on 127.0.0.1:25 for the same remote ranges',
    ]);
  });

  it('refuses an unparseable remote range', () => {
    const text = `receiveConnectors:\n  - name: A\n    bindings: ["127.0.0.1:25"]\n    remoteRanges: ["10.0.0.0/33"]\n`;
    assert.deepEqual(problems(text), [
      '4:20 receiveConnectors[0].remoteRanges[0]: expected an IP address, a CIDR block or a range first-last',
    ]);
  });

  describe('from a file', () => {
    let dir: string;
    before(async () => {
      dir = await makeTempDir('ferrymail-config-');
    });
    after(() => removeDir(dir));

    it('names the file in every problem', async () => {
      const file = join(dir, 'bad.yaml');
      await writeFile(file, 'node:\n  logLevel: loud\n');
      await assert.rejects(loadConfig(file), (error: Error) => {
        assert.match(
          error.message,
          new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:13: node.logLevel: expected one of`),
        );
        return true;
      });
      await assert.rejects(loadConfig(join(dir, 'missing.yaml')), /missing\.yaml:0:0: file not found/);
    });
  });

  it('ships a demo config with the documented content', async () => {
    const file = fileURLToPath(new URL('../../config/ferrymail.yaml', import.meta.url));
    const { config } = await loadConfig(file);
    assert.deepEqual(config.acceptedDomains, [
      { name: 'example.test', type: 'authoritative', default: true },
    ]);
    assert.deepEqual(
      config.mailboxes.map((m) => m.address),
      ['alice@example.test', 'bob@example.test'],
    );
    assert.ok(config.mailboxes.every((m) => m.passwordHash?.startsWith('$scrypt$')));
    assert.deepEqual(config.aliases, [{ address: 'postmaster@example.test', target: 'alice@example.test' }]);
    assert.deepEqual(
      config.groups.map((g) => [g.address, g.members]),
      [['team@example.test', ['alice@example.test', 'bob@example.test']]],
    );
    assert.deepEqual(
      config.receiveConnectors.map((c) => [c.name, c.bindings, c.tls.mode, c.auth.required]),
      [
        ['Default', ['127.0.0.1:2525'], 'starttls', false],
        ['Client', ['127.0.0.1:5587'], 'starttls', true],
        ['ClientTls', ['127.0.0.1:4465'], 'implicit', true],
      ],
    );
    assert.ok(
      config.receiveConnectors.every((c) => c.bindings.every((b) => b.startsWith('127.0.0.1:'))),
      'demo binds loopback only',
    );
    assert.equal(config.node.dataDir, fileURLToPath(new URL('../../data', import.meta.url)));
    void HASH;
  });
});
