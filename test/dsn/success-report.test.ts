import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { buildDsn, shouldNotify } from '../../src/dsn/index.ts';
import {
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

describe('a success report', () => {
  const message = queuedMessage();
  const asked = queuedRecipient('bob@remote.test', { status: 'delivered', notify: ['SUCCESS'] });
  const notAsked = queuedRecipient('carol@remote.test', { status: 'delivered', index: 1 });

  it('is due only to a recipient that asked with NOTIFY=SUCCESS', () => {
    assert.equal(shouldNotify('success', asked, message), true);
    assert.equal(shouldNotify('success', notAsked, message), false);
  });

  it('reports a relayed recipient with its 2.x.x status and says no further reports follow', async () => {
    const output = buildDsn({
      ...common,
      kind: 'success',
      message,
      recipients: [
        {
          recipient: asked,
          status: '2.0.0',
          action: 'relayed',
          diagnostic: '250 2.0.0 Ok: queued as 4F2A',
          remoteMta: 'mx1.remote.test',
          lastAttemptAt: NOW,
        },
      ],
      originalBody: () => Readable.from([ORIGINAL]),
    });
    const raw = await collect(output.message);
    assert.equal(topHeaders(raw).get('subject'), 'Delivered: Quarterly figures');
    const report = await parseReport(raw);
    const [, bob] = statusGroups(report.status.content);
    assert.equal(bob!.get('action'), 'relayed');
    assert.equal(bob!.get('status'), '2.0.0');
    assert.equal(bob!.has('will-retry-until'), false);
    assert.match(report.mail.text ?? '', /does not send delivery notifications/);
  });

  it('replaces a malformed status with the generic one for its kind', async () => {
    const output = buildDsn({
      ...common,
      kind: 'success',
      message,
      recipients: [{ recipient: asked, status: 'ok', action: 'delivered' }],
      originalBody: () => Readable.from([ORIGINAL]),
    });
    const report = await parseReport(await collect(output.message));
    assert.equal(statusGroups(report.status.content)[1]!.get('status'), '2.0.0');
  });
});
