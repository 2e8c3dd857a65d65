import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEhlo, formatReply, reply } from '../../src/smtp/reply.ts';

describe('SMTP reply wire format', () => {
  it('puts the enhanced status code on every line of a reply, with dashes on all but the last', () => {
    assert.equal(formatReply(reply(250, '2.0.0', 'Ok')), '250 2.0.0 Ok\r\n');
    assert.equal(formatReply(reply(550, '5.7.1', 'one', 'two')), '550-5.7.1 one\r\n550 5.7.1 two\r\n');
  });

  it('writes a reply without a status code bare, and never leaves a trailing space', () => {
    assert.equal(formatReply(reply(354, undefined, 'End data')), '354 End data\r\n');
    assert.equal(formatReply(reply(334, undefined, '')), '334\r\n');
  });

  it('writes the EHLO reply with no enhanced status codes (RFC 2034)', () => {
    assert.equal(
      formatEhlo(['mx Hello', 'PIPELINING', 'HELP']),
      '250-mx Hello\r\n250-PIPELINING\r\n250 HELP\r\n',
    );
  });
});
