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

const EXPIRES = ARRIVED + 2 * 86_400_000;

async function delayReport() {
  const output = buildDsn({
    ...common,
    kind: 'delay',
    message: queuedMessage({ expiresAt: EXPIRES }),
    recipients: [
      {
        recipient: queuedRecipient('bob@remote.test', { status: 'pending' }),
        status: '4.4.1',
        action: 'delayed',
        diagnostic: '451 4.4.1 Connection timed out',
        remoteMta: 'mx1.remote.test',
        lastAttemptAt: NOW - 5 * 60_000,
        willRetryUntil: EXPIRES,
      },
    ],
    originalBody: () => Readable.from([ORIGINAL]),
  });
  const raw = await collect(output.message);
  return { raw, report: await parseReport(raw) };
}

describe('a delay report', () => {
  it('says "Delivery delayed" in the subject', async () => {
    const { raw } = await delayReport();
    assert.equal(topHeaders(raw).get('subject'), 'Delivery delayed: Quarterly figures');
  });

  it('states the action, status and Will-Retry-Until for the recipient', async () => {
    const { report, raw } = await delayReport();
    const [, bob] = statusGroups(report.status.content);
    assert.equal(bob!.get('action'), 'delayed');
    assert.equal(bob!.get('status'), '4.4.1');
    assert.equal(bob!.get('diagnostic-code'), 'smtp; 451 4.4.1 Connection timed out');
    assert.equal(bob!.get('last-attempt-date'), 'Mon, 5 Jan 2026 09:55:00 +0000');
    assert.equal(bob!.get('will-retry-until'), 'Wed, 7 Jan 2026 09:30:00 +0000');
    assertWireFormat(raw);
  });

  it('tells the sender it is only a warning and until when we keep trying', async () => {
    const { report } = await delayReport();
    const text = report.mail.text ?? '';
    assert.match(text, /delayed/);
    assert.match(text, /do not need to send the message again/);
    assert.match(text, /keep trying until Wed, 7 Jan 2026 09:30:00 \+0000/);
  });
});
