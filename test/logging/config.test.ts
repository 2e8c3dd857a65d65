import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { BASE, CONFIG_FILE, problems } from '../config/config-problems.ts';

const CONNECTOR = `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["127.0.0.1:25"]\n`;

/** `protocolLogging` per connector and the node's `protocolLog` section, with Exchange's defaults. */
describe('protocol log config', () => {
  it('is off per connector and keeps Exchange defaults for the files', () => {
    const { config } = parseConfig(
      `${CONNECTOR}sendConnectors:\n  - name: Out\n    addressSpaces: ["*"]\n`,
      CONFIG_FILE,
      {},
    );
    assert.equal(config.receiveConnectors[0]!.protocolLogging, 'none');
    assert.equal(config.sendConnectors[0]!.protocolLogging, 'none');
    assert.deepEqual(config.protocolLog, {
      dir: '/etc/ferrymail/data/logs/protocol',
      maxFileSize: 10 * 1024 * 1024,
      maxDirectorySize: 250 * 1024 * 1024,
      maxAge: 30 * 86_400_000,
    });
  });

  it('follows dataDir by default and resolves a relative dir against the config file', () => {
    const moved = parseConfig(`node:\n  dataDir: /srv/mail\n${CONNECTOR}`, CONFIG_FILE, {});
    assert.equal(moved.config.protocolLog.dir, '/srv/mail/logs/protocol');
    const own = parseConfig(
      `${CONNECTOR}    protocolLogging: verbose\nprotocolLog:\n  dir: ../log/protocol\n  maxFileSize: 2MB\n  maxAge: 7d\n`,
      CONFIG_FILE,
      {},
    );
    assert.equal(own.config.receiveConnectors[0]!.protocolLogging, 'verbose');
    assert.equal(own.config.protocolLog.dir, '/etc/log/protocol');
    assert.equal(own.config.protocolLog.maxFileSize, 2 * 1024 * 1024);
    assert.equal(own.config.protocolLog.maxAge, 7 * 86_400_000);
  });

  it('refuses a level or a limit it does not know, at its line', () => {
    assert.deepEqual(
      problems(`${CONNECTOR}    protocolLogging: debug\nprotocolLog:\n  maxAge: forever\n  maxSize: 1MB\n`),
      [
        '8:22 receiveConnectors[0].protocolLogging: expected one of "none", "verbose", got the text "debug"',
        '10:11 protocolLog.maxAge: expected a duration such as 30s, 5m, 4h or 2d (or a number of milliseconds), got the text "forever"',
        "11:3 protocolLog.maxSize: unknown field 'maxSize'",
      ],
    );
  });
});
