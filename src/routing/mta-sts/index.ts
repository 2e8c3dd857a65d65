export { type ApplyMtaStsOptions, applyMtaSts, type MtaStsDecision } from './apply.ts';
export { createHttpsFetcher, type PolicyFetcher, type PolicyResponse } from './fetcher.ts';
export {
  DEFAULT_FETCH_TIMEOUT_MS,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_RETRY_AFTER_FAILURE_MS,
  type MtaStsLookup,
  type MtaStsOptions,
  MtaStsPolicies,
} from './policies.ts';
export {
  discoverPolicyId,
  MAX_POLICY_AGE_SECONDS,
  type MtaStsPolicy,
  mxMatchesPolicy,
  parsePolicyBody,
  policyExpiresAt,
} from './policy.ts';
