import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { verifyPassword } from '../../src/directory/password.ts';

/** `config/ferrymail.yaml`, what `npm start` runs: the small organisation docs/configuration.md describes. */
describe('the shipped demo config', () => {
  const file = fileURLToPath(new URL('../../config/ferrymail.yaml', import.meta.url));

  it('has one authoritative default domain, two mailboxes, a postmaster alias and a team group', async () => {
    const { config } = await loadConfig(file, {});
    assert.deepEqual(config.acceptedDomains, [
      { name: 'example.test', type: 'authoritative', default: true },
    ]);
    assert.deepEqual(
      config.mailboxes.map((m) => [m.address, m.aliases]),
      [
        ['alice@example.test', []],
        ['bob@example.test', []],
      ],
    );
    assert.deepEqual(config.aliases, [{ address: 'postmaster@example.test', target: 'alice@example.test' }]);
    assert.deepEqual(
      config.groups.map((g) => [g.address, g.members]),
      [['team@example.test', ['alice@example.test', 'bob@example.test']]],
    );
  });

  it('gives both mailboxes the password change-me', async () => {
    const { config } = await loadConfig(file, {});
    for (const m of config.mailboxes) {
      assert.equal(await verifyPassword('change-me', m.passwordHash ?? ''), true, m.address);
    }
  });

  it('has the internet, client and implicit-TLS client connectors, on loopback only', async () => {
    const { config } = await loadConfig(file, {});
    assert.deepEqual(
      config.receiveConnectors.map((c) => ({
        name: c.name,
        bindings: c.bindings,
        tls: c.tls.mode,
        auth: c.auth.required,
        requireTls: c.auth.requireTls,
        rights: c.permissionGroups,
      })),
      [
        {
          name: 'Default',
          bindings: ['127.0.0.1:2525'],
          tls: 'starttls',
          auth: false,
          requireTls: true,
          rights: { anonymous: ['submit'] },
        },
        {
          name: 'Client',
          bindings: ['127.0.0.1:5587'],
          tls: 'starttls',
          auth: true,
          requireTls: true,
          rights: { authenticatedUsers: ['submit', 'relay'] },
        },
        {
          name: 'ClientTls',
          bindings: ['127.0.0.1:4465'],
          tls: 'implicit',
          auth: true,
          requireTls: true,
          rights: { authenticatedUsers: ['submit', 'relay'] },
        },
      ],
    );
  });

  it('keeps its state in <repo>/data', async () => {
    const { config } = await loadConfig(file, {});
    assert.equal(config.node.dataDir, fileURLToPath(new URL('../../data', import.meta.url)));
    assert.equal(config.node.certificate, undefined, 'a self-signed certificate is generated');
  });
});
