import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { buildDsn, DsnInputError, shouldNotify } from '../../src/dsn/index.ts';
import type { DsnNotify } from '../../src/queue/types.ts';
import { common, ORIGINAL, queuedMessage, queuedRecipient } from './dsn-fixtures.ts';

const sender = queuedMessage();
const nullSender = queuedMessage({ sender: '' });
const kinds = ['failure', 'delay', 'success'] as const;

function asked(notify: DsnNotify | undefined): Record<(typeof kinds)[number], boolean> {
  const recipient = queuedRecipient('bob@remote.test', notify === undefined ? {} : { notify });
  return {
    failure: shouldNotify('failure', recipient, sender),
    delay: shouldNotify('delay', recipient, sender),
    success: shouldNotify('success', recipient, sender),
  };
}

describe('when a notification is sent (RFC 3461)', () => {
  it('without NOTIFY: failure and delay, but not success', () => {
    assert.deepEqual(asked(undefined), { failure: true, delay: true, success: false });
  });

  it('NOTIFY=NEVER: nothing', () => {
    assert.deepEqual(asked('NEVER'), { failure: false, delay: false, success: false });
  });

  it('an explicit list: exactly what is listed', () => {
    assert.deepEqual(asked(['SUCCESS']), { failure: false, delay: false, success: true });
    assert.deepEqual(asked(['FAILURE']), { failure: true, delay: false, success: false });
    assert.deepEqual(asked(['DELAY', 'FAILURE']), { failure: true, delay: true, success: false });
    assert.deepEqual(asked(['SUCCESS', 'FAILURE', 'DELAY']), { failure: true, delay: true, success: true });
  });

  it('never for a message from the null sender, whatever NOTIFY says', () => {
    for (const notify of [undefined, ['SUCCESS', 'FAILURE', 'DELAY'] as const]) {
      const recipient = queuedRecipient('bob@remote.test', notify === undefined ? {} : { notify });
      for (const kind of kinds) assert.equal(shouldNotify(kind, recipient, nullSender), false, kind);
    }
  });

  it('a report for the null sender cannot even be built', () => {
    let opened = false;
    assert.throws(
      () =>
        buildDsn({
          ...common,
          kind: 'failure',
          message: nullSender,
          recipients: [{ recipient: queuedRecipient('bob@remote.test'), status: '5.1.1', action: 'failed' }],
          originalBody: () => {
            opened = true;
            return Readable.from([ORIGINAL]);
          },
        }),
      DsnInputError,
    );
    assert.equal(opened, false);
  });

  it('a report about no recipient is refused', () => {
    assert.throws(
      () =>
        buildDsn({
          ...common,
          kind: 'failure',
          message: sender,
          recipients: [],
          originalBody: () => Readable.from([ORIGINAL]),
        }),
      DsnInputError,
    );
  });
});
