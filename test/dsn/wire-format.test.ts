import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { DsnInput } from '../../src/dsn/index.ts';
import { buildDsn } from '../../src/dsn/index.ts';
import {
  assertWireFormat,
  collect,
  common,
  ORIGINAL,
  parseReport,
  queuedMessage,
  queuedRecipient,
  statusGroups,
  topHeaders,
} from './dsn-fixtures.ts';

const UNBROKEN = `550 5.7.1 ${'x'.repeat(2500)}`;
const SUBJECT = 'Grüße aus Köln – 東京の会議 📎 '.repeat(4).trim();

function input(overrides: Partial<DsnInput> = {}): DsnInput {
  return {
    ...common,
    kind: 'failure',
    message: queuedMessage({ subject: SUBJECT }),
    recipients: [
      {
        recipient: queuedRecipient('bob@remote.test'),
        status: '5.7.1',
        action: 'failed',
        diagnostic: UNBROKEN,
        remoteMta: 'mx1.remote.test',
      },
      {
        recipient: queuedRecipient('carol@remote.test', { index: 1 }),
        status: '5.2.2',
        action: 'failed',
        diagnostic: '552 5.2.2 Postfach von Jürgen ist voll\r\n552 5.2.2 bitte später',
      },
    ],
    originalBody: () => Readable.from([ORIGINAL]),
    ...overrides,
  };
}

describe('the bytes of a report', () => {
  it('a non-ASCII subject goes out as RFC 2047 encoded words and decodes back', async () => {
    const raw = await collect(buildDsn(input()).message);
    const header = topHeaders(raw).get('subject')!;
    assert.match(header, /^(=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?= ?)+$/);
    for (const word of header.split(' ')) assert.ok(word.length <= 75, `an encoded word of ${word.length}`);
    const start = raw.indexOf('\r\nSubject: ') + 2;
    const lines = raw.subarray(start, raw.indexOf('\r\nDate: ')).toString('ascii').split('\r\n');
    assert.ok(lines.length > 1, 'the subject is folded');
    for (const line of lines)
      assert.ok(line.length <= 76, `a subject line of ${line.length} characters (RFC 2047 §2)`);
    const report = await parseReport(raw);
    assert.equal(report.mail.subject, `Undeliverable: ${SUBJECT}`);
    assert.ok(report.mail.text?.includes(`Subject: ${SUBJECT}`));
  });

  it('an ASCII subject that is already encoded is kept, and shown decoded in the readable part', async () => {
    const message = queuedMessage({ subject: '=?ISO-8859-1?Q?Gr=FC=DFe?=' });
    const raw = await collect(buildDsn(input({ message })).message);
    assert.equal(topHeaders(raw).get('subject'), 'Undeliverable: =?ISO-8859-1?Q?Gr=FC=DFe?=');
    const report = await parseReport(raw);
    assert.equal(report.mail.subject, 'Undeliverable: Grüße');
    assert.ok(report.mail.text?.includes('Subject: Grüße'));
  });

  it('the readable part is UTF-8 quoted-printable and reads back exactly', async () => {
    const raw = await collect(buildDsn(input()).message);
    assert.match(
      raw.toString('latin1'),
      /Content-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n/,
    );
    const text = (await parseReport(raw)).mail.text ?? '';
    assert.ok(text.includes('Postfach von Jürgen ist voll 552 5.2.2 bitte später'));
    assert.ok(text.includes(UNBROKEN));
  });

  it('every line ends in CRLF and none is longer than 998 octets, even with a 2500-character word', async () => {
    for (const kind of ['failure', 'delay', 'success'] as const) {
      const raw = await collect(buildDsn(input({ kind })).message);
      assertWireFormat(raw);
    }
  });

  it('a diagnostic split at 998 octets still unfolds to every character of the reply', async () => {
    const report = await parseReport(await collect(buildDsn(input()).message));
    const [, bob] = statusGroups(report.status.content);
    assert.equal(bob!.get('diagnostic-code')!.replace(/ /g, ''), `smtp;${UNBROKEN.replace(/ /g, '')}`);
  });

  it('in a 7-bit report the status part stays ASCII: multi-line replies join, non-ASCII is escaped', async () => {
    const output = buildDsn(input());
    assert.equal(output.envelope.bodyType, '7BIT');
    const raw = await collect(output.message);
    const report = await parseReport(raw);
    const [, , carol] = statusGroups(report.status.content);
    assert.equal(
      carol!.get('diagnostic-code'),
      'smtp; 552 5.2.2 Postfach von J\\x{00FC}rgen ist voll 552 5.2.2 bitte sp\\x{00E4}ter',
    );
    for (const byte of raw) assert.ok(byte < 0x80, 'a 7-bit report has no 8-bit byte');
  });

  it('a boundary line appears only where a part starts or the report ends', async () => {
    const raw = (
      await collect(buildDsn(input({ message: queuedMessage({ dsn: { ret: 'FULL' } }) })).message)
    ).toString('latin1');
    assert.equal(raw.split('\r\n--=_test-boundary-42\r\n').length - 1, 3);
    assert.ok(raw.endsWith('\r\n--=_test-boundary-42--\r\n'));
  });
});
