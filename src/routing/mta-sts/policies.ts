import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/logger.ts';
import type { DnsResolver } from '../dns/resolver.ts';
import { readPolicyCache, writePolicyCache } from './cache-file.ts';
import { createHttpsFetcher, POLICY_PATH, type PolicyFetcher, type PolicyResponse } from './fetcher.ts';
import {
  discoverPolicyId,
  type MtaStsPolicy,
  normalizePolicyDomain,
  parsePolicyBody,
  policyExpiresAt,
} from './policy.ts';

export type MtaStsLookup =
  /** No usable `_mta-sts` TXT record and no unexpired cached policy: deliver as without MTA-STS. */
  | { kind: 'none'; reason?: string }
  | {
      kind: 'policy';
      policy: MtaStsPolicy;
      /** True when the cached policy was used without fetching it now. */
      fromCache: boolean;
      /** Why the cached policy was used although the TXT record or a refresh said otherwise. */
      warning?: string;
    }
  /**
   * A policy should exist (the TXT record names one, or an expired one is cached) but could not be
   * fetched now, or the TXT lookup itself failed and nothing usable is cached.
   */
  | { kind: 'temporary'; reason: string };

export interface MtaStsOptions {
  resolver: DnsResolver;
  /** JSON file under the data folder; survives restarts; replaced atomically. */
  cacheFile: string;
  clock: Clock;
  /** Replaces the HTTPS fetch (its answer is checked the same way); default: createHttpsFetcher. */
  fetchPolicy?: PolicyFetcher;
  /** For tests of the default fetcher: trust a test CA and connect to a loopback port instead of DNS. */
  https?: { ca?: string | Buffer; connectTo?: (host: string) => { address: string; port: number } };
  /** Milliseconds for the whole policy fetch; default 10 s. */
  timeout?: number;
  /** Bytes; default 64 KiB (RFC 8461 §3.3). */
  maxBodySize?: number;
  /**
   * Milliseconds during which a failed fetch of a domain's policy id is not tried again (the
   * failure is answered from memory); a new TXT id is always tried. Default 5 minutes; 0 retries
   * on every lookup.
   */
  retryAfterFailure?: number;
  /** Told when the cache file cannot be written (the policies stay in memory). */
  logger?: Logger;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_BODY_SIZE = 64 * 1024;
export const DEFAULT_RETRY_AFTER_FAILURE_MS = 5 * 60_000;

type FetchOutcome =
  | { kind: 'ok'; mode: MtaStsPolicy['mode']; mx: string[]; maxAge: number }
  | { kind: 'failed'; reason: string };

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * MTA-STS policy discovery, fetch and cache for outbound delivery (RFC 8461 §3, §5.1). `lookup`
 * never throws: every failure is a value. Concurrent lookups of one domain share one fetch.
 */
export class MtaStsPolicies {
  readonly #options: MtaStsOptions;
  readonly #fetcher: PolicyFetcher;
  readonly #timeout: number;
  readonly #maxBodySize: number;
  #cache: Promise<Map<string, MtaStsPolicy>> | undefined;
  #writes: Promise<void> = Promise.resolve();
  readonly #inFlight = new Map<string, Promise<MtaStsLookup>>();
  /** The last failed fetch per domain, so a policy host that is down is not asked on every lookup. */
  readonly #failures = new Map<string, { id: string; until: number; reason: string }>();

  constructor(options: MtaStsOptions) {
    this.#options = options;
    this.#timeout = options.timeout ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.#maxBodySize = options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
    this.#fetcher =
      options.fetchPolicy ??
      createHttpsFetcher({
        resolver: options.resolver,
        maxBodySize: this.#maxBodySize,
        ...(options.https?.ca === undefined ? {} : { ca: options.https.ca }),
        ...(options.https?.connectTo === undefined ? {} : { connectTo: options.https.connectTo }),
      });
  }

  lookup(domain: string): Promise<MtaStsLookup> {
    const name = normalizePolicyDomain(domain);
    if (name === undefined)
      return Promise.resolve({ kind: 'none', reason: `'${domain}' is not a domain name` });
    const running = this.#inFlight.get(name);
    if (running !== undefined) return running;
    const lookup = this.#lookup(name)
      .catch(
        (error: unknown): MtaStsLookup => ({
          kind: 'temporary',
          reason: `MTA-STS lookup for ${name} failed: ${message(error)}`,
        }),
      )
      .finally(() => this.#inFlight.delete(name));
    this.#inFlight.set(name, lookup);
    return lookup;
  }

  /** Resolves when every cache write started so far has finished (shutdown, tests). */
  async flush(): Promise<void> {
    await this.#writes;
  }

  #loadCache(): Promise<Map<string, MtaStsPolicy>> {
    this.#cache ??= readPolicyCache(this.#options.cacheFile);
    return this.#cache;
  }

  /** Writes the whole cache after any write already running; failures are logged, not thrown. */
  #persist(cache: Map<string, MtaStsPolicy>): Promise<void> {
    this.#writes = this.#writes.then(() =>
      writePolicyCache(this.#options.cacheFile, cache).catch((error: unknown) => {
        this.#options.logger?.warn(
          { err: error, cacheFile: this.#options.cacheFile },
          'MTA-STS policy cache could not be written',
        );
      }),
    );
    return this.#writes;
  }

  async #lookup(name: string): Promise<MtaStsLookup> {
    const cache = await this.#loadCache();
    const cached = cache.get(name);
    // A copy, so a caller changing the answer cannot change the cache.
    const usable =
      cached !== undefined && this.#options.clock.now() < policyExpiresAt(cached)
        ? { ...cached, mx: [...cached.mx] }
        : undefined;

    const txt = await this.#options.resolver.txt(`_mta-sts.${name}`);
    if (txt.kind === 'temporary') {
      if (usable !== undefined)
        return {
          kind: 'policy',
          policy: usable,
          fromCache: true,
          warning: `TXT lookup failed: ${txt.reason}`,
        };
      return { kind: 'temporary', reason: `MTA-STS TXT lookup for ${name} failed: ${txt.reason}` };
    }
    const discovery =
      txt.kind === 'ok'
        ? discoverPolicyId(txt.records)
        : { kind: 'none' as const, reason: `no TXT record at _mta-sts.${name}` };

    if (discovery.kind === 'none') {
      // §5.1: an unexpired cached policy still applies; only a new id (or expiry) replaces it.
      if (usable !== undefined)
        return {
          kind: 'policy',
          policy: usable,
          fromCache: true,
          warning: `${discovery.reason}; the cached policy applies until it expires`,
        };
      if (cached !== undefined) {
        cache.delete(name);
        await this.#persist(cache);
      }
      return { kind: 'none', reason: discovery.reason };
    }

    if (usable !== undefined && usable.id === discovery.id)
      return { kind: 'policy', policy: usable, fromCache: true };

    const fetched = await this.#fetchOrRecall(name, discovery.id);
    if (fetched.kind === 'failed') {
      if (usable !== undefined)
        return {
          kind: 'policy',
          policy: usable,
          fromCache: true,
          warning: `policy id ${discovery.id} could not be fetched (${fetched.reason}); using cached id ${usable.id}`,
        };
      return { kind: 'temporary', reason: fetched.reason };
    }
    const policy: MtaStsPolicy = {
      mode: fetched.mode,
      mx: fetched.mx,
      maxAge: fetched.maxAge,
      id: discovery.id,
      fetchedAt: this.#options.clock.now(),
    };
    cache.set(name, policy);
    await this.#persist(cache);
    return { kind: 'policy', policy: { ...policy, mx: [...policy.mx] }, fromCache: false };
  }

  async #fetchOrRecall(name: string, id: string): Promise<FetchOutcome> {
    const failure = this.#failures.get(name);
    if (failure !== undefined && failure.id === id && this.#options.clock.now() < failure.until)
      return {
        kind: 'failed',
        reason: `${failure.reason} (not retried before ${new Date(failure.until).toISOString()})`,
      };
    const fetched = await this.#fetch(name);
    const retryAfter = this.#options.retryAfterFailure ?? DEFAULT_RETRY_AFTER_FAILURE_MS;
    if (fetched.kind === 'ok' || retryAfter <= 0) this.#failures.delete(name);
    else
      this.#failures.set(name, { id, until: this.#options.clock.now() + retryAfter, reason: fetched.reason });
    return fetched;
  }

  /** Fetches and validates the policy body (RFC 8461 §3.3); any problem is a failed fetch. */
  async #fetch(name: string): Promise<FetchOutcome> {
    const url = `https://mta-sts.${name}${POLICY_PATH}`;
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`timed out after ${this.#timeout} ms`)),
      this.#timeout,
    );
    // The fetcher may ignore the signal (an injected one); the race still ends the wait.
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    let response: PolicyResponse;
    try {
      response = await Promise.race([this.#fetcher(name, controller.signal), aborted]);
    } catch (error) {
      return { kind: 'failed', reason: `${url}: ${message(error)}` };
    } finally {
      clearTimeout(timer);
    }
    if (response.status !== 200) {
      const redirect = response.status >= 300 && response.status < 400 ? ' (redirects are not followed)' : '';
      return { kind: 'failed', reason: `${url}: HTTP status ${response.status}${redirect}` };
    }
    const mediaType = (response.contentType.split(';')[0] ?? '').trim().toLowerCase();
    if (mediaType !== 'text/plain')
      return {
        kind: 'failed',
        reason: `${url}: content type '${response.contentType}' is not text/plain`,
      };
    if (response.body.length > this.#maxBodySize)
      return { kind: 'failed', reason: `${url}: policy body larger than ${this.#maxBodySize} bytes` };
    const parsed = parsePolicyBody(response.body);
    if (parsed.kind === 'invalid')
      return { kind: 'failed', reason: `${url}: invalid policy: ${parsed.reason}` };
    return parsed;
  }
}
