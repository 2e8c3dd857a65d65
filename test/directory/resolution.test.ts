import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigDirectory, type DirectoryConfig } from '../../src/directory/config-directory.ts';

const ORG: DirectoryConfig = {
  acceptedDomains: [
    { name: 'example.test', type: 'authoritative', default: true },
    { name: 'hybrid.test', type: 'internalRelay', default: false },
    { name: 'forward.test', type: 'externalRelay', default: false },
  ],
  mailboxes: [
    { address: 'alice@example.test', aliases: ['ali@example.test', 'alice@hybrid.test'] },
    { address: 'bob@example.test', aliases: [] },
    { address: 'carol@hybrid.test', aliases: [] },
  ],
  aliases: [
    { address: 'postmaster@example.test', target: 'alice@example.test' },
    { address: 'sales@example.test', target: 'team@example.test' },
    { address: 'info@example.test', target: 'sales@example.test' },
    { address: 'forward@example.test', target: 'someone@outside.test' },
  ],
  groups: [
    {
      address: 'team@example.test',
      members: ['alice@example.test', 'inner@example.test', 'partner@outside.test'],
    },
    // Contains its parent (a loop), alice again by a proxy address, and a relay-domain user.
    {
      address: 'inner@example.test',
      members: ['bob@example.test', 'ali@example.test', 'team@example.test', 'dave@hybrid.test'],
    },
    { address: 'self@example.test', members: ['self@example.test', 'carol@hybrid.test'] },
  ],
};

const local = (address: string) => ({ address, local: true });
const remote = (address: string) => ({ address, local: false });

/** What an address at RCPT stands for: mailboxes, proxy addresses, aliases, groups, relay domains. */
describe('resolving an address in the config directory', () => {
  const directory = new ConfigDirectory(ORG);

  it('gives a mailbox itself, not rewritten', () => {
    assert.deepEqual(directory.resolve('alice@example.test'), {
      kind: 'internal',
      recipients: [local('alice@example.test')],
      rewritten: false,
    });
  });

  it('matches both the local part and the domain case-insensitively', () => {
    assert.deepEqual(directory.resolve('ALICE@Example.TEST'), directory.resolve('alice@example.test'));
    assert.deepEqual(directory.resolve('Ali@EXAMPLE.test'), directory.resolve('ali@example.test'));
    assert.deepEqual(directory.resolve('NOBODY@example.test'), { kind: 'unknown' });
  });

  it('rewrites proxy addresses and aliases, through chains, to the primary address', () => {
    for (const address of ['ali@example.test', 'alice@hybrid.test', 'postmaster@example.test']) {
      assert.deepEqual(
        directory.resolve(address),
        { kind: 'internal', recipients: [local('alice@example.test')], rewritten: true },
        address,
      );
    }
    assert.deepEqual(directory.resolve('forward@example.test'), {
      kind: 'internal',
      recipients: [remote('someone@outside.test')],
      rewritten: true,
    });
  });

  it('expands nested groups, once per recipient, through loops', () => {
    const expected = {
      kind: 'internal',
      recipients: [
        local('alice@example.test'),
        local('bob@example.test'),
        remote('dave@hybrid.test'),
        remote('partner@outside.test'),
      ],
      rewritten: true,
    };
    assert.deepEqual(directory.resolve('team@example.test'), expected);
    assert.deepEqual(directory.resolve('info@example.test'), expected, 'alias → alias → group');
    assert.deepEqual(directory.resolve('inner@example.test'), {
      ...expected,
      recipients: [
        local('bob@example.test'),
        local('alice@example.test'),
        expected.recipients[3],
        expected.recipients[2],
      ],
    });
    assert.deepEqual(directory.resolve('self@example.test'), {
      kind: 'internal',
      recipients: [local('carol@hybrid.test')],
      rewritten: true,
    });
  });

  it('stops at a nesting depth bound instead of recursing without end', () => {
    const chain = Array.from({ length: 40 }, (_, i) => ({
      address: `g${i}@example.test`,
      members: [i === 39 ? 'alice@example.test' : `g${i + 1}@example.test`],
    }));
    const deep = new ConfigDirectory({ ...ORG, groups: chain });
    assert.deepEqual(deep.resolve('g39@example.test').kind, 'internal');
    assert.deepEqual(deep.resolve('g0@example.test'), { kind: 'unknown' }, 'nothing within reach');
  });

  it('refuses an alias loop rather than accepting mail for nobody', () => {
    const looping = new ConfigDirectory({
      ...ORG,
      aliases: [
        { address: 'a@example.test', target: 'b@example.test' },
        { address: 'b@example.test', target: 'a@example.test' },
      ],
    });
    assert.deepEqual(looping.resolve('a@example.test'), { kind: 'unknown' });
  });

  it('calls unknown users of an authoritative domain unknown', () => {
    assert.deepEqual(directory.resolve('nobody@example.test'), { kind: 'unknown' });
  });

  it('sends unknown users of an internal relay domain on, and keeps its known ones local', () => {
    assert.deepEqual(directory.resolve('dave@hybrid.test'), {
      kind: 'internal',
      recipients: [remote('dave@hybrid.test')],
      rewritten: false,
    });
    assert.deepEqual(directory.resolve('carol@hybrid.test'), {
      kind: 'internal',
      recipients: [local('carol@hybrid.test')],
      rewritten: false,
    });
  });

  it('sends every user of an external relay domain on', () => {
    assert.deepEqual(directory.resolve('anyone@forward.test'), {
      kind: 'internal',
      recipients: [remote('anyone@forward.test')],
      rewritten: false,
    });
  });

  it('calls addresses outside the accepted domains external', () => {
    assert.deepEqual(directory.resolve('x@elsewhere.test'), { kind: 'external' });
    assert.deepEqual(directory.resolve('alice@example.test.evil'), { kind: 'external' });
  });

  it('delivers postmaster of every accepted domain, and the bare <postmaster>', () => {
    const toAlice = { kind: 'internal', recipients: [local('alice@example.test')], rewritten: true };
    assert.deepEqual(directory.resolve('postmaster@hybrid.test'), toAlice);
    assert.deepEqual(directory.resolve('PostMaster'), toAlice);
    const withoutPostmaster = new ConfigDirectory({ ...ORG, aliases: [] });
    assert.deepEqual(withoutPostmaster.resolve('postmaster@example.test'), toAlice, 'the first mailbox');
  });

  it('answers domain questions case-insensitively, with the default domain first-listed when none is marked', () => {
    assert.equal(directory.defaultDomain(), 'example.test');
    assert.equal(directory.acceptedDomain('HYBRID.test')?.type, 'internalRelay');
    assert.equal(directory.acceptedDomain('elsewhere.test'), undefined);
    const unmarked = new ConfigDirectory({
      ...ORG,
      acceptedDomains: ORG.acceptedDomains.map((d) => ({ ...d, default: false })).reverse(),
    });
    assert.equal(unmarked.defaultDomain(), 'forward.test');
  });
});
