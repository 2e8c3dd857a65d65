import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BareLineEndingPolicy, BodyDecoder } from '../../src/smtp/body-decoder.ts';

function decodeAll(input: string, policy: BareLineEndingPolicy = 'reject', dots = true, split = 1) {
  const d = new BodyDecoder({ dotTransparency: dots, bareLineEndings: policy });
  const bytes = Buffer.from(input, 'latin1');
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += split) {
    const r = d.decode(bytes.subarray(i, Math.min(bytes.length, i + split)));
    out.push(r.output);
    if (r.ended) {
      return {
        body: Buffer.concat(out).toString('latin1'),
        ended: true,
        rest: bytes.length - (i + r.consumed),
        bare: d.bareLineEnding,
      };
    }
  }
  out.push(d.finish());
  return { body: Buffer.concat(out).toString('latin1'), ended: false, rest: 0, bare: d.bareLineEnding };
}

/** The DATA decoder: the same result however the bytes are split across reads. */
describe('the message data decoder', () => {
  for (const split of [1, 2, 3, 7, 1000]) {
    it(`ends on CRLF.CRLF, unstuffs dots and leaves what follows (chunks of ${split})`, () => {
      const r = decodeAll('a\r\n..b\r\n.\r\nNOOP\r\n', 'reject', true, split);
      assert.equal(r.body, 'a\r\n.b\r\n');
      assert.equal(r.ended, true);
      assert.equal(r.rest, 6);
      assert.equal(r.bare, false);
    });
  }

  it('ends an empty message on a lone dot line', () => {
    assert.deepEqual(decodeAll('.\r\n'), { body: '', ended: true, rest: 0, bare: false });
  });

  it('never ends on bare line endings around a dot, and flags them', () => {
    for (const ending of ['\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\r\n.\r\r\n']) {
      const r = decodeAll(`x${ending}y`);
      assert.equal(r.ended, false, JSON.stringify(ending));
      assert.equal(r.bare, true, JSON.stringify(ending));
    }
  });

  it('normalizes bare CR and LF to CRLF without letting them end the data', () => {
    const r = decodeAll('a\nb\rc\n.\nd\r\n.\r\n', 'normalize', true, 1);
    assert.equal(r.body, 'a\r\nb\r\nc\r\n.\r\nd\r\n');
    assert.equal(r.ended, true);
  });

  it('passes bare line endings through untouched for BINARYMIME, and has no dot handling in BDAT', () => {
    const r = decodeAll('a\nb\r\n.\r\nc\r', 'allow', false);
    assert.equal(r.body, 'a\nb\r\n.\r\nc\r');
    assert.equal(r.ended, false);
  });

  it('keeps NUL and 8-bit bytes as they are', () => {
    assert.equal(decodeAll('\x00\xff\xe9\r\n.\r\n').body, '\x00\xff\xe9\r\n');
  });

  it('hands ordinary lines on as the bytes they arrived in, without a copy per line', () => {
    const d = new BodyDecoder({ dotTransparency: true, bareLineEndings: 'reject' });
    // Buffer.alloc never takes memory from Node's shared pool, so `.buffer` tells a copy apart.
    const text = 'Subject: x\r\n\r\nline one\r\nline two\r\n'.repeat(400);
    const input = Buffer.alloc(text.length);
    input.write(text, 'latin1');
    const r = d.decode(input);
    assert.equal(r.output.length, input.length);
    assert.ok(
      r.output.buffer === input.buffer && r.output.byteOffset === input.byteOffset,
      'the decoder copied (or split) lines that need no change',
    );
  });
});
