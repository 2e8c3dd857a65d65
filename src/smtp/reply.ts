/** An SMTP reply: a code, an enhanced status code (RFC 3463) and one or more text lines. */
export interface Reply {
  readonly code: number;
  readonly status?: string;
  readonly lines: ReadonlyArray<string>;
}

export function reply(code: number, status: string | undefined, ...lines: string[]): Reply {
  return { code, ...(status ? { status } : {}), lines: lines.length > 0 ? lines : [''] };
}

/** Wire form: `250-first`, ..., `250 last`, each line with the enhanced code when it has one. */
export function formatReply(r: Reply): string {
  const prefix = r.status ? `${r.status} ` : '';
  return r.lines
    .map((line, i) => `${r.code}${i === r.lines.length - 1 ? ' ' : '-'}${prefix}${line}`.trimEnd())
    .join('\r\n')
    .concat('\r\n');
}

/** Wire form of an EHLO reply: RFC 2034 does not put enhanced codes on it. */
export function formatEhlo(lines: ReadonlyArray<string>): string {
  return lines
    .map((line, i) => `250${i === lines.length - 1 ? ' ' : '-'}${line}`)
    .join('\r\n')
    .concat('\r\n');
}
