import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { type Attachment, type ParsedMail, simpleParser } from 'mailparser';
import type { QueuedMessage, QueuedRecipient } from '../../src/queue/types.ts';

export const ARRIVED = Date.UTC(2026, 0, 5, 9, 30, 0);
export const NOW = Date.UTC(2026, 0, 5, 10, 0, 0);

export const ORIGINAL = Buffer.from(
  'Received: from client.example.test by mx.example.test; Mon, 5 Jan 2026 09:30:00 +0000\r\n' +
    'From: Alice <alice@example.test>\r\n' +
    'To: bob@remote.test, carol@remote.test\r\n' +
    'Subject: Quarterly figures\r\n' +
    'Message-ID: <orig-1@example.test>\r\n' +
    '\r\n' +
    'Hello Bob and Carol,\r\n' +
    'the figures are attached.\r\n',
);

export function queuedRecipient(address: string, overrides: Partial<QueuedRecipient> = {}): QueuedRecipient {
  return {
    address,
    index: 0,
    status: 'failed',
    attempts: 1,
    nextAttemptAt: 0,
    updatedAt: NOW,
    nextHop: { type: 'smtp', domain: address.slice(address.indexOf('@') + 1) },
    ...overrides,
  };
}

export function queuedMessage(overrides: Partial<QueuedMessage> = {}): QueuedMessage {
  return {
    id: '01JGZQ0000ABCDEFGH',
    sender: 'alice@example.test',
    receivedAt: ARRIVED,
    expiresAt: ARRIVED + 2 * 86_400_000,
    size: ORIGINAL.length,
    bodyType: '7BIT',
    smtpUtf8: false,
    dsn: {},
    origin: { connector: 'default', clientIp: '192.0.2.10', clientHelo: 'client.example.test', tls: true },
    messageId: '<orig-1@example.test>',
    subject: 'Quarterly figures',
    recipients: [],
    ...overrides,
  };
}

/** Stable ids so a report's bytes are reproducible. */
export const fixedIds = {
  messageId: () => '<dsn-1@mx.example.test>',
  boundary: () => '=_test-boundary-42',
};

export const common = {
  reportingMta: 'mx.example.test',
  postmaster: 'postmaster@example.test',
  now: NOW,
  ids: fixedIds,
} as const;

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface ParsedReport {
  readonly mail: ParsedMail;
  /** The parts after the readable one, in order: status, then the returned original. */
  readonly attachments: Attachment[];
  readonly status: Attachment;
  readonly returned: Attachment | undefined;
}

/** Parses a report with a real MIME parser, keeping the machine-readable part as a part. */
export async function parseReport(raw: Buffer): Promise<ParsedReport> {
  const mail = await simpleParser(raw, { keepDeliveryStatus: true });
  const attachments = mail.attachments;
  const status = attachments.find((a) => /^message\/(global-)?delivery-status$/.test(a.contentType));
  assert.ok(status, 'the report has a delivery-status part');
  const returned = attachments.find((a) => a !== status);
  return { mail, attachments, status, returned };
}

/**
 * RFC 3464 §2.1: groups of header-like fields separated by empty lines; the first group is
 * per-message, each next one per-recipient. Field names are lowercased; values are unfolded.
 */
export function statusGroups(content: Buffer): Array<Map<string, string>> {
  const text = content.toString('utf8');
  return text
    .split(/\r\n\r\n/)
    .map((block) => block.trim())
    .filter((block) => block !== '')
    .map((block) => {
      const fields = new Map<string, string>();
      for (const line of block.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
        const colon = line.indexOf(':');
        assert.ok(colon > 0, `a field line: ${JSON.stringify(line)}`);
        fields.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
      }
      return fields;
    });
}

/** RFC 5322 §2.1.1 / RFC 5321 §4.5.3.1.6: CRLF everywhere, no line above 998 octets. */
export function assertWireFormat(raw: Buffer): void {
  let start = 0;
  let lineNo = 1;
  while (start < raw.length) {
    const lf = raw.indexOf(0x0a, start);
    assert.notEqual(lf, -1, `line ${lineNo} ends in CRLF (the report ends with one)`);
    assert.equal(raw[lf - 1], 0x0d, `line ${lineNo} ends in CRLF, not a bare LF`);
    const cr = raw.indexOf(0x0d, start);
    assert.equal(cr, lf - 1, `line ${lineNo} has no bare CR`);
    assert.ok(lf - 1 - start <= 998, `line ${lineNo} is ${lf - 1 - start} octets, more than 998`);
    start = lf + 1;
    lineNo++;
  }
}

/** The top-level header section of a raw report, unfolded, by lowercase name. */
export function topHeaders(raw: Buffer): Map<string, string> {
  const end = raw.indexOf('\r\n\r\n');
  const headers = new Map<string, string>();
  for (const line of raw
    .subarray(0, end)
    .toString('ascii')
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}
