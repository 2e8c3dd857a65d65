import type { QueuedMessage } from '../queue/types.ts';
import { foldField, isAscii, oneLine, rfc5322Date } from './mime-text.ts';
import type { DsnRecipientReport } from './types.ts';

/**
 * The machine-readable part (RFC 3464 §2): per-message fields, then one block per recipient,
 * blocks separated by an empty line. `global` means the RFC 6533 `message/global-delivery-status`
 * form, which may carry UTF-8; otherwise non-ASCII is written as `\x{HHHH}` (RFC 6533 §3).
 */
export function deliveryStatusBody(input: {
  readonly message: QueuedMessage;
  readonly recipients: ReadonlyArray<DsnRecipientReport>;
  readonly reportingMta: string;
  readonly global: boolean;
  readonly fallbackStatus: string;
}): string {
  const text = (value: string): string => (input.global ? value : embedUnicode(value));
  let out = foldField('Reporting-MTA', `dns; ${text(oneLine(input.reportingMta))}`);
  const envid = input.message.dsn.envid;
  if (envid !== undefined && envid !== '') out += foldField('Original-Envelope-Id', envelopeId(envid));
  out += foldField('Arrival-Date', rfc5322Date(input.message.receivedAt));
  for (const r of input.recipients) {
    out += '\r\n';
    const orcpt = r.recipient.orcpt;
    if (orcpt !== undefined && orcpt !== '')
      out += foldField('Original-Recipient', typedAddress(orcpt, text));
    out += foldField('Final-Recipient', addressField(r.recipient.address, text));
    out += foldField('Action', r.action);
    out += foldField('Status', validStatus(r.status) ? r.status : input.fallbackStatus);
    if (r.remoteMta) out += foldField('Remote-MTA', `dns; ${text(oneLine(r.remoteMta))}`);
    if (r.diagnostic) out += foldField('Diagnostic-Code', `smtp; ${text(oneLine(r.diagnostic))}`);
    if (r.lastAttemptAt !== undefined) out += foldField('Last-Attempt-Date', rfc5322Date(r.lastAttemptAt));
    if (r.willRetryUntil !== undefined && r.action === 'delayed') {
      out += foldField('Will-Retry-Until', rfc5322Date(r.willRetryUntil));
    }
  }
  return out;
}

/** RFC 3463: class.subject.detail, subject and detail up to three digits. */
export function validStatus(status: string): boolean {
  return /^[245]\.\d{1,3}\.\d{1,3}$/.test(status);
}

/** RFC 6533 §3: `rfc822;` for ASCII addresses, `utf-8;` for internationalized ones. */
function addressField(address: string, text: (v: string) => string): string {
  const clean = oneLine(address);
  return isAscii(clean) ? `rfc822; ${clean}` : `utf-8; ${text(clean)}`;
}

/** ORCPT as stored: `type;address`, already xtext-decoded. */
function typedAddress(orcpt: string, text: (v: string) => string): string {
  const semi = orcpt.indexOf(';');
  if (semi <= 0) return addressField(orcpt, text);
  return `${oneLine(orcpt.slice(0, semi))}; ${text(oneLine(orcpt.slice(semi + 1)))}`;
}

/** The ENVID as the sender gave it; one that decoded to unprintable characters goes back as xtext. */
function envelopeId(envid: string): string {
  if (/^[\x21-\x7e]*$/.test(envid)) return envid;
  let out = '';
  for (const byte of Buffer.from(envid, 'utf8')) {
    out +=
      byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d
        ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

function embedUnicode(value: string): string {
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    out += cp < 0x80 ? ch : `\\x{${cp.toString(16).toUpperCase().padStart(4, '0')}}`;
  }
  return out;
}
