import type { QueuedMessage } from '../queue/types.ts';
import { decodeWords, oneLine, rfc5322Date } from './mime-text.ts';
import type { DsnKind, DsnRecipientReport } from './types.ts';

/** Why only the headers came back, when the sender asked for more or would wonder. */
export type ReturnNote =
  | { readonly kind: 'too-large'; readonly size: number; readonly limit: number }
  | { readonly kind: 'headers-cut'; readonly limit: number };

/** The part a person reads: what happened to which recipient, why, and what to do about it. */
export function readableText(input: {
  readonly kind: DsnKind;
  readonly message: QueuedMessage;
  readonly recipients: ReadonlyArray<DsnRecipientReport>;
  readonly reportingMta: string;
  readonly notes: ReadonlyArray<ReturnNote>;
}): string {
  const lines: string[] = [`This is the mail system at ${oneLine(input.reportingMta)}.`, ''];
  lines.push(INTRO[input.kind], '');
  lines.push(`  Subject: ${subjectForDisplay(input.message.subject)}`);
  lines.push(`  Sent:    ${rfc5322Date(input.message.receivedAt)}`, '');
  for (const r of input.recipients) {
    lines.push(oneLine(r.recipient.address));
    lines.push(`  ${describeOutcome(r)}`);
    if (r.diagnostic) {
      const server = r.remoteMta ? ` (${oneLine(r.remoteMta)})` : '';
      lines.push(`  The receiving server${server} said: ${oneLine(r.diagnostic)}`);
    }
    if (r.action === 'failed') lines.push(`  What you can do: ${advice(r.status)}`);
    if (r.action === 'delayed' && r.willRetryUntil !== undefined) {
      lines.push(`  We will keep trying until ${rfc5322Date(r.willRetryUntil)}.`);
    }
    lines.push('');
  }
  lines.push(...OUTRO[input.kind]);
  for (const note of input.notes) lines.push('', noteText(note));
  return `${lines.join('\n')}\n`;
}

const INTRO: Record<DsnKind, string> = {
  failure:
    'Your message could not be delivered to one or more recipients. The message was not delivered to the addresses below.',
  delay:
    'Delivery of your message to the recipients below has been delayed. This is only a warning: you do not need to send the message again.',
  success: 'Your message was delivered to the recipients below.',
};

const OUTRO: Record<DsnKind, string[]> = {
  failure: [
    "If the problem continues, contact the recipient's email administrator and give them this report.",
    'The technical details are attached.',
  ],
  delay: [
    'If the message still cannot be delivered by then, you will receive another notification.',
    'The technical details are attached.',
  ],
  success: ['The technical details are attached.'],
};

function describeOutcome(r: DsnRecipientReport): string {
  switch (r.action) {
    case 'failed':
      return `Not delivered (${r.status}): ${reason(r.status)}`;
    case 'delayed':
      return `Not yet delivered (${r.status}): ${reason(r.status)}`;
    case 'delivered':
      return "Delivered to the recipient's mailbox.";
    case 'relayed':
      return 'Passed on to a mail system that does not send delivery notifications; no further reports will follow.';
    case 'expanded':
      return 'Delivered to a distribution list, which passed it on to its members.';
  }
}

/** RFC 3463 subject and detail, in words a sender understands. */
function reason(status: string): string {
  const [, subject, detail] = status.split('.');
  const key = `${subject}.${detail}`;
  return REASONS[key] ?? REASONS_BY_SUBJECT[subject ?? ''] ?? 'the receiving mail system reported an error.';
}

const REASONS: Record<string, string> = {
  '1.1': 'the address does not exist.',
  '1.2': 'the domain of the address does not exist or does not accept mail.',
  '1.10': 'the domain of the address does not accept mail.',
  '2.1': 'the mailbox is disabled.',
  '2.2': 'the mailbox is full.',
  '2.3': 'the message is larger than the recipient accepts.',
  '3.4': 'the message is too large for the route it has to take.',
  '4.4': "no mail server for the recipient's domain could be found.",
  '4.6': 'the message was forwarded in a loop.',
  '4.7': 'delivery took longer than the time a message is allowed to wait.',
};

const REASONS_BY_SUBJECT: Record<string, string> = {
  '1': 'there is a problem with the address.',
  '2': "there is a problem with the recipient's mailbox.",
  '3': "the recipient's mail system has a problem.",
  '4': "the recipient's mail server could not be reached.",
  '5': 'the mail servers could not agree on how to transfer the message.',
  '6': 'the message content could not be delivered as it is.',
  '7': "the recipient's mail system refused the message for security or policy reasons.",
};

function advice(status: string): string {
  const [, subject, detail] = status.split('.');
  if (subject === '1') return 'Check the address for typing mistakes and send the message again.';
  if (subject === '2' && detail === '2') return 'Try again later, or reach the recipient another way.';
  if ((subject === '2' && detail === '3') || (subject === '3' && detail === '4')) {
    return 'Make the message smaller (for example, share large attachments as a link) and send it again.';
  }
  if (subject === '7')
    return "Contact the recipient's email administrator; they can tell you why it was refused.";
  return "Try again later. If it keeps failing, contact the recipient's email administrator.";
}

function subjectForDisplay(subject: string | undefined): string {
  if (subject === undefined || oneLine(subject) === '') return '(no subject)';
  return oneLine(decodeWords(subject));
}

function noteText(note: ReturnNote): string {
  if (note.kind === 'too-large') {
    return (
      `The original message (${megabytes(note.size)}) is larger than the ${megabytes(note.limit)} ` +
      'that are returned in full, so only its headers are attached.'
    );
  }
  return `The original message's header section is longer than ${megabytes(note.limit)}; the attached copy of it is cut short.`;
}

function megabytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
