import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { BASE, problems } from './config-problems.ts';

/** `${NAME}` in the file takes its value from the environment, so secrets and ports stay out of it. */
describe('environment references in a config', () => {
  const text = `node:
  name: \${NODE_NAME}
  fqdn: "mx.\${DOMAIN}"
  dataDir: "/var/lib/$\${literal}"
${BASE}receiveConnectors:
  - name: Default
    bindings: ["127.0.0.1:\${PORT}"]
    enabled: \${ENABLED}
    limits:
      maxRecipients: \${MAX_RCPT}
    banner: "\${MAX_RCPT}"
`;
  const env = {
    NODE_NAME: 'from-env',
    DOMAIN: 'example.test',
    PORT: '2526',
    ENABLED: 'false',
    MAX_RCPT: '50',
  };

  it('are replaced in any string, and $${ stays a literal ${', () => {
    const { config } = parseConfig(text, '/x/f.yaml', env);
    assert.equal(config.node.name, 'from-env');
    assert.equal(config.node.fqdn, 'mx.example.test');
    assert.equal(config.node.dataDir, `/var/lib/$${'{'}literal}`);
    assert.deepEqual(config.receiveConnectors[0]!.bindings, ['127.0.0.1:2526']);
  });

  it('stay text in a text field even unquoted, so a password of digits is kept as given', () => {
    const secret = `${BASE}sendConnectors:
  - name: SmartHost
    addressSpaces: ["*"]
    routing: { type: smartHost, hosts: ["127.0.0.1:2526"] }
    auth:
      mode: basic
      username: relay
      password: \${SMARTHOST_PASSWORD}
`;
    const { config } = parseConfig(secret, '/x/f.yaml', { SMARTHOST_PASSWORD: '123456' });
    assert.equal(config.sendConnectors[0]!.auth.password, '123456');
  });

  it('give numbers and booleans when unquoted, text when quoted', () => {
    const c = parseConfig(text, '/x/f.yaml', env).config.receiveConnectors[0]!;
    assert.equal(c.limits.maxRecipients, 50);
    assert.equal(c.enabled, false);
    assert.equal(c.banner, '50');
  });

  it('are an error at their own line when the variable is not set', () => {
    assert.deepEqual(problems(text, { ...env, DOMAIN: undefined, MAX_RCPT: undefined }), [
      '3:9 node.fqdn: environment variable DOMAIN is not set',
      '14:22 receiveConnectors[0].limits.maxRecipients: environment variable MAX_RCPT is not set',
      '15:13 receiveConnectors[0].banner: environment variable MAX_RCPT is not set',
    ]);
  });

  it('are never read from process.env when another environment is given', () => {
    process.env.FERRYMAIL_TEST_ONLY_IN_PROCESS = 'x';
    try {
      assert.deepEqual(problems(`node:\n  name: \${FERRYMAIL_TEST_ONLY_IN_PROCESS}\n`, {}), [
        '2:9 node.name: environment variable FERRYMAIL_TEST_ONLY_IN_PROCESS is not set',
      ]);
    } finally {
      delete process.env.FERRYMAIL_TEST_ONLY_IN_PROCESS;
    }
  });
});
