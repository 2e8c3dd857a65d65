import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { BASE, CONFIG_FILE, problems } from './config-problems.ts';

const CONNECTOR = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["127.0.0.1:25"]\n`;

/** A config error names the file, the line and column, the field, and what was expected instead. */
describe('config errors', () => {
  it('point at the value of a wrong type and say what it should be', () => {
    assert.deepEqual(problems(`${CONNECTOR}    limits:\n      maxRecipients: many\n`), [
      '9:22 receiveConnectors[0].limits.maxRecipients: expected a number, got the text "many"',
    ]);
  });

  it('name an unknown field at its own key, however deep', () => {
    assert.deepEqual(problems(`${CONNECTOR}    maxRecipeints: 10\n    limits:\n      maxRecipents: 5\n`), [
      "8:5 receiveConnectors[0].maxRecipeints: unknown field 'maxRecipeints'",
      "10:7 receiveConnectors[0].limits.maxRecipents: unknown field 'maxRecipents'",
    ]);
  });

  it('explain the syntax of durations and sizes', () => {
    const text = `${CONNECTOR}    limits:\n      inactivityTimeout: 5 minutes\n      maxMessageSize: true\n`;
    assert.deepEqual(problems(text), [
      '9:26 receiveConnectors[0].limits.inactivityTimeout: expected a duration such as 30s, 5m, 4h or 2d (or a number of milliseconds), got the text "5 minutes"',
      '10:23 receiveConnectors[0].limits.maxMessageSize: expected a size such as 256KB, 36MB or 1GB (or a number of bytes), got true',
    ]);
  });

  it('explain bindings and the values an enumeration allows', () => {
    const text = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["localhost"]\n    tls:\n      mode: sometimes\n`;
    assert.deepEqual(problems(text), [
      '7:16 receiveConnectors[0].bindings[0]: expected an address and port such as 127.0.0.1:2525',
      '9:13 receiveConnectors[0].tls.mode: expected one of "none", "starttls", "implicit", got the text "sometimes"',
    ]);
  });

  it('refuse a binding whose port is out of range or whose address is not one to listen on', () => {
    const text = `${BASE}receiveConnectors:\n  - name: Default\n    bindings:\n      - "127.0.0.1:99999"\n      - "999.1.1.1:12999"\n      - "::1:25"\n      - "mx.example.test:25"\n      - "[127.0.0.1]:25"\n      - "10.0.0.1:70000"\n      - "127.0.0.1"\n`;
    const where =
      'is not an address to listen on: expected an IPv4 address such as 127.0.0.1, an IPv6 address in brackets such as [::1], localhost, or nothing';
    assert.deepEqual(problems(text), [
      '8:9 receiveConnectors[0].bindings[0]: port 99999 is out of range: expected 0 to 65535 (0 = any free port)',
      `9:9 receiveConnectors[0].bindings[1]: 999.1.1.1 ${where} (:12999) for every address`,
      '10:9 receiveConnectors[0].bindings[2]: an IPv6 address goes in brackets: [::1]:25',
      `11:9 receiveConnectors[0].bindings[3]: mx.example.test ${where} (:25) for every address`,
      `12:9 receiveConnectors[0].bindings[4]: [127.0.0.1] ${where} (:25) for every address`,
      '13:9 receiveConnectors[0].bindings[5]: port 70000 is out of range: expected 0 to 65535 (0 = any free port)',
      '14:9 receiveConnectors[0].bindings[6]: expected an address and port such as 127.0.0.1:2525',
    ]);
  });

  it('accept IPv4, bracketed IPv6, localhost and all-addresses bindings on ports 0 to 65535', () => {
    const bindings = [
      '127.0.0.1:0',
      '0.0.0.0:65535',
      '[::1]:25',
      '[::]:2525',
      ':587',
      'localhost:2525',
      'LocalHost:26',
    ];
    const text = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ${JSON.stringify(bindings)}\n`;
    assert.deepEqual(parseConfig(text, CONFIG_FILE).config.receiveConnectors[0]?.bindings, bindings);
  });

  it('name a missing required field at the entry that lacks it', () => {
    assert.deepEqual(problems(`${BASE}receiveConnectors:\n  - name: Default\n`), [
      "6:5 receiveConnectors[0].bindings: 'bindings' is required (a list)",
    ]);
  });

  it('state numeric bounds', () => {
    assert.deepEqual(
      problems(`${CONNECTOR}    limits:\n      maxRecipients: 0\n      maxCommandLength: 100\n`),
      [
        '9:22 receiveConnectors[0].limits.maxRecipients: expected a number greater than 0, got 0',
        '10:25 receiveConnectors[0].limits.maxCommandLength: expected a number at least 512, got 100',
      ],
    );
  });

  it('locate YAML syntax errors', () => {
    assert.deepEqual(problems('node:\n  name: ferrymail\n\tfqdn: mx.example.test\n'), [
      '3:1 : Tabs are not allowed as indentation',
    ]);
    assert.deepEqual(problems('node:\n  name: [unclosed\n'), [
      '3:1 : Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
  });

  it('name a duplicate key at its second occurrence', () => {
    assert.deepEqual(problems('node:\n  name: a\n  logLevel: info\n  name: b\n'), [
      "4:3 : duplicate key 'name': each field may appear once",
    ]);
  });

  it('report every problem of the file at once, in line order', () => {
    const text = `node:\n  logLevel: loud\n${BASE}receiveConnectors:\n  - name: A\n    bindings: [nowhere]\n    colour: blue\n`;
    assert.deepEqual(problems(text), [
      '2:13 node.logLevel: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got the text "loud"',
      '9:16 receiveConnectors[0].bindings[0]: expected an address and port such as 127.0.0.1:2525',
      "10:5 receiveConnectors[0].colour: unknown field 'colour'",
    ]);
  });

  it('read as file:line:column: field: message, one problem a line', () => {
    try {
      parseConfig(`${CONNECTOR}    limits:\n      maxRecipients: -1\n    colour: blue\n`, CONFIG_FILE);
      assert.fail('accepted');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      const expected = [
        `${CONFIG_FILE}:9:22: receiveConnectors[0].limits.maxRecipients: expected a number greater than 0, got -1`,
        `${CONFIG_FILE}:10:5: receiveConnectors[0].colour: unknown field 'colour'`,
      ].join('\n');
      assert.equal(error.message, expected);
      assert.equal(String(error), expected);
      assert.equal(error.problems.length, 2);
    }
  });

  it('name the file when it cannot be read', async () => {
    const dir = await makeTempDir('ferrymail-config-');
    try {
      await assert.rejects(loadConfig(join(dir, 'missing.yaml')), {
        name: 'ConfigError',
        message: `${join(dir, 'missing.yaml')}: file not found`,
      });
      const file = join(dir, 'bad.yaml');
      await writeFile(file, 'node:\n  logLevel: loud\n');
      await assert.rejects(loadConfig(file), (error: Error) =>
        error.message.startsWith(`${file}:2:13: node.logLevel:`),
      );
    } finally {
      await removeDir(dir);
    }
  });
});
