import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashPassword, isPasswordHash, verifyPassword } from '../../src/directory/password.ts';

/** The passwordHash format: salted scrypt that only its own password matches. */
describe('password hashes', () => {
  it('verify the password they were made from', async () => {
    const hash = await hashPassword('change-me');
    assert.match(hash, /^\$scrypt\$ln=\d+,r=\d+,p=\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    assert.ok(isPasswordHash(hash));
    assert.equal(await verifyPassword('change-me', hash), true);
  });

  it('are salted: the same password hashes differently each time', async () => {
    assert.notEqual(await hashPassword('change-me'), await hashPassword('change-me'));
  });

  it('never match another password', async () => {
    const hash = await hashPassword('change-me');
    for (const other of ['change-me!', 'Change-me', '', 'change-m']) {
      assert.equal(await verifyPassword(other, hash), false, other);
    }
  });

  it('handle passwords beyond ASCII', async () => {
    const hash = await hashPassword('pâsswörd🔑');
    assert.equal(await verifyPassword('pâsswörd🔑', hash), true);
    assert.equal(await verifyPassword('passwTord', hash), false);
  });

  it('treat a malformed or absurdly expensive hash as a mismatch, never an exception', async () => {
    const malformed = [
      '',
      'change-me',
      '$scrypt$ln=99,r=8,p=1$AAAA$AAAA',
      '$scrypt$ln=14,r=8,p=1$!!$??',
      '$scrypt$ln=14,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA',
      '$scrypt$ln=20,r=32,p=16$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
    ];
    for (const bad of malformed) {
      assert.equal(await verifyPassword('x', bad), false, bad);
    }
    assert.equal(isPasswordHash('$scrypt$ln=20,r=32,p=16$AAAA$AAAA'), false);
  });
});
