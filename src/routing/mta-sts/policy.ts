import { domainToASCII } from 'node:url';
import { parsePolicy, validateMx } from 'mailauth/lib/mta-sts.js';

/** An MTA-STS policy (RFC 8461 §3.2) as fetched for one domain, with what the cache needs. */
export interface MtaStsPolicy {
  mode: 'enforce' | 'testing' | 'none';
  /** Lower-case MX patterns: host names, or '*.' and a domain (one leftmost label). */
  mx: string[];
  /** Seconds the policy may be cached after it was fetched (at most 31557600). */
  maxAge: number;
  /** The id of the `_mta-sts` TXT record the policy was fetched under. */
  id: string;
  /** Milliseconds since the Unix epoch (the node clock) when the policy was fetched. */
  fetchedAt: number;
}

/** RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year). */
export const MAX_POLICY_AGE_SECONDS = 31_557_600;

/** Milliseconds since the epoch after which the policy must not be used without a refresh. */
export function policyExpiresAt(policy: MtaStsPolicy): number {
  return policy.fetchedAt + policy.maxAge * 1000;
}

/** The policy domain in the form the TXT name, the policy host and the cache use, or undefined. */
export function normalizePolicyDomain(domain: string): string | undefined {
  const trimmed = domain.trim().replace(/\.$/, '');
  // Checked before domainToASCII, which silently drops tabs and line breaks.
  if (trimmed === '' || [...trimmed].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f))
    return undefined;
  const ascii = domainToASCII(trimmed);
  if (ascii === '' || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  if (labels.length < 2) return undefined;
  if (!labels.every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label))) return undefined;
  return ascii;
}

const STS_PREFIX = /^v=STSv1[ \t]*;/;
const STS_ID = /^[A-Za-z0-9]{1,32}$/;

export type TxtDiscovery = { kind: 'id'; id: string } | { kind: 'none'; reason: string };

/**
 * The policy id from the TXT records at `_mta-sts.<domain>` (RFC 8461 §3.1): records that do not
 * begin with `v=STSv1;` are discarded; if not exactly one remains, or it has no valid `id`, the
 * domain is treated as having no policy. Each record's character-strings are joined first.
 */
export function discoverPolicyId(records: string[][]): TxtDiscovery {
  const sts = records.map((chunks) => chunks.join('')).filter((record) => STS_PREFIX.test(record));
  if (sts.length === 0) return { kind: 'none', reason: 'no v=STSv1 TXT record' };
  if (sts.length > 1)
    return { kind: 'none', reason: `${sts.length} v=STSv1 TXT records (exactly one allowed)` };
  const fields = sts[0]!
    .split(';')
    .slice(1)
    .map((field) => field.trim());
  for (const field of fields) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    if (eq < 1) return { kind: 'none', reason: `malformed TXT field '${field}'` };
    if (field.slice(0, eq) !== 'id') continue;
    const id = field.slice(eq + 1);
    // The first id counts (as in mailauth); an invalid one makes the record invalid.
    return STS_ID.test(id) ? { kind: 'id', id } : { kind: 'none', reason: `invalid policy id '${id}'` };
  }
  return { kind: 'none', reason: 'TXT record has no id' };
}

export type ParsedPolicy =
  | { kind: 'ok'; mode: MtaStsPolicy['mode']; mx: string[]; maxAge: number }
  | { kind: 'invalid'; reason: string };

/**
 * Parses a policy body (RFC 8461 §3.2) with mailauth's strict parser: `version: STSv1`, `mode`,
 * `max_age` (0..31557600) and `mx` lines (several; required unless mode is none), CRLF or LF.
 */
export function parsePolicyBody(body: Buffer | string): ParsedPolicy {
  try {
    const parsed = parsePolicy(body, { strict: true });
    const maxAge = parsed.maxAge;
    if (
      typeof maxAge !== 'number' ||
      !Number.isInteger(maxAge) ||
      maxAge < 0 ||
      maxAge > MAX_POLICY_AGE_SECONDS
    )
      return { kind: 'invalid', reason: 'invalid max_age' };
    return { kind: 'ok', mode: parsed.mode, mx: [...(parsed.mx ?? [])], maxAge };
  } catch (error) {
    return { kind: 'invalid', reason: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * RFC 8461 §4.1: whether an MX host is named by the policy, exactly or by a '*.' pattern that
 * stands for exactly one leftmost label; case-insensitive, a trailing dot ignored. The mode is
 * not considered here (applyMtaSts does that).
 */
export function mxMatchesPolicy(policy: MtaStsPolicy, mxHost: string): boolean {
  // mailauth's validateMx answers "valid" for mode none whatever the host; ask it as enforce.
  return validateMx(mxHost, { mode: 'enforce', mx: policy.mx }).valid === true;
}
