/**
 * The published SMTP smuggling end-of-data variants (SEC Consult 2023 and follow-ups): each
 * would end the data at a lenient server, so what follows it would run as a hidden transaction.
 * Used by the receive framing tests and the relay test (test/security/smuggling-relay.test.ts).
 */
export const SMUGGLING_ENDINGS: readonly string[] = [
  '\n.\n',
  '\n.\r\n',
  '\r.\r',
  '\r\n.\n',
  '\n.\r',
  '\r.\n',
  '\r.\r\n',
  '\r\n\x00.\r\n',
  '\r\n.\r\r\n',
  '\r\r\n.\r\r\n',
  '\r\n.\r',
  '\n\n.\n\n',
];

/** The sender and recipient of the hidden transaction `smuggle()` puts behind the ending. */
export const HIDDEN_SENDER = 'admin@example.test';

/**
 * DATA content whose only real end (CRLF.CRLF) is the hidden message's own: the `ending`, then
 * a hidden `MAIL FROM` / `RCPT TO` / `DATA` transaction.
 */
export function smuggle(ending: string, hiddenRecipient = 'alice@example.test'): string {
  return (
    `Subject: outer\r\n\r\nouter body${ending}` +
    `MAIL FROM:<${HIDDEN_SENDER}>\r\nRCPT TO:<${hiddenRecipient}>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nhidden\r\n.\r\n`
  );
}

/** The ending holds a CR or LF that is not part of a CRLF. */
export function hasBareLineEnding(ending: string): boolean {
  return /[\r\n]/.test(ending.replace(/\r\n/g, ''));
}
