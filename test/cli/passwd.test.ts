import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyPassword } from '../../src/directory/password.ts';
import { ferrymail } from './run-cli.ts';

/** `ferrymail passwd`: a password in, a passwordHash for the config out. */
describe('ferrymail passwd', () => {
  it('hashes the first line of standard input', async () => {
    const r = ferrymail(['passwd'], { input: 'correct horse\nsecond line\n' });
    assert.equal(r.code, 0, r.stderr);
    const hash = r.stdout.trim();
    assert.match(hash, /^\$scrypt\$/);
    assert.equal(r.stdout, `${hash}\n`, 'the hash alone, ready for a script');
    assert.equal(await verifyPassword('correct horse', hash), true);
  });

  it('takes a last line without a newline, and a CRLF line ending is not part of the password', async () => {
    const bare = ferrymail(['passwd'], { input: 'no newline' });
    assert.equal(await verifyPassword('no newline', bare.stdout.trim()), true);
    const crlf = ferrymail(['passwd'], { input: 'windows\r\n' });
    assert.equal(await verifyPassword('windows', crlf.stdout.trim()), true);
  });

  it('refuses an empty password with exit 2', () => {
    const r = ferrymail(['passwd'], { input: '\n' });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /empty password/);
  });
});
