import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { buildDsn } from '../../src/dsn/index.ts';
import type { QueuedMessage } from '../../src/queue/types.ts';
import {
  assertWireFormat,
  collect,
  common,
  ORIGINAL,
  parseReport,
  queuedMessage,
  queuedRecipient,
} from './dsn-fixtures.ts';

const HEADERS = ORIGINAL.subarray(0, ORIGINAL.indexOf('\r\n\r\n') + 2);

async function report(
  message: QueuedMessage,
  original: Buffer,
  options: { maxFull?: number; maxHeaders?: number } = {},
) {
  const output = buildDsn({
    ...common,
    kind: 'failure',
    message,
    recipients: [{ recipient: queuedRecipient('bob@remote.test'), status: '5.1.1', action: 'failed' }],
    // Small chunks, so the end of the headers falls across chunk boundaries.
    originalBody: () => Readable.from(chunked(original, 7)),
    ...(options.maxFull === undefined ? {} : { maxFullReturnSize: options.maxFull }),
    ...(options.maxHeaders === undefined ? {} : { maxReturnedHeaderSize: options.maxHeaders }),
  });
  const raw = await collect(output.message);
  assertWireFormat(raw);
  return { output, raw, parsed: await parseReport(raw) };
}

function chunked(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

describe('the original message in a report', () => {
  it('without RET: only its headers, as text/rfc822-headers', async () => {
    const { parsed, output } = await report(queuedMessage(), ORIGINAL);
    assert.equal(output.returns, 'headers');
    assert.equal(parsed.returned?.contentType, 'text/rfc822-headers');
    assert.equal(parsed.returned.content.toString('latin1'), HEADERS.toString('latin1'));
  });

  it('RET=HDRS: only its headers, never a byte of the body', async () => {
    const { parsed, raw } = await report(queuedMessage({ dsn: { ret: 'HDRS' } }), ORIGINAL);
    assert.equal(parsed.returned?.contentType, 'text/rfc822-headers');
    assert.equal(raw.includes('figures are attached'), false);
  });

  it('RET=FULL: the whole message, byte for byte, as message/rfc822', async () => {
    const { parsed, output } = await report(queuedMessage({ dsn: { ret: 'FULL' } }), ORIGINAL);
    assert.equal(output.returns, 'full');
    assert.equal(parsed.returned?.contentType, 'message/rfc822');
    assert.deepEqual(parsed.returned.content, ORIGINAL);
  });

  it('RET=FULL above the size cap: the headers only, and the readable part says why', async () => {
    const big = Buffer.concat([HEADERS, Buffer.from('\r\n'), Buffer.alloc(3 * 1024 * 1024, 'x\r\n')]);
    const message = queuedMessage({ dsn: { ret: 'FULL' }, size: big.length });
    const { parsed, output, raw } = await report(message, big, { maxFull: 2 * 1024 * 1024 });
    assert.equal(output.returns, 'headers');
    assert.equal(parsed.returned?.contentType, 'text/rfc822-headers');
    assert.equal(parsed.returned.content.toString('latin1'), HEADERS.toString('latin1'));
    assert.match(parsed.mail.text ?? '', /\(3\.0 MB\) is larger than the 2\.0 MB that are returned in full/);
    assert.ok(raw.length < 10_000);
  });

  it('a header section above its cap is cut at a whole line, and the readable part says so', async () => {
    const many = Buffer.from(
      `${'X-Filler: 0123456789012345678901234567890123456789\r\n'.repeat(100)}\r\nbody\r\n`,
    );
    const { parsed } = await report(queuedMessage(), many, { maxHeaders: 1000 });
    const returned = parsed.returned!.content.toString('latin1');
    assert.ok(returned.length <= 1002, `${returned.length} bytes returned`);
    assert.match(returned, /^(X-Filler: \d{40}\r\n)+$/);
    assert.match(parsed.mail.text ?? '', /header section is longer than 1 KB/);
  });

  it('a message that is all headers, without an empty line, comes back whole', async () => {
    const headersOnly = Buffer.from('Subject: no body\r\nFrom: a@example.test');
    const { parsed } = await report(queuedMessage(), headersOnly);
    assert.equal(parsed.returned!.content.toString('latin1'), 'Subject: no body\r\nFrom: a@example.test\r\n');
  });

  it('a stored message with bare LF line ends still gives CRLF header lines', async () => {
    const { parsed } = await report(
      queuedMessage(),
      Buffer.from('Subject: lf\nFrom: a@example.test\n\nbody\n'),
    );
    assert.equal(parsed.returned!.content.toString('latin1'), 'Subject: lf\r\nFrom: a@example.test\r\n');
  });

  it('an 8-bit original returned in full makes the report 8BITMIME, with the part marked 8bit', async () => {
    const eightBit = Buffer.concat([HEADERS, Buffer.from('\r\nGrüße, Zoë\r\n', 'utf8')]);
    const message = queuedMessage({ dsn: { ret: 'FULL' }, bodyType: '8BITMIME', size: eightBit.length });
    const { parsed, output, raw } = await report(message, eightBit);
    assert.equal(output.envelope.bodyType, '8BITMIME');
    assert.match(
      raw.toString('latin1'),
      /Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n/,
    );
    assert.deepEqual(parsed.returned?.content, eightBit);
  });

  it('a BINARYMIME original returned in full makes the report BINARYMIME', async () => {
    const message = queuedMessage({ dsn: { ret: 'FULL' }, bodyType: 'BINARYMIME' });
    const { output, raw } = await report(message, ORIGINAL);
    assert.equal(output.envelope.bodyType, 'BINARYMIME');
    assert.match(raw.toString('latin1'), /Content-Transfer-Encoding: binary\r\n/);
  });

  it('an SMTPUTF8 original makes an SMTPUTF8 report with the message/global types (RFC 6533)', async () => {
    const utf8 = Buffer.from('From: Zoë <zoë@example.test>\r\nSubject: Grüße\r\n\r\nHallo\r\n', 'utf8');
    const message = queuedMessage({
      sender: 'zoë@example.test',
      smtpUtf8: true,
      bodyType: '8BITMIME',
      size: utf8.length,
    });
    const { output, raw } = await report(message, utf8);
    assert.deepEqual(output.envelope, {
      sender: '',
      recipients: ['zoë@example.test'],
      bodyType: '8BITMIME',
      smtpUtf8: true,
    });
    const text = raw.toString('utf8');
    assert.match(text, /Content-Type: message\/global-delivery-status\r\n/);
    assert.match(text, /Content-Type: message\/global-headers\r\n[\s\S]*From: Zoë <zoë@example\.test>\r\n/);
    assert.match(text, /\r\nTo: <zoë@example\.test>\r\n/);
  });

  it('a store read error fails the report stream rather than ending it short', async () => {
    async function* broken() {
      yield ORIGINAL.subarray(0, 20);
      await tick();
      throw new Error('EIO: the disk went away');
    }
    for (const ret of ['FULL', 'HDRS'] as const) {
      const output = buildDsn({
        ...common,
        kind: 'failure',
        message: queuedMessage({ dsn: { ret } }),
        recipients: [{ recipient: queuedRecipient('bob@remote.test'), status: '5.1.1', action: 'failed' }],
        originalBody: () => Readable.from(broken()),
      });
      await assert.rejects(collect(output.message), /EIO: the disk went away/, ret);
    }
  });
});
