import type { MtaStsLookup } from './policies.ts';
import { mxMatchesPolicy } from './policy.ts';

export interface MtaStsDecision {
  /** The policy is in enforce mode: only `allowed` may be used, with `requireTls`. */
  enforce: boolean;
  /** The MX hosts delivery may try, in the order given. */
  allowed: string[];
  /** The MX hosts delivery must not try (enforce mode only). */
  rejected: string[];
  /** MX hosts the policy does not name, in testing mode as well (what would fail under enforce). */
  mismatched: string[];
  /**
   * STARTTLS is required and the MX certificate must be validated: a chain to a trusted root and
   * a name matching the MX host name (RFC 8461 §4.2). No plaintext fallback, no unverified TLS.
   */
  requireTls: boolean;
  /**
   * Do not deliver now: retry later. Set when an enforce policy leaves no MX host (RFC 8461 §5:
   * never bounce before checking for an updated policy), or for a temporary lookup when asked.
   */
  defer: boolean;
  /** One line for logs and delivery reports: what applies and what failed or would fail. */
  report: string;
}

export interface ApplyMtaStsOptions {
  /**
   * What a 'temporary' lookup means. RFC 8461 §5.1: with no usable cached policy, deliver as
   * though the domain had no MTA-STS ('deliver', the default); 'defer' trades that for protection
   * against an attacker blocking the policy fetch.
   */
  onTemporary?: 'deliver' | 'defer';
}

/** Which MX hosts delivery may use under an MTA-STS lookup result, and whether TLS must be verified. */
export function applyMtaSts(
  lookup: MtaStsLookup,
  mxHosts: string[],
  options: ApplyMtaStsOptions = {},
): MtaStsDecision {
  const open = (report: string, defer = false): MtaStsDecision => ({
    enforce: false,
    allowed: [...mxHosts],
    rejected: [],
    mismatched: [],
    requireTls: false,
    defer,
    report,
  });
  if (lookup.kind === 'none') return open(`no MTA-STS policy${lookup.reason ? ` (${lookup.reason})` : ''}`);
  if (lookup.kind === 'temporary') {
    const defer = options.onTemporary === 'defer';
    return open(
      `MTA-STS policy unavailable: ${lookup.reason}; ${defer ? 'deferring' : 'delivering as without MTA-STS'}`,
      defer,
    );
  }
  const { policy } = lookup;
  const source = `MTA-STS policy id ${policy.id} (${lookup.fromCache ? 'cached' : 'fetched'})`;
  const warning = lookup.warning === undefined ? '' : `; ${lookup.warning}`;
  if (policy.mode === 'none') return open(`${source} mode none: no restrictions${warning}`);

  const matching = mxHosts.filter((host) => mxMatchesPolicy(policy, host));
  const mismatched = mxHosts.filter((host) => !mxMatchesPolicy(policy, host));
  const named = mismatched.length === 0 ? '' : `; MX not in policy: ${mismatched.join(', ')}`;
  if (policy.mode === 'testing') {
    return {
      ...open(
        `${source} mode testing: would require verified TLS to ${policy.mx.join(', ')}${named}${warning}`,
      ),
      mismatched,
    };
  }
  const none = matching.length === 0;
  return {
    enforce: true,
    allowed: matching,
    rejected: mismatched,
    mismatched,
    requireTls: true,
    defer: none,
    report: `${source} mode enforce: verified TLS required to ${policy.mx.join(', ')}${named}${
      none ? '; no MX host allowed, deferring' : ''
    }${warning}`,
  };
}
