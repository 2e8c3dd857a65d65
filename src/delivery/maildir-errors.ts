/**
 * SMTP replies for a failed Maildir write. Every I/O failure is transient: the disk may be freed,
 * the quota raised or the folder repaired, and the queue retries until the message expires.
 */
export function replyForWriteError(code: string): string {
  switch (code) {
    case 'EDQUOT':
      return '452 4.2.2 Mailbox full';
    case 'ENOSPC':
      return '452 4.3.1 Insufficient system resources';
    default:
      return `451 4.3.0 Mailbox delivery failed (${safeCode(code)})`;
  }
}

/** The queued body could not be read back: nothing was written for any recipient. */
export function replyForBodyError(code: string): string {
  return `451 4.3.0 Queued message unreadable (${safeCode(code)})`;
}

export function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/** Codes go into a reply line: only the characters errno names are made of. */
function safeCode(code: string): string {
  return /^[A-Z0-9_]{1,32}$/.test(code) ? code : 'EUNKNOWN';
}
