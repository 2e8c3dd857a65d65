import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeaderScanner } from '../../src/receive/header-scanner.ts';

const HEADERS =
  'Received: from a\r\n\tby b; date\r\nreceived: from c\r\nSubject: first\r\n part\r\n' +
  'Message-ID:\r\n <id@x.test>\r\nSubject: second\r\n\r\nReceived: in the body\r\n';

function scan(chunks: Buffer[]): HeaderScanner {
  const scanner = new HeaderScanner();
  for (const c of chunks) scanner.push(c);
  return scanner;
}

describe('the header scanner', () => {
  it('counts Received headers, unfolds the first Subject and Message-ID, and stops at the empty line', () => {
    const s = scan([Buffer.from(HEADERS)]);
    assert.equal(s.receivedCount, 2);
    assert.equal(s.subject, 'first part');
    assert.equal(s.messageId, '<id@x.test>');
    assert.equal(s.done, true);
    assert.equal(s.headerBytes, HEADERS.indexOf('\r\n\r\n') + 4);
  });

  it('gives the same result however the input is split', () => {
    const whole = Buffer.from(HEADERS);
    const bytewise = scan([...whole].map((b) => Buffer.from([b])));
    const whole1 = scan([whole]);
    assert.deepEqual(
      [bytewise.receivedCount, bytewise.subject, bytewise.messageId, bytewise.headerBytes],
      [whole1.receivedCount, whole1.subject, whole1.messageId, whole1.headerBytes],
    );
  });

  it('keeps counting the size of a header section that never ends', () => {
    const s = scan([Buffer.from(`X-Long: ${'a'.repeat(100_000)}`)]);
    assert.equal(s.done, false);
    assert.equal(s.headerBytes, 100_008);
  });
});

describe('the header scanner’s From: capture', () => {
  it('keeps every From: field, unfolded, and flags one too long to keep', () => {
    const s = scan([
      Buffer.from('From: "A" <a@x.test>,\r\n b@y.test\r\nSubject: s\r\nfrom: c@z.test\r\n\r\nFrom: body\r\n'),
    ]);
    assert.deepEqual(
      s.fromFields.map((f) => f.replace(/\s+/g, ' ').trim()),
      ['"A" <a@x.test>, b@y.test', 'c@z.test'],
    );
    assert.equal(s.fromOverflow, false);
    const long = scan([Buffer.from(`From: a@x.test (${'c'.repeat(2000)}), evil@y.test\r\n\r\n`)]);
    assert.equal(long.fromOverflow, true, 'a line cut at the per-line limit would hide evil@y.test');
  });
});
