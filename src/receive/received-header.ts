/** The trace header a receiving MTA prepends (RFC 5321 §4.4), folded to stay under 78 columns. */
export function receivedHeader(fields: {
  helo: string;
  clientIp: string;
  fqdn: string;
  protocol: string;
  queueId: string;
  recipient?: string;
  tls?: string;
  date: Date;
}): Buffer {
  const parts = [
    `Received: from ${sanitize(fields.helo)} ([${fields.clientIp}])`,
    `by ${fields.fqdn} (Ferrymail) with ${fields.protocol}`,
    ...(fields.tls ? [`(${fields.tls})`] : []),
    `id ${fields.queueId}${fields.recipient ? '' : ';'}`,
    ...(fields.recipient ? [`for <${sanitize(fields.recipient)}>;`] : []),
    rfc5322Date(fields.date),
  ];
  return Buffer.from(`${parts.join('\r\n\t')}\r\n`);
}

/** Whatever the client sent is put in a header: no line breaks, no control characters. */
function sanitize(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  return text.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 255);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function rfc5322Date(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(
    d.getUTCHours(),
  )}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
