import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyPassword } from '../../src/directory/password.ts';
import { hmacFromSecret } from '../../src/receive/auth/cram-md5.ts';
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

  it('prints passwordHash and a CRAM-MD5 secret with --cram-md5, the secret answering RFC 2195’s example', async () => {
    const r = ferrymail(['passwd', '--cram-md5'], { input: 'tanstaaftanstaaf\n' });
    assert.equal(r.code, 0, r.stderr);
    const m = /^passwordHash: "(\$scrypt\$[^"]+)"\ncramMd5Secret: "(\{CRAM-MD5\}[0-9a-f]{64})"\n$/.exec(
      r.stdout,
    );
    assert.ok(m, r.stdout);
    assert.equal(await verifyPassword('tanstaaftanstaaf', m[1]!), true);
    const digest = hmacFromSecret(m[2]!, Buffer.from('<1896.697170952@postoffice.reston.mci.net>'));
    assert.equal(digest?.toString('hex'), 'b913a602c7eda7a495b4e6e7334d3890');
    assert.ok(!r.stdout.includes('tanstaaf'), 'the clear password is not printed');
  });
});
