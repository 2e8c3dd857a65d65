import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ConfigDirectory } from '../../src/directory/config-directory.ts';
import { hashPassword } from '../../src/directory/password.ts';

/** AUTH logins: a mailbox's primary address and its password, nothing else. */
describe('authenticating against the config directory', () => {
  let directory: ConfigDirectory;
  before(async () => {
    directory = new ConfigDirectory({
      acceptedDomains: [{ name: 'example.test', type: 'authoritative', default: true }],
      mailboxes: [
        {
          address: 'alice@example.test',
          passwordHash: await hashPassword('s3cret'),
          aliases: ['ali@example.test'],
        },
        { address: 'bob@example.test', aliases: [] },
      ],
      aliases: [],
      groups: [],
    });
  });

  it('accepts the right password, with the user name in any case', async () => {
    assert.deepEqual(await directory.authenticate('ALICE@example.test', 's3cret'), {
      ok: true,
      user: 'alice@example.test',
    });
  });

  it('refuses a wrong password', async () => {
    assert.deepEqual(await directory.authenticate('alice@example.test', 's3cret '), { ok: false });
    assert.deepEqual(await directory.authenticate('alice@example.test', ''), { ok: false });
  });

  it('refuses unknown users, proxy addresses, and mailboxes without a password', async () => {
    assert.deepEqual(await directory.authenticate('nobody@example.test', 's3cret'), { ok: false });
    assert.deepEqual(await directory.authenticate('ali@example.test', 's3cret'), { ok: false });
    assert.deepEqual(await directory.authenticate('bob@example.test', ''), { ok: false });
  });

  it('takes as long for an unknown user as for a wrong password', async () => {
    const time = async (user: string) => {
      const start = performance.now();
      await directory.authenticate(user, 'guess');
      return performance.now() - start;
    };
    await time('nobody@example.test'); // the dummy hash is ready after the first
    // Interleaved, and the fastest of several each: a busy machine slows single samples, not all.
    const known: number[] = [];
    const unknownTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await time('alice@example.test'));
      unknownTimes.push(await time('nobody@example.test'));
    }
    const fastestKnown = Math.min(...known);
    const unknown = Math.min(...unknownTimes);
    assert.ok(
      unknown > fastestKnown / 3,
      `unknown ${unknown.toFixed(1)} ms vs known ${fastestKnown.toFixed(1)} ms`,
    );
  });
});
