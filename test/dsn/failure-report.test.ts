import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { buildDsn } from '../../src/dsn/index.ts';
import {
  ARRIVED,
  assertWireFormat,
  collect,
  common,
  NOW,
  ORIGINAL,
  parseReport,
  queuedMessage,
  queuedRecipient,
  statusGroups,
  topHeaders,
} from './dsn-fixtures.ts';

const LONG_DIAGNOSTIC =
  '550 5.1.1 <carol@remote.test>: Recipient address rejected: User unknown in virtual mailbox table; ' +
  'please check the spelling of the address and try again, or ask the recipient for their current address';

async function failureReport() {
  const message = queuedMessage({ dsn: { envid: 'QQ314159', ret: 'HDRS' } });
  const output = buildDsn({
    ...common,
    kind: 'failure',
    message,
    recipients: [
      {
        recipient: queuedRecipient('bob@remote.test', { orcpt: 'rfc822;Bob.Original@example.test' }),
        status: '5.1.1',
        action: 'failed',
        diagnostic: '550 5.1.1 <bob@remote.test>: user unknown',
        remoteMta: 'mx1.remote.test',
        lastAttemptAt: NOW - 60_000,
      },
      {
        recipient: queuedRecipient('carol@remote.test', { index: 1 }),
        status: '5.1.1',
        action: 'failed',
        diagnostic: LONG_DIAGNOSTIC,
        remoteMta: 'mx2.remote.test',
        lastAttemptAt: NOW - 30_000,
      },
    ],
    originalBody: () => Readable.from([ORIGINAL]),
  });
  const raw = await collect(output.message);
  return { output, raw, report: await parseReport(raw) };
}

describe('a failure report for two recipients', () => {
  it('goes from the null sender to the original sender, as a 7-bit message', async () => {
    const { output } = await failureReport();
    assert.deepEqual(output.envelope, {
      sender: '',
      recipients: ['alice@example.test'],
      bodyType: '7BIT',
      smtpUtf8: false,
    });
  });

  it('has the report headers of RFC 6522 and RFC 3834', async () => {
    const { raw, report, output } = await failureReport();
    const headers = topHeaders(raw);
    assert.equal(headers.get('from'), '"Mail Delivery System" <postmaster@example.test>');
    assert.equal(headers.get('to'), '<alice@example.test>');
    assert.equal(headers.get('subject'), 'Undeliverable: Quarterly figures');
    assert.equal(headers.get('date'), 'Mon, 5 Jan 2026 10:00:00 +0000');
    assert.equal(headers.get('message-id'), '<dsn-1@mx.example.test>');
    assert.equal(headers.get('auto-submitted'), 'auto-replied');
    assert.equal(headers.get('mime-version'), '1.0');
    assert.equal(headers.get('in-reply-to'), '<orig-1@example.test>');
    assert.equal(headers.get('references'), '<orig-1@example.test>');
    const contentType = report.mail.headers.get('content-type') as {
      value: string;
      params: Record<string, string>;
    };
    assert.equal(contentType.value, 'multipart/report');
    assert.equal(contentType.params['report-type'], 'delivery-status');
    assert.equal(output.subject, 'Undeliverable: Quarterly figures');
    assert.equal(output.messageId, '<dsn-1@mx.example.test>');
  });

  it('puts the readable part first, naming each recipient, the reason and what to do', async () => {
    const { report } = await failureReport();
    const text = report.mail.text ?? '';
    assert.match(text, /could not be delivered/);
    assert.match(text, /bob@remote\.test\n {2}Not delivered \(5\.1\.1\): the address does not exist\./);
    assert.match(text, /said: 550 5\.1\.1 <bob@remote\.test>: user unknown/);
    assert.ok(text.includes(LONG_DIAGNOSTIC), 'the long diagnostic is shown whole after decoding');
    assert.match(text, /Check the address for typing mistakes/);
    assert.match(text, /contact the recipient's email administrator/);
    assert.match(text, /Subject: Quarterly figures/);
  });

  it('has the per-message fields, echoing the ENVID', async () => {
    const { report } = await failureReport();
    const [perMessage] = statusGroups(report.status.content);
    assert.deepEqual(Object.fromEntries(perMessage!), {
      'reporting-mta': 'dns; mx.example.test',
      'original-envelope-id': 'QQ314159',
      'arrival-date': 'Mon, 5 Jan 2026 09:30:00 +0000',
    });
    assert.equal(new Date(perMessage!.get('arrival-date')!).getTime(), ARRIVED);
  });

  it('has one block per recipient with ORCPT echoed and the diagnostic unfolding to the reply', async () => {
    const { report } = await failureReport();
    const [, bob, carol, extra] = statusGroups(report.status.content);
    assert.equal(extra, undefined);
    assert.deepEqual(Object.fromEntries(bob!), {
      'original-recipient': 'rfc822; Bob.Original@example.test',
      'final-recipient': 'rfc822; bob@remote.test',
      action: 'failed',
      status: '5.1.1',
      'remote-mta': 'dns; mx1.remote.test',
      'diagnostic-code': 'smtp; 550 5.1.1 <bob@remote.test>: user unknown',
      'last-attempt-date': 'Mon, 5 Jan 2026 09:59:00 +0000',
    });
    assert.deepEqual(Object.fromEntries(carol!), {
      'final-recipient': 'rfc822; carol@remote.test',
      action: 'failed',
      status: '5.1.1',
      'remote-mta': 'dns; mx2.remote.test',
      'diagnostic-code': `smtp; ${LONG_DIAGNOSTIC}`,
      'last-attempt-date': 'Mon, 5 Jan 2026 09:59:30 +0000',
    });
  });

  it('folds the long diagnostic onto continuation lines of at most 78 characters', async () => {
    const { report } = await failureReport();
    const text = report.status.content.toString('ascii');
    const start = text.indexOf('Diagnostic-Code: smtp; 550 5.1.1 <carol');
    assert.ok(start >= 0);
    const lines = text.slice(start).split('\r\n');
    const field = [lines[0]!];
    for (const line of lines.slice(1)) {
      if (!/^[ \t]/.test(line)) break;
      field.push(line);
    }
    assert.ok(field.length >= 3, 'the diagnostic spans several lines');
    for (const line of field) assert.ok(line.length <= 78, `${line.length} characters: ${line}`);
    assert.equal(field.join('\r\n').replace(/\r\n /g, ' '), `Diagnostic-Code: smtp; ${LONG_DIAGNOSTIC}`);
  });

  it('returns the original headers (RET=HDRS) and keeps every line CRLF and within 998 octets', async () => {
    const { raw, report } = await failureReport();
    assert.equal(report.returned?.contentType, 'text/rfc822-headers');
    assert.match(report.returned!.content.toString(), /^Received: .*Message-ID: <orig-1@example\.test>\r\n/s);
    assertWireFormat(raw);
  });
});
