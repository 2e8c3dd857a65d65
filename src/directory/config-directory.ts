import type { AcceptedDomainConfig, Config } from '../config/schema.ts';
import { hashPassword, verifyPassword } from './password.ts';
import type { Directory, Resolution, ResolvedRecipient } from './types.ts';

/** Groups nest at most this deep; deeper members are ignored (and loops stop at the first repeat). */
const MAX_GROUP_DEPTH = 16;

function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/**
 * The directory built from the config file. Addresses match case-insensitively in both parts,
 * as Exchange does: `Alice@Example.TEST` is alice@example.test. Everything is precomputed into
 * maps so a RCPT costs a few lookups.
 */
export class ConfigDirectory implements Directory {
  readonly #domains = new Map<string, AcceptedDomainConfig>();
  readonly #default: string | undefined;
  /** mailbox primary address → password hash (may be undefined: no login). */
  readonly #mailboxes = new Map<string, string | undefined>();
  /** alias or proxy address → target address (which may itself be an alias or group). */
  readonly #aliases = new Map<string, string>();
  readonly #groups = new Map<string, ReadonlyArray<string>>();
  readonly #dummyHash: Promise<string>;

  constructor(config: Pick<Config, 'acceptedDomains' | 'mailboxes' | 'aliases' | 'groups'>) {
    for (const d of config.acceptedDomains) this.#domains.set(d.name, d);
    this.#default = (config.acceptedDomains.find((d) => d.default) ?? config.acceptedDomains[0])?.name;
    for (const m of config.mailboxes) {
      this.#mailboxes.set(m.address, m.passwordHash);
      for (const proxy of m.aliases) this.#aliases.set(proxy, m.address);
    }
    for (const a of config.aliases) this.#aliases.set(a.address, a.target);
    for (const g of config.groups) this.#groups.set(g.address, g.members);
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
    const { local, domain } = splitAddress(normalized);
    const accepted = this.#domains.get(domain);
    if (!accepted) return { kind: 'external' };
    if (accepted.type === 'externalRelay') {
      return { kind: 'internal', recipients: [{ address: normalized, local: false }], rewritten: false };
    }
    const recipients: ResolvedRecipient[] = [];
    const found = this.#expand(normalized, recipients, new Set(), 0);
    if (!found) {
      // Every domain has a postmaster (RFC 5321 §4.5.1); without one configured, the default domain's.
      if (local === 'postmaster' && this.#default && domain !== this.#default) {
        return this.resolve(`postmaster@${this.#default}`);
      }
      if (accepted.type === 'internalRelay') {
        return { kind: 'internal', recipients: [{ address: normalized, local: false }], rewritten: false };
      }
      return { kind: 'unknown' };
    }
    const rewritten = recipients.length !== 1 || recipients[0]!.address !== normalized;
    return { kind: 'internal', recipients: dedupe(recipients), rewritten };
  }

  /** Adds what `address` stands for to `out`; false when the address is not known here. */
  #expand(address: string, out: ResolvedRecipient[], visiting: Set<string>, depth: number): boolean {
    if (this.#mailboxes.has(address)) {
      out.push({ address, local: true });
      return true;
    }
    if (visiting.has(address) || depth > MAX_GROUP_DEPTH) return true;
    const target = this.#aliases.get(address);
    if (target !== undefined) {
      visiting.add(address);
      if (!this.#expand(target, out, visiting, depth + 1)) out.push(this.#outside(target));
      return true;
    }
    const members = this.#groups.get(address);
    if (members !== undefined) {
      visiting.add(address);
      for (const member of members) {
        if (!this.#expand(member, out, visiting, depth + 1)) out.push(this.#outside(member));
      }
      return true;
    }
    return false;
  }

  /** A member or alias target that is not a mailbox, alias or group here leaves through a connector. */
  #outside(address: string): ResolvedRecipient {
    return { address, local: false };
  }

  async authenticate(
    username: string,
    password: string,
  ): Promise<{ ok: true; user: string } | { ok: false }> {
    const user = username.toLowerCase();
    const hash = this.#mailboxes.get(user);
    if (hash === undefined) {
      await verifyPassword(password, await this.#dummyHash);
      return { ok: false };
    }
    return (await verifyPassword(password, hash)) ? { ok: true, user } : { ok: false };
  }
}

function dedupe(recipients: ResolvedRecipient[]): ResolvedRecipient[] {
  const seen = new Set<string>();
  return recipients.filter((r) => (seen.has(r.address) ? false : (seen.add(r.address), true)));
}
