import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatIn,
  formatSize,
  formatTime,
  outputWidth,
  printable,
  table,
  truncate,
} from '../../src/cli/format.ts';
import { isQueueName, lastResponse, messageDetail, queueTable } from '../../src/cli/queue-commands.ts';
import { statusText, traceTable } from '../../src/cli/trace-command.ts';
import type { QueuedMessageView, QueueSummary } from '../../src/queue/admin-types.ts';
import type { QueuedRecipient } from '../../src/queue/types.ts';
import type { StoredTrackingEvent } from '../../src/tracking/types.ts';

const T = Date.parse('2026-12-01T09:30:00Z');

const lines = (text: string) => text.trimEnd().split('\n');
const longest = (text: string) => Math.max(...lines(text).map((l) => Array.from(l).length));

/** Tables the operations commands print: aligned, never wider than the terminal, safe to print. */
describe('CLI table formatting', () => {
  const columns = [
    { header: 'NAME', value: (r: { name: string; n: number; note: string }) => r.name },
    { header: 'N', value: (r: { n: number }) => String(r.n), right: true },
    { header: 'NOTE', value: (r: { note: string }) => r.note, flex: true },
  ];

  it('aligns columns two spaces apart, numbers to the right, with a header line', () => {
    const out = table(
      columns,
      [
        { name: 'mailbox', n: 3, note: 'ok' },
        { name: 'smtp:example.org', n: 12, note: '451 4.4.1 no answer' },
      ],
      80,
    );
    assert.equal(
      out,
      [
        'NAME               N  NOTE',
        'mailbox            3  ok',
        'smtp:example.org  12  451 4.4.1 no answer',
        '',
      ].join('\n'),
    );
  });

  it('cuts the flexible column with an ellipsis so no line is wider than the width', () => {
    const note = `451 4.4.1 ${'x'.repeat(200)}`;
    const out = table(columns, [{ name: 'smtp:example.org', n: 1, note }], 60);
    assert.equal(longest(out), 60);
    assert.match(lines(out)[1]!, /^smtp:example\.org {2}1 {2}451 4\.4\.1 x+…$/);
  });

  it('keeps fixed columns whole even when they alone are wider than the width', () => {
    const out = table(columns, [{ name: 'n'.repeat(70), n: 1, note: 'a long note here' }], 40);
    assert.ok(lines(out)[1]!.startsWith('n'.repeat(70)), 'the name is not cut');
    assert.match(lines(out)[1]!, /a long …$/, 'the note is cut to its minimum width');
  });

  it('prints control characters of attacker-controlled text as spaces', () => {
    assert.equal(printable('Subject\x1b[31mred\r\nBcc: x\x9b'), 'Subject [31mred  Bcc: x ');
    const out = table(columns, [{ name: 'a\x1b]0;title\x07', n: 1, note: 'b\nc' }], 80);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters
    assert.doesNotMatch(out.replace(/\n/g, ''), /[\x00-\x1f\x7f-\x9f]/);
    assert.equal(lines(out).length, 2, 'a newline in a value does not start a row');
  });

  it('is as wide as the terminal; else COLUMNS; else 80', () => {
    assert.equal(outputWidth({ isTTY: true, columns: 132 }, { COLUMNS: '200' }), 132);
    assert.equal(outputWidth({ isTTY: false }, { COLUMNS: '200' }), 200);
    assert.equal(outputWidth({ isTTY: false }, {}), 80);
    assert.equal(outputWidth({ isTTY: false }, { COLUMNS: 'wide' }), 80);
    assert.equal(outputWidth({ isTTY: false }, { COLUMNS: '5' }), 80);
  });

  it('cuts by characters, not UTF-16 units', () => {
    assert.equal(truncate('😀😀😀😀', 3), '😀😀…');
    assert.equal(truncate('short', 10), 'short');
  });

  it('says how long until a retry: now, seconds, minutes, hours and minutes, days and hours', () => {
    const at = (s: number) => formatIn(T + s * 1000, T);
    assert.deepEqual(
      [at(-5), at(0), at(45), at(4 * 60 + 20), at(2 * 3600 + 5 * 60), at(3600), at(3 * 86_400 + 4 * 3600)],
      ['now', 'now', 'in 45s', 'in 4m', 'in 2h 5m', 'in 1h', 'in 3d 4h'],
    );
    assert.equal(formatIn(undefined, T), '');
  });

  it('formats times as UTC ISO 8601 to the second, and sizes in binary units', () => {
    assert.equal(formatTime(T + 999), '2026-12-01T09:30:00Z');
    assert.equal(formatTime(undefined), '');
    assert.deepEqual(
      [formatSize(512), formatSize(12_595), formatSize(4 * 1024 * 1024)],
      ['512 B', '12.3 KB', '4.0 MB'],
    );
  });
});

function recipient(over: Partial<QueuedRecipient> & Pick<QueuedRecipient, 'address'>): QueuedRecipient {
  return {
    index: 0,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: T,
    updatedAt: T,
    nextHop: { type: 'mailbox', mailbox: over.address },
    ...over,
  };
}

/** What `queue list` and `queue show` print. */
describe('CLI queue views', () => {
  it('tells queue names from message ids', () => {
    for (const q of [
      'mailbox',
      'unreachable',
      'poison',
      'smtp:example.org',
      'smtp:[10.0.0.1]:25,relay.example',
    ]) {
      assert.equal(isQueueName(q), true, q);
    }
    for (const id of ['01JDQ3V6Z5M7W8X9Y0ABCDEFGH', 'smtp:', 'mailboxes'])
      assert.equal(isQueueName(id), false, id);
  });

  it('lists queues with name, type, status, messages, next retry and last error, within 80 columns', () => {
    const queues: QueueSummary[] = [
      {
        name: 'mailbox',
        deliveryType: 'MailboxDelivery',
        nextHop: '',
        status: 'Ready',
        messageCount: 2,
        recipientCount: 3,
      },
      {
        name: 'smtp:example.org',
        deliveryType: 'DnsConnectorDelivery',
        nextHop: 'example.org',
        connector: 'Internet',
        status: 'Retry',
        messageCount: 1,
        recipientCount: 1,
        nextRetryAt: T,
        lastError: `451 4.4.1 cannot connect to mx.example.org[192.0.2.1]:25: ECONNREFUSED ${'and more '.repeat(10)}`,
      },
    ];
    const out = queueTable(queues, 80, T - 4 * 60_000);
    assert.match(lines(out)[0]!, /^QUEUE +TYPE +STATUS +MESSAGES +NEXT RETRY +LAST ERROR$/);
    assert.match(lines(out)[1]!, /^mailbox +Mailbox +Ready +2$/);
    assert.match(lines(out)[2]!, /^smtp:example\.org +Dns +Retry +1 +in 4m +451 4\.4\.1 cannot conn.*…$/);
    assert.equal(longest(out), 80);
  });

  it('shows the newest response of a recipient still waiting, before any of a delivered one', () => {
    const recipients = [
      recipient({ address: 'a@x', status: 'delivered', lastResponse: '250 2.0.0 ok', updatedAt: T + 10 }),
      recipient({ address: 'b@x', lastResponse: '451 4.4.1 old', updatedAt: T }),
      recipient({ address: 'c@x', lastResponse: '452 4.2.2 full', updatedAt: T + 5 }),
    ];
    assert.equal(lastResponse({ recipients }), '452 4.2.2 full');
    assert.equal(lastResponse({ recipients: [recipients[0]!] }), '250 2.0.0 ok');
    assert.equal(lastResponse({ recipients: [recipient({ address: 'd@x' })] }), '');
  });

  it('shows one message with its facts and a line per recipient', () => {
    const message: QueuedMessageView = {
      id: '01JDQ3V6Z5M7W8X9Y0',
      sender: '',
      receivedAt: T,
      expiresAt: T + 2 * 86_400_000,
      size: 2048,
      status: 'Retry',
      queues: ['smtp:example.org'],
      crashCount: 0,
      messageId: '<m1@example.test>',
      subject: 'Quarterly report',
      bodyType: '8BITMIME',
      smtpUtf8: false,
      dsn: {},
      origin: {
        connector: 'Client',
        clientIp: '127.0.0.1',
        clientHelo: 'laptop',
        authUser: 'alice@example.test',
        tls: true,
      },
      recipients: [
        recipient({
          address: 'alice@example.test',
          status: 'delivered',
          attempts: 1,
          lastResponse: '250 2.0.0 delivered',
        }),
        recipient({
          address: 'x@example.org',
          index: 1,
          attempts: 2,
          nextAttemptAt: T + 60_000,
          lastResponse: '451 4.4.1 no answer',
          nextHop: { type: 'smtp', domain: 'example.org', connector: 'Internet' },
        }),
      ],
    };
    const out = messageDetail(message, 100);
    assert.match(out, /^ID: +01JDQ3V6Z5M7W8X9Y0$/m);
    assert.match(out, /^From: +<>$/m);
    assert.match(out, /^Subject: +Quarterly report$/m);
    assert.match(
      out,
      /^Received: +2026-12-01T09:30:00Z from 127\.0\.0\.1 \(laptop\) on Client, TLS, authenticated as alice@example\.test$/m,
    );
    assert.doesNotMatch(out, /^Crashes:/m, 'no crash line for a message that never crashed the node');
    assert.match(out, /^RECIPIENT +STATUS +QUEUE +ATTEMPTS +NEXT ATTEMPT +LAST RESPONSE$/m);
    assert.match(out, /^alice@example\.test +delivered +mailbox +1 +250 2\.0\.0 delivered$/m);
    assert.match(
      out,
      /^x@example\.org +pending +smtp:example\.org +2 +2026-12-01T09:31:00Z +451 4\.4\.1 no answer$/m,
    );
  });
});

/** What `trace` prints. */
describe('CLI trace view', () => {
  const event = (over: Partial<StoredTrackingEvent>): StoredTrackingEvent => ({
    seq: 1,
    time: T,
    eventId: 'DELIVER',
    source: 'MAILBOX',
    internalId: '01JDQ3V6Z5M7W8X9Y0',
    sender: 'someone@elsewhere.test',
    recipients: ['alice@example.test', 'bob@example.test'],
    recipientStatus: ['250 2.0.0 delivered', '250 2.0.0 delivered'],
    ...over,
  });

  it('prints one status when every recipient has the same, each recipient’s otherwise, then the detail', () => {
    assert.equal(statusText(event({})), '250 2.0.0 delivered');
    assert.equal(
      statusText(
        event({
          eventId: 'FAIL',
          recipientStatus: ['250 2.0.0 ok', '550 5.1.1 unknown'],
          detail: 'hop=mailbox',
        }),
      ),
      'alice@example.test: 250 2.0.0 ok; bob@example.test: 550 5.1.1 unknown; hop=mailbox',
    );
    assert.equal(
      statusText(event({ eventId: 'ADMIN', recipients: [], recipientStatus: [], detail: 'remove ndr=true' })),
      'remove ndr=true',
    );
  });

  it('has the columns time, event, source, id, sender, recipients and status', () => {
    const out = traceTable(
      [event({}), event({ seq: 2, eventId: 'RECEIVE', source: 'SMTP', sender: '' })],
      200,
    );
    assert.match(lines(out)[0]!, /^TIME +EVENT +SOURCE +ID +SENDER +RECIPIENTS +STATUS$/);
    assert.match(
      lines(out)[1]!,
      /^2026-12-01T09:30:00Z +DELIVER +MAILBOX +01JDQ3V6Z5M7W8X9Y0 +someone@elsewhere\.test +alice@example\.test, bob@example\.test +250 2\.0\.0 delivered$/,
    );
    assert.match(lines(out)[2]!, /RECEIVE +SMTP +01JDQ3V6Z5M7W8X9Y0 +<> /, 'the null sender shows as <>');
  });
});
