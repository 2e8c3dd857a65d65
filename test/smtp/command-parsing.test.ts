import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMailbox } from '../../src/smtp/address.ts';
import { parsePathArgs, splitCommand } from '../../src/smtp/command.ts';
import { decodeXtext, encodeXtext } from '../../src/smtp/xtext.ts';

describe('SMTP command parsing', () => {
  it('splits the verb from its arguments', () => {
    assert.deepEqual(splitCommand('mail FROM:<a@b>'), { verb: 'MAIL', args: 'FROM:<a@b>' });
    assert.deepEqual(splitCommand('QUIT'), { verb: 'QUIT', args: '' });
  });

  it('parses paths and parameters, tolerating a space after the colon and dropping source routes', () => {
    const r = parsePathArgs('FROM: <@relay.test:user@example.test> SIZE=100 body=8bitmime SMTPUTF8', 'FROM');
    assert.ok(r.ok);
    assert.equal(r.path, 'user@example.test');
    assert.deepEqual(
      [...r.params],
      [
        ['SIZE', '100'],
        ['BODY', '8bitmime'],
        ['SMTPUTF8', true],
      ],
    );
    assert.deepEqual(parsePathArgs('FROM:<>', 'FROM'), { ok: true, path: '', params: new Map() });
    const quoted = parsePathArgs('TO:<"a>b"@example.test>', 'TO');
    assert.ok(quoted.ok);
    assert.equal(quoted.path, '"a>b"@example.test');
  });

  it('rejects what is not a path or repeats a parameter', () => {
    assert.deepEqual(parsePathArgs('FROM:user@example.test', 'FROM'), { ok: false, reason: 'syntax' });
    assert.deepEqual(parsePathArgs('TO:<a@b>', 'FROM'), { ok: false, reason: 'syntax' });
    assert.deepEqual(parsePathArgs('FROM:<a@b>x', 'FROM'), { ok: false, reason: 'syntax' });
    assert.deepEqual(parsePathArgs('FROM:<a@b> SIZE=1 size=2', 'FROM'), { ok: false, reason: 'param' });
    assert.deepEqual(parsePathArgs('FROM:<a@b> =x', 'FROM'), { ok: false, reason: 'param' });
  });
});

describe('mailbox syntax (RFC 5321, RFC 6531)', () => {
  it('accepts dot-atoms, quoted local parts and address literals, lower-casing the domain', () => {
    assert.deepEqual(parseMailbox('First.Last+tag@Example.TEST', false), {
      ok: true,
      address: 'First.Last+tag@example.test',
      local: 'First.Last+tag',
      domain: 'example.test',
    });
    assert.ok(parseMailbox('"john doe"@example.test', false).ok);
    assert.ok(parseMailbox('user@[192.0.2.1]', false).ok);
    assert.ok(parseMailbox('user@[IPv6:2001:db8::1]', false).ok);
  });

  it('refuses malformed addresses', () => {
    for (const bad of [
      'noat',
      '@example.test',
      'a@',
      'a..b@example.test',
      '.a@example.test',
      'a@-x.test',
      'a@[999.1.1.1]',
      'a b@example.test',
    ]) {
      assert.equal(parseMailbox(bad, false).ok, false, bad);
    }
    assert.deepEqual(parseMailbox(`${'x'.repeat(65)}@example.test`, false), { ok: false, problem: 'length' });
  });

  it('needs SMTPUTF8 for non-ASCII addresses', () => {
    assert.deepEqual(parseMailbox('josé@example.test', false), { ok: false, problem: 'utf8' });
    assert.ok(parseMailbox('josé@exämple.test', true).ok);
  });
});

describe('xtext (RFC 3461)', () => {
  it('decodes +XX escapes and refuses malformed ones', () => {
    assert.equal(decodeXtext('a+2Bb+3Dc'), 'a+b=c');
    assert.equal(decodeXtext('a+2g'), undefined);
    assert.equal(decodeXtext('a=b'), undefined);
    assert.equal(decodeXtext('a b'), undefined);
  });

  it('round-trips through encoding', () => {
    const text = 'rfc822;user+tag=x@example.test';
    assert.equal(decodeXtext(encodeXtext(text)), text);
  });
});
