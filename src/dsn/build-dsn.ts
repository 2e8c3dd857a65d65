import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { BodyType } from '../queue/types.ts';
import { deliveryStatusBody } from './delivery-status.ts';
import { readHeaderSection } from './header-section.ts';
import { foldField, headerText, oneLine, quotedPrintable, rfc5322Date } from './mime-text.ts';
import { type ReturnNote, readableText } from './readable-text.ts';
import { type DsnIds, type DsnInput, DsnInputError, type DsnKind, type DsnOutput } from './types.ts';

export const DEFAULT_MAX_FULL_RETURN_SIZE = 10 * 1024 * 1024;
export const DEFAULT_MAX_RETURNED_HEADER_SIZE = 256 * 1024;

const SUBJECT_PREFIX: Record<DsnKind, string> = {
  failure: 'Undeliverable',
  delay: 'Delivery delayed',
  success: 'Delivered',
};

const FALLBACK_STATUS: Record<DsnKind, string> = { failure: '5.0.0', delay: '4.0.0', success: '2.0.0' };

/**
 * Builds a delivery status notification (RFC 3464 inside an RFC 6522 multipart/report).
 *
 * The MIME is written by hand rather than with a composer library: the structure is fixed (three
 * parts, headers we choose), and what matters is streaming the original message into the third
 * part straight from the store, which composers tend to buffer.
 */
export function buildDsn(input: DsnInput): DsnOutput {
  const { message } = input;
  if (message.sender === '') throw new DsnInputError('No notification is ever sent for a null reverse-path');
  if (input.recipients.length === 0) throw new DsnInputError('A notification needs at least one recipient');

  const ids = input.ids ?? randomDsnIds(input.reportingMta);
  const boundary = ids.boundary();
  const messageId = ids.messageId();
  const maxFull = input.maxFullReturnSize ?? DEFAULT_MAX_FULL_RETURN_SIZE;
  const maxHeaders = input.maxReturnedHeaderSize ?? DEFAULT_MAX_RETURNED_HEADER_SIZE;
  // RFC 6533: an SMTPUTF8 original is reported with the message/global* types, which allow UTF-8.
  const global = message.smtpUtf8;
  const wantsFull = message.dsn.ret === 'FULL';
  const returns = wantsFull && message.size <= maxFull ? 'full' : 'headers';
  const notes: ReturnNote[] = [];
  if (wantsFull && returns === 'headers')
    notes.push({ kind: 'too-large', size: message.size, limit: maxFull });

  const bodyType = reportBodyType(message.bodyType, returns, global);
  const originalSubject = message.subject === undefined ? '' : oneLine(message.subject);
  const subject = `${SUBJECT_PREFIX[input.kind]}: ${originalSubject === '' ? '(no subject)' : originalSubject}`;
  const partEncoding = bodyType === 'BINARYMIME' ? 'binary' : bodyType === '8BITMIME' ? '8bit' : '7bit';

  async function* generate(): AsyncGenerator<Buffer> {
    const headers =
      returns === 'headers' ? await readHeaderSection(input.originalBody(), maxHeaders) : undefined;
    if (headers?.truncated) notes.push({ kind: 'headers-cut', limit: maxHeaders });

    let head =
      foldField('From', `"Mail Delivery System" <${oneLine(input.postmaster)}>`) +
      foldField('To', `<${oneLine(message.sender)}>`) +
      foldField('Subject', headerText(subject)) +
      foldField('Date', rfc5322Date(input.now)) +
      foldField('Message-ID', messageId) +
      threading(message.messageId) +
      foldField('Auto-Submitted', 'auto-replied') +
      foldField('MIME-Version', '1.0') +
      foldField('Content-Type', `multipart/report; report-type=delivery-status; boundary="${boundary}"`) +
      '\r\n' +
      'This is a MIME-formatted delivery status notification.\r\n';

    head += `\r\n--${boundary}\r\n`;
    head += foldField('Content-Type', 'text/plain; charset=utf-8');
    head += foldField('Content-Transfer-Encoding', 'quoted-printable');
    head += '\r\n';
    head += quotedPrintable(
      readableText({
        kind: input.kind,
        message,
        recipients: input.recipients,
        reportingMta: input.reportingMta,
        notes,
      }),
    );

    head += `\r\n--${boundary}\r\n`;
    head += foldField('Content-Type', global ? 'message/global-delivery-status' : 'message/delivery-status');
    if (global) head += foldField('Content-Transfer-Encoding', '8bit');
    head += '\r\n';
    head += deliveryStatusBody({
      message,
      recipients: input.recipients,
      reportingMta: input.reportingMta,
      global,
      fallbackStatus: FALLBACK_STATUS[input.kind],
    });

    head += `\r\n--${boundary}\r\n`;
    if (headers) {
      head += foldField('Content-Type', global ? 'message/global-headers' : 'text/rfc822-headers');
      if (partEncoding !== '7bit') head += foldField('Content-Transfer-Encoding', '8bit');
      head += foldField('Content-Description', 'Headers of the original message');
    } else {
      head += foldField('Content-Type', global ? 'message/global' : 'message/rfc822');
      if (partEncoding !== '7bit') head += foldField('Content-Transfer-Encoding', partEncoding);
      head += foldField('Content-Description', 'The original message');
    }
    head += '\r\n';
    yield Buffer.from(head, 'utf8');

    if (headers) {
      yield headers.bytes;
    } else {
      // Leaving this loop early (the reader gave up) destroys the source too.
      for await (const chunk of input.originalBody() as AsyncIterable<Buffer>) yield chunk;
    }
    yield Buffer.from(`\r\n--${boundary}--\r\n`, 'ascii');
  }

  return {
    envelope: { sender: '', recipients: [message.sender], bodyType, smtpUtf8: global },
    messageId,
    subject,
    returns,
    message: Readable.from(generate(), { objectMode: false }),
  };
}

/** RFC 3834 §3.1.5: lets the sender's mail program show the report next to the message it is about. */
function threading(originalId: string | undefined): string {
  const id = originalId === undefined ? '' : oneLine(originalId);
  if (!/^<[\x21-\x3b\x3d\x3f-\x7e]+>$/.test(id) || id.length > 900) return '';
  return foldField('In-Reply-To', id) + foldField('References', id);
}

/**
 * The report is 7-bit only when everything in it is: the original's 8-bit or binary content
 * (or UTF-8 headers) travels inside it unchanged, so the caller must queue it with that body type.
 */
function reportBodyType(original: BodyType, returns: 'full' | 'headers', global: boolean): BodyType {
  if (returns === 'full' && original === 'BINARYMIME') return 'BINARYMIME';
  if (global || original !== '7BIT') return '8BITMIME';
  return '7BIT';
}

export function randomDsnIds(reportingMta: string): DsnIds {
  const host = oneLine(reportingMta).replace(/[^A-Za-z0-9.-]/g, '') || 'localhost';
  return {
    messageId: () => `<dsn.${randomBytes(12).toString('hex')}@${host}>`,
    // `=_` cannot occur in base64 or quoted-printable text, and 96 random bits rule out the rest.
    boundary: () => `=_ferrymail-dsn-${randomBytes(12).toString('hex')}`,
  };
}
