import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { connectorRouter } from '../../src/routing/router.ts';
import { addressSpaceSpecificity, SendConnectorSelector } from '../../src/routing/send-connectors.ts';

function connectors(list: unknown[]) {
  return configSchema.parse({ sendConnectors: list }).sendConnectors;
}

const MB = 1024 * 1024;

describe('send connector selection (Exchange rules)', () => {
  it('ranks address spaces: exact domain over wildcards, longer wildcards over shorter, * last', () => {
    assert.ok(
      addressSpaceSpecificity('example.com', 'example.com') >
        addressSpaceSpecificity('*.example.com', 'example.com'),
    );
    assert.ok(
      addressSpaceSpecificity('*.a.example.com', 'x.a.example.com') >
        addressSpaceSpecificity('*.example.com', 'x.a.example.com'),
    );
    assert.ok(
      addressSpaceSpecificity('*.example.com', 'x.example.com') >
        addressSpaceSpecificity('*', 'x.example.com'),
    );
    assert.equal(
      addressSpaceSpecificity('example.com', 'x.example.com'),
      -1,
      'an exact space does not cover subdomains',
    );
    assert.equal(
      addressSpaceSpecificity('*.example.com', 'badexample.com'),
      -1,
      'a wildcard matches whole labels only',
    );
  });

  it('picks the most specific matching address space, whatever the cost', () => {
    const selector = new SendConnectorSelector(
      connectors([
        { name: 'Internet', addressSpaces: [{ domain: '*', cost: 1 }] },
        {
          name: 'Partner',
          addressSpaces: [{ domain: 'partner.test', cost: 50 }],
          routing: { type: 'smartHost', hosts: ['10.0.0.1'] },
        },
      ]),
    );
    const partner = selector.select('partner.test', 1000);
    assert.equal(partner.kind === 'connector' && partner.connector.name, 'Partner');
    const other = selector.select('elsewhere.test', 1000);
    assert.equal(other.kind === 'connector' && other.connector.name, 'Internet');
  });

  it('breaks a tie in specificity by the lowest cost, then by name', () => {
    const byCost = new SendConnectorSelector(
      connectors([
        { name: 'A', addressSpaces: [{ domain: '*', cost: 10 }] },
        { name: 'B', addressSpaces: [{ domain: '*', cost: 5 }] },
      ]),
    );
    const cheap = byCost.select('x.test', 1);
    assert.equal(cheap.kind === 'connector' && cheap.connector.name, 'B');
    const byName = new SendConnectorSelector(
      connectors([
        { name: 'Zulu', addressSpaces: ['*'] },
        { name: 'Alpha', addressSpaces: ['*'] },
      ]),
    );
    const first = byName.select('x.test', 1);
    assert.equal(first.kind === 'connector' && first.connector.name, 'Alpha');
  });

  it('drops connectors too small for the message before ranking, and says tooBig when none is left', () => {
    const selector = new SendConnectorSelector(
      connectors([
        { name: 'Small', addressSpaces: ['big.test'], maxMessageSize: '1MB' },
        { name: 'Large', addressSpaces: ['*'], maxMessageSize: '50MB' },
      ]),
    );
    const big = selector.select('big.test', 2 * MB);
    assert.equal(
      big.kind === 'connector' && big.connector.name,
      'Large',
      'a less specific connector that fits wins',
    );
    const huge = selector.select('big.test', 60 * MB);
    assert.deepEqual(huge, { kind: 'tooBig', largest: 50 * MB });
  });

  it('ignores disabled connectors and reports no match as none (the Unreachable queue)', () => {
    const selector = new SendConnectorSelector(
      connectors([
        { name: 'Off', enabled: false, addressSpaces: ['*'] },
        { name: 'Only', addressSpaces: ['only.test'] },
      ]),
    );
    assert.deepEqual(selector.select('other.test', 1), { kind: 'none' });
    assert.equal(selector.byName('Off'), undefined);
  });
});

describe('the router', () => {
  const router = connectorRouter(
    new SendConnectorSelector(
      connectors([
        { name: 'Internet', addressSpaces: ['*'] },
        {
          name: 'Relay',
          addressSpaces: ['relay.test', 'other-relay.test'],
          routing: { type: 'smartHost', hosts: ['127.0.0.1:2526', 'backup.test'] },
        },
        { name: 'Tiny', addressSpaces: ['tiny.test'], maxMessageSize: 10 },
      ]),
    ),
  );

  it('sends local recipients to their mailbox', () => {
    assert.deepEqual(router.route({ address: 'a@example.test', local: true }, 10), {
      type: 'mailbox',
      mailbox: 'a@example.test',
    });
  });

  it('queues DNS-routed recipients per domain and smart-hosted ones per smart host list', () => {
    assert.deepEqual(router.route({ address: 'x@remote.test', local: false }, 10), {
      type: 'smtp',
      domain: 'remote.test',
      connector: 'Internet',
    });
    const a = router.route({ address: 'x@relay.test', local: false }, 10);
    const b = router.route({ address: 'y@other-relay.test', local: false }, 10);
    assert.deepEqual(a, { type: 'smtp', domain: '127.0.0.1:2526,backup.test', connector: 'Relay' });
    assert.deepEqual(b, a, 'two domains through one smart host share its queue');
  });

  it('leaves the connector out when every connector for the domain is too small (the agent fails it with 5.3.4)', () => {
    const onlyTiny = connectorRouter(
      new SendConnectorSelector(
        connectors([{ name: 'Tiny', addressSpaces: ['tiny.test'], maxMessageSize: 10 }]),
      ),
    );
    assert.deepEqual(onlyTiny.route({ address: 'x@tiny.test', local: false }, 11), {
      type: 'smtp',
      domain: 'tiny.test',
    });
    assert.deepEqual(onlyTiny.route({ address: 'x@other.test', local: false }, 1), {
      type: 'unreachable',
      domain: 'other.test',
    });
  });
});
