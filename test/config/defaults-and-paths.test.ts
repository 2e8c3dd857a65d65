import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { makeTempDir, removeDir } from '../helpers/node-fixture.ts';
import { BASE } from './config-problems.ts';

/** What a minimal file means: Exchange's defaults, and paths anchored at the file's folder. */
describe('a loaded config', () => {
  it('applies the Exchange defaults to a minimal connector', () => {
    const { config } = parseConfig(
      `${BASE}receiveConnectors:\n  - name: Default\n    bindings: ["127.0.0.1:25"]\n`,
      '/x/f.yaml',
    );
    const c = config.receiveConnectors[0]!;
    assert.equal(c.enabled, true);
    assert.deepEqual(c.remoteRanges, ['0.0.0.0/0', '::/0']);
    assert.equal(c.limits.maxMessageSize, 36 * 1024 * 1024);
    assert.equal(c.limits.maxRecipients, 200);
    assert.equal(c.limits.maxConnectionsPerSource, 20);
    assert.equal(c.limits.inactivityTimeout, 5 * 60_000);
    assert.equal(c.limits.maxProtocolErrors, 5);
    assert.equal(c.limits.tarpitInterval, 5000);
    assert.equal(c.tls.mode, 'starttls');
    assert.deepEqual(c.auth, { mechanisms: ['PLAIN', 'LOGIN'], requireTls: true, required: false });
    assert.equal(c.bareLineEndings, 'reject');
    assert.deepEqual(c.permissionGroups, { anonymous: ['submit'] });
    assert.deepEqual(config.acceptedDomains, [
      { name: 'example.test', type: 'authoritative', default: false },
    ]);
    assert.deepEqual(config.mailboxes, [{ address: 'alice@example.test', aliases: [], sendAs: [] }]);
    assert.equal(c.auth.sendAs, undefined, 'send-as follows auth.required unless set');
    assert.deepEqual(config.authLockout, {
      perIp: { failures: 20, window: 15 * 60_000, duration: 30 * 60_000 },
      perAccount: { failures: 10, window: 15 * 60_000, duration: 15 * 60_000 },
      maxEntries: 100_000,
    });
    assert.equal(config.oauth, undefined);
    assert.deepEqual(config.node, { name: 'ferrymail', dataDir: '/x/data', logLevel: 'info' });
    assert.equal(config.queue.mailboxRetryInterval, 5 * 60_000);
    assert.equal(config.queue.messageExpiration, 2 * 86_400_000);
  });

  it('reads durations and sizes with units', () => {
    const text = `${BASE}receiveConnectors:
  - name: Default
    bindings: ["127.0.0.1:25"]
    limits: { maxMessageSize: 10MB, maxHeaderSize: 64kb, connectionTimeout: 90s, tarpitInterval: 250ms }
queue: { messageExpiration: 1.5d, mailboxRetryInterval: 2m }
`;
    const { config } = parseConfig(text, '/x/f.yaml');
    const limits = config.receiveConnectors[0]!.limits;
    assert.equal(limits.maxMessageSize, 10 * 1024 * 1024);
    assert.equal(limits.maxHeaderSize, 64 * 1024);
    assert.equal(limits.connectionTimeout, 90_000);
    assert.equal(limits.tarpitInterval, 250);
    assert.equal(config.queue.messageExpiration, 36 * 3_600_000);
    assert.equal(config.queue.mailboxRetryInterval, 120_000);
  });

  it('lower-cases domains and addresses', () => {
    const { config } = parseConfig(
      'acceptedDomains:\n  - name: Example.TEST\nmailboxes:\n  - address: Alice@Example.test\n',
      '/x/f.yaml',
    );
    assert.equal(config.acceptedDomains[0]!.name, 'example.test');
    assert.equal(config.mailboxes[0]!.address, 'alice@example.test');
  });

  it('resolves relative paths against the folder of the file, not the current directory', async () => {
    const dir = await makeTempDir('ferrymail-config-');
    try {
      const file = join(dir, 'ferrymail.yaml');
      await writeFile(
        file,
        `node:
  dataDir: ../state
  certificate: { cert: tls/node.crt, key: /etc/ssl/node.key }
${BASE}receiveConnectors:
  - name: Client
    bindings: ["127.0.0.1:587"]
    tls: { certificate: { cert: client.crt, key: client.key } }
`,
      );
      const loaded = await loadConfig(file);
      assert.equal(loaded.file, file);
      assert.equal(loaded.dir, dir);
      assert.equal(loaded.config.node.dataDir, join(dir, '..', 'state'));
      assert.deepEqual(loaded.config.node.certificate, {
        cert: join(dir, 'tls/node.crt'),
        key: '/etc/ssl/node.key',
      });
      assert.deepEqual(loaded.config.receiveConnectors[0]!.tls.certificate, {
        cert: join(dir, 'client.crt'),
        key: join(dir, 'client.key'),
      });
    } finally {
      await removeDir(dir);
    }
  });

  it('is all defaults for an empty file', () => {
    const { config } = parseConfig('', '/x/f.yaml');
    assert.deepEqual(config.receiveConnectors, []);
    assert.equal(config.node.dataDir, '/x/data');
  });
});
