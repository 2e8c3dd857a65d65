import type { AcceptedDomainConfig, Config, MailboxConfig } from '../config/schema.ts';
import { resolveConfiguredAddresses } from './expansion.ts';
import { hashPassword, verifyPassword } from './password.ts';
import type { Directory, Resolution } from './types.ts';

const UNKNOWN: Resolution = Object.freeze({ kind: 'unknown' });
const EXTERNAL: Resolution = Object.freeze({ kind: 'external' });

function relayed(address: string): Resolution {
  return Object.freeze({
    kind: 'internal',
    recipients: Object.freeze([Object.freeze({ address, local: false })]),
    rewritten: false,
  });
}

/** What the directory is built from: the config's sections (sendAs may be left out). */
export type DirectoryConfig = Pick<Config, 'acceptedDomains' | 'aliases' | 'groups'> & {
  readonly mailboxes: ReadonlyArray<
    Omit<MailboxConfig, 'sendAs'> & { readonly sendAs?: ReadonlyArray<string> }
  >;
};

/**
 * The directory built from the config file.
 *
 * Addresses match case-insensitively in both parts: `Alice@Example.TEST` is
 * alice@example.test. RFC 5321 lets the local part be case-sensitive, but Exchange (and every
 * mailbox server people actually run) treats it as case-insensitive, and a sender's capitals
 * should never bounce a message.
 *
 * Every configured address (mailbox, proxy address, alias, group) is resolved once at
 * construction, so the RCPT path costs one or two map lookups.
 */
export class ConfigDirectory implements Directory {
  readonly #domains = new Map<string, AcceptedDomainConfig>();
  readonly #default: string | undefined;
  /** mailbox primary address → password hash (undefined: the mailbox cannot log in). */
  readonly #passwords = new Map<string, string | undefined>();
  /** Every configured address → what it resolves to. */
  readonly #known: ReadonlyMap<string, Resolution>;
  /** Where postmaster@ of an accepted domain goes when that domain has none configured. */
  readonly #postmaster: Resolution | undefined;
  readonly #dummyHash: Promise<string>;
  /** Every primary and proxy address of a mailbox → its primary address. */
  readonly #mailboxOf = new Map<string, string>();
  readonly #cramSecrets = new Map<string, string>();
  /** Mailbox → the exact addresses (`''` for `<>`) and the domains it may send as. */
  readonly #sendAs = new Map<string, { addresses: Set<string>; domains: Set<string> }>();

  constructor(input: DirectoryConfig) {
    const config = {
      ...input,
      mailboxes: input.mailboxes.map((m) => ({ ...m, sendAs: [...(m.sendAs ?? [])] })),
    };
    for (const d of config.acceptedDomains) this.#domains.set(d.name.toLowerCase(), d);
    this.#default = (
      config.acceptedDomains.find((d) => d.default) ?? config.acceptedDomains[0]
    )?.name.toLowerCase();

    for (const m of config.mailboxes) {
      const address = m.address.toLowerCase();
      this.#passwords.set(address, m.passwordHash);
      this.#mailboxOf.set(address, address);
      for (const proxy of m.aliases) this.#mailboxOf.set(proxy.toLowerCase(), address);
      if (m.cramMd5Secret !== undefined) this.#cramSecrets.set(address, m.cramMd5Secret);
      const rights = { addresses: new Set<string>(), domains: new Set<string>() };
      for (const entry of m.sendAs) {
        const e = entry.toLowerCase();
        if (e === '<>') rights.addresses.add('');
        else if (e.startsWith('@')) rights.domains.add(e.slice(1));
        else rights.addresses.add(e);
      }
      this.#sendAs.set(address, rights);
    }
    this.#known = resolveConfiguredAddresses(config);

    // RFC 5321 §4.5.1: every accepted domain has a postmaster. Unconfigured ones go to the
    // default domain's postmaster, else to the first mailbox of the file.
    const defaultPostmaster = this.#default && this.#known.get(`postmaster@${this.#default}`);
    const firstMailbox = config.mailboxes[0]?.address.toLowerCase();
    this.#postmaster =
      defaultPostmaster && defaultPostmaster.kind === 'internal'
        ? { ...defaultPostmaster, rewritten: true }
        : firstMailbox
          ? Object.freeze({
              kind: 'internal',
              recipients: Object.freeze([{ address: firstMailbox, local: true }]),
              rewritten: true,
            })
          : undefined;

    // Unknown users are checked against this so a failed login takes as long as a real one.
    this.#dummyHash = hashPassword('no such user');
  }

  acceptedDomain(domain: string): AcceptedDomainConfig | undefined {
    return this.#domains.get(domain.toLowerCase());
  }

  defaultDomain(): string | undefined {
    return this.#default;
  }

  resolve(address: string): Resolution {
    const normalized = address.toLowerCase();
    const at = normalized.lastIndexOf('@');
    if (at < 0) {
      // RFC 5321 §4.1.1.3: the bare <postmaster> is the only recipient without a domain.
      return normalized === 'postmaster' ? (this.#postmaster ?? UNKNOWN) : UNKNOWN;
    }
    const domain = normalized.slice(at + 1);
    const accepted = this.#domains.get(domain);
    if (!accepted) return EXTERNAL;
    const known = this.#known.get(normalized);
    if (known) return known;
    if (accepted.type === 'externalRelay') return relayed(normalized);
    if (normalized.slice(0, at) === 'postmaster' && this.#postmaster) return this.#postmaster;
    if (accepted.type === 'internalRelay') return relayed(normalized);
    return UNKNOWN;
  }

  mailboxOf(address: string): string | undefined {
    return this.#mailboxOf.get(address.toLowerCase());
  }

  cramMd5Secret(username: string): string | undefined {
    return this.#cramSecrets.get(username.toLowerCase());
  }

  maySendAs(user: string, address: string): boolean {
    const mailbox = user.toLowerCase();
    const wanted = address.toLowerCase();
    if (wanted !== '' && this.#mailboxOf.get(wanted) === mailbox) return true;
    const rights = this.#sendAs.get(mailbox);
    if (!rights) return false;
    if (rights.addresses.has(wanted)) return true;
    const at = wanted.lastIndexOf('@');
    return at > 0 && rights.domains.has(wanted.slice(at + 1));
  }

  async authenticate(
    username: string,
    password: string,
  ): Promise<{ ok: true; user: string } | { ok: false }> {
    const user = username.toLowerCase();
    const hash = this.#passwords.get(user);
    if (hash === undefined) {
      await verifyPassword(password, await this.#dummyHash);
      return { ok: false };
    }
    return (await verifyPassword(password, hash)) ? { ok: true, user } : { ok: false };
  }
}
