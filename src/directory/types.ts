import type { AcceptedDomainConfig } from '../config/schema.ts';

/** One address a recipient resolves to. */
export interface ResolvedRecipient {
  /** Lower-cased final address. */
  readonly address: string;
  /** True when the address is a mailbox on this node; false when it must leave through a send connector. */
  readonly local: boolean;
}

/**
 * What the directory says about an address given at RCPT.
 * - `internal`: ours (mailbox, alias, group, or an address in a relay domain), with the addresses it expands to;
 * - `unknown`: in an authoritative domain but nothing there: `550 5.1.1`;
 * - `external`: not an accepted domain: relaying, which needs the relay permission.
 */
export type Resolution =
  | {
      readonly kind: 'internal';
      readonly recipients: ReadonlyArray<ResolvedRecipient>;
      readonly rewritten: boolean;
    }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'external' };

export interface Directory {
  acceptedDomain(domain: string): AcceptedDomainConfig | undefined;
  /** The default accepted domain (for postmaster@ and NDRs). */
  defaultDomain(): string | undefined;
  resolve(address: string): Resolution;
  /** Checks a login (a mailbox address) and its password; constant-time against unknown users too. */
  authenticate(username: string, password: string): Promise<{ ok: true; user: string } | { ok: false }>;
  /** The mailbox (its primary address) that `address` (a primary or proxy address) belongs to. */
  mailboxOf?(address: string): string | undefined;
  /** A login's `{CRAM-MD5}` secret, for AUTH CRAM-MD5; undefined when it has none. */
  cramMd5Secret?(username: string): string | undefined;
  /**
   * True when the logged-in `user` may use `address` as envelope sender or From: address: its
   * own primary and proxy addresses, and its sendAs rights. `''` is the null sender.
   */
  maySendAs?(user: string, address: string): boolean;
}
