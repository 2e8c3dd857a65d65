import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { BASE, problems } from './config-problems.ts';

/** Checks that span the file: every address is unique, in an accepted domain, and leads somewhere. */
describe('config cross-checks', () => {
  it('refuse duplicate addresses across mailboxes, proxy addresses, aliases and groups', () => {
    const text = `${BASE}  - address: Alice@Example.test
  - address: bob@example.test
    aliases: [alice@example.test]
aliases:
  - address: bob@example.test
    target: alice@example.test
groups:
  - address: alice@example.test
    members: [bob@example.test]
`;
    assert.deepEqual(problems(text), [
      '5:14 mailboxes[1].address: alice@example.test is already used by mailbox alice@example.test',
      '7:15 mailboxes[2].aliases[0]: alice@example.test is already used by mailbox alice@example.test',
      '9:14 aliases[0].address: bob@example.test is already used by mailbox bob@example.test',
      '12:14 groups[0].address: alice@example.test is already used by mailbox alice@example.test',
    ]);
  });

  it('refuse an address outside the accepted domains', () => {
    assert.deepEqual(problems(`${BASE}  - address: carol@elsewhere.test\n`), [
      '5:14 mailboxes[1].address: carol@elsewhere.test is not in an accepted domain (add elsewhere.test to acceptedDomains)',
    ]);
  });

  it('refuse an alias to, or a group member in, an authoritative domain that has no such address', () => {
    const text = `${BASE}aliases:
  - address: info@example.test
    target: nobody@example.test
groups:
  - address: all@example.test
    members: [alice@example.test, ghost@example.test]
`;
    assert.deepEqual(problems(text), [
      '7:13 aliases[0].target: nobody@example.test is not a mailbox, alias or group',
      '10:35 groups[0].members[1]: ghost@example.test is not a mailbox, alias or group',
    ]);
  });

  it('let aliases and groups point outside and into relay domains', () => {
    const text = `acceptedDomains:
  - name: example.test
  - name: hybrid.test
    type: internalRelay
mailboxes:
  - address: alice@example.test
aliases:
  - address: forward@example.test
    target: someone@outside.test
groups:
  - address: all@example.test
    members: [alice@example.test, dave@hybrid.test, partner@outside.test]
`;
    assert.equal(parseConfig(text, '/x/f.yaml').config.groups.length, 1);
  });

  it('refuse alias loops and groups that lead only back to themselves', () => {
    const text = `${BASE}aliases:
  - address: a@example.test
    target: b@example.test
  - address: b@example.test
    target: a@example.test
groups:
  - address: g1@example.test
    members: [g2@example.test]
  - address: g2@example.test
    members: [g1@example.test]
  - address: fine@example.test
    members: [fine@example.test, alice@example.test]
`;
    assert.deepEqual(problems(text), [
      '7:13 aliases[0].target: alias that reaches no mailbox or outside address: a@example.test → b@example.test → a@example.test',
      '9:13 aliases[1].target: alias that reaches no mailbox or outside address: b@example.test → a@example.test → b@example.test',
      '12:14 groups[0].members: group g1@example.test reaches no mailbox or outside address: its members only lead back to it, or nest more than 16 deep',
      '14:14 groups[1].members: group g2@example.test reaches no mailbox or outside address: its members only lead back to it, or nest more than 16 deep',
    ]);
  });

  it('allow one default domain at most', () => {
    const text = `acceptedDomains:
  - name: a.test
    default: true
  - name: b.test
    default: true
  - name: A.test
mailboxes:
  - address: x@a.test
`;
    assert.deepEqual(problems(text), [
      '5:14 acceptedDomains[1].default: only one accepted domain can be the default',
      '6:11 acceptedDomains[2].name: domain a.test is listed twice',
    ]);
  });

  it('require someone to receive postmaster mail of an authoritative default domain', () => {
    assert.deepEqual(problems('acceptedDomains:\n  - name: example.test\n'), [
      '2:11 acceptedDomains[0].name: postmaster@example.test must reach someone: add a mailbox, or an alias postmaster@example.test to an outside address',
    ]);
    const relayOnly = 'acceptedDomains:\n  - name: example.test\n    type: externalRelay\n';
    assert.equal(parseConfig(relayOnly, '/x/f.yaml').config.acceptedDomains.length, 1);
  });

  it('refuse a clear-text password where a hash belongs', () => {
    assert.deepEqual(problems(`${BASE}    passwordHash: change-me\n`), [
      '5:19 mailboxes[0].passwordHash: expected a hash from `ferrymail passwd` ($scrypt$...), not a clear-text password',
    ]);
  });

  it('refuse two connectors with the same name, or the same binding for the same remote ranges', () => {
    const text = `${BASE}receiveConnectors:
  - name: A
    bindings: ["127.0.0.1:25"]
    remoteRanges: [10.0.0.0/8, 192.168.0.0/16]
  - name: A
    bindings: ["127.0.0.1:25"]
    remoteRanges: [192.168.0.0/16, 10.0.0.0/8]
  - name: Inside
    bindings: ["127.0.0.1:25"]
    remoteRanges: [10.1.0.0/16]
  - name: Tests
    bindings: ["127.0.0.1:0"]
  - name: MoreTests
    bindings: ["127.0.0.1:0"]
`;
    assert.deepEqual(problems(text), [
      '9:11 receiveConnectors[1].name: connector name A is used twice',
      '10:16 receiveConnectors[1].bindings[0]: connector A already listens on 127.0.0.1:25 for the same remote ranges',
    ]);
  });

  it('refuse an unparseable remote range', () => {
    const text = `${BASE}receiveConnectors:\n  - name: A\n    bindings: ["127.0.0.1:25"]\n    remoteRanges: ["10.0.0.0/33"]\n`;
    assert.deepEqual(problems(text), [
      '8:20 receiveConnectors[0].remoteRanges[0]: expected an IP address, a CIDR block or a range first-last',
    ]);
  });
  it('refuse rights for partners and servers on a connector whose client certificates map to neither', () => {
    const text = `${BASE}receiveConnectors:
  - name: Partners
    bindings: ["127.0.0.1:25"]
    permissionGroups:
      anonymous: [submit]
      partners: [submit, relay]
      servers: [bypassAntiSpam]
  - name: Unused
    bindings: ["127.0.0.1:26"]
    permissionGroups:
      anonymous: [submit]
      partners: []
`;
    const unavailable = (group: string) =>
      `${group} is granted only by a client certificate (mutual TLS) that tls.clientCertificates.map maps to ${group}, and this connector has no such entry, so these rights would never apply; add one, or for trusted servers use a dedicated connector with their remoteRanges and anonymous: [submit, relay]`;
    assert.deepEqual(problems(text), [
      `10:17 receiveConnectors[0].permissionGroups.partners: ${unavailable('partners')}`,
      `11:16 receiveConnectors[0].permissionGroups.servers: ${unavailable('servers')}`,
    ]);
  });

  it('accept rights for a group that the connector’s client certificates map to, and only that group', () => {
    const text = `${BASE}receiveConnectors:
  - name: Partners
    bindings: ["127.0.0.1:25"]
    permissionGroups:
      partners: [submit, relay]
      servers: [submit]
    tls:
      clientCertificates:
        caFile: ca.pem
        map: [{ match: { san: mx.partner.test }, group: partners }]
`;
    assert.deepEqual(
      problems(text).map((p) => p.split(' ')[1]),
      ['receiveConnectors[0].permissionGroups.servers:'],
      'servers is still refused: no entry maps to it',
    );
  });

  it('accept the suggested replacement: a connector for the trusted servers’ ranges that lets anonymous relay', () => {
    const text = `${BASE}receiveConnectors:
  - name: TrustedServers
    bindings: ["127.0.0.1:25"]
    remoteRanges: [192.0.2.0/24]
    permissionGroups:
      anonymous: [submit, relay]
`;
    assert.deepEqual(parseConfig(text, '/x/f.yaml').config.receiveConnectors[0]?.permissionGroups, {
      anonymous: ['submit', 'relay'],
    });
  });
});
