import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ConfigDirectory } from '../../src/directory/config-directory.ts';
import { hashPassword, isPasswordHash, verifyPassword } from '../../src/directory/password.ts';

/** Who an address is: mailboxes, proxy addresses, aliases, nested groups, relay domains. */
describe('the config directory', () => {
  let directory: ConfigDirectory;
  before(async () => {
    const passwordHash = await hashPassword('s3cret');
    directory = new ConfigDirectory({
      acceptedDomains: [
        { name: 'example.test', type: 'authoritative', default: true },
        { name: 'hybrid.test', type: 'internalRelay', default: false },
        { name: 'forward.test', type: 'externalRelay', default: false },
      ],
      mailboxes: [
        { address: 'alice@example.test', passwordHash, aliases: ['ali@example.test'] },
        { address: 'bob@example.test', aliases: [] },
        { address: 'carol@hybrid.test', aliases: [] },
      ],
      aliases: [
        { address: 'postmaster@example.test', target: 'alice@example.test' },
        { address: 'sales@example.test', target: 'team@example.test' },
      ],
      groups: [
        {
          address: 'team@example.test',
          members: ['alice@example.test', 'inner@example.test', 'partner@outside.test'],
        },
        {
          address: 'inner@example.test',
          members: ['bob@example.test', 'ali@example.test', 'team@example.test'],
        },
      ],
    });
  });

  it('resolves a mailbox to itself, case-insensitively', () => {
    assert.deepEqual(directory.resolve('Alice@EXAMPLE.test'), {
      kind: 'internal',
      recipients: [{ address: 'alice@example.test', local: true }],
      rewritten: false,
    });
  });

  it('rewrites proxy addresses and aliases to the primary address', () => {
    for (const address of ['ali@example.test', 'postmaster@example.test']) {
      assert.deepEqual(directory.resolve(address), {
        kind: 'internal',
        recipients: [{ address: 'alice@example.test', local: true }],
        rewritten: true,
      });
    }
  });

  it('expands nested groups once per member, through loops, keeping external members', () => {
    const r = directory.resolve('sales@example.test');
    assert.equal(r.kind, 'internal');
    assert.deepEqual(r.kind === 'internal' ? r.recipients : [], [
      { address: 'alice@example.test', local: true },
      { address: 'bob@example.test', local: true },
      { address: 'partner@outside.test', local: false },
    ]);
  });

  it('knows unknown users of authoritative domains, and every postmaster', () => {
    assert.deepEqual(directory.resolve('nobody@example.test'), { kind: 'unknown' });
    const pm = directory.resolve('postmaster@hybrid.test');
    assert.equal(pm.kind, 'internal');
  });

  it('sends unknown users of an internal relay domain out, and every user of an external relay domain', () => {
    assert.deepEqual(directory.resolve('dave@hybrid.test'), {
      kind: 'internal',
      recipients: [{ address: 'dave@hybrid.test', local: false }],
      rewritten: false,
    });
    assert.deepEqual(directory.resolve('carol@hybrid.test').kind, 'internal');
    assert.deepEqual(directory.resolve('anyone@forward.test'), {
      kind: 'internal',
      recipients: [{ address: 'anyone@forward.test', local: false }],
      rewritten: false,
    });
  });

  it('calls everything else external', () => {
    assert.deepEqual(directory.resolve('x@elsewhere.test'), { kind: 'external' });
    assert.equal(directory.defaultDomain(), 'example.test');
    assert.equal(directory.acceptedDomain('HYBRID.test')?.type, 'internalRelay');
  });

  it('authenticates a mailbox with its password and nothing else', async () => {
    assert.deepEqual(await directory.authenticate('ALICE@example.test', 's3cret'), {
      ok: true,
      user: 'alice@example.test',
    });
    assert.deepEqual(await directory.authenticate('alice@example.test', 'wrong'), { ok: false });
    assert.deepEqual(
      await directory.authenticate('bob@example.test', ''),
      { ok: false },
      'no hash means no login',
    );
    assert.deepEqual(await directory.authenticate('nobody@example.test', 's3cret'), { ok: false });
  });
});

describe('password hashes', () => {
  it('round-trip, salted, and never match another password', async () => {
    const a = await hashPassword('change-me');
    const b = await hashPassword('change-me');
    assert.notEqual(a, b);
    assert.ok(isPasswordHash(a));
    assert.equal(await verifyPassword('change-me', a), true);
    assert.equal(await verifyPassword('change-me!', a), false);
  });

  it('treat a malformed hash as a mismatch, never an exception', async () => {
    for (const bad of ['', 'change-me', '$scrypt$ln=99,r=8,p=1$AAAA$AAAA', '$scrypt$ln=14,r=8,p=1$!!$??']) {
      assert.equal(await verifyPassword('x', bad), false, bad);
    }
  });
});
