import type { Clock } from '../../core/clock.ts';
import type { DnsResolver, DnsResult } from './resolver.ts';

/**
 * A cache in front of a DnsResolver. Node's resolver (c-ares) keeps none, so without this every
 * message asked the same questions again (SPF, DMARC and MX lookups for the same domains), and a
 * slow DNS server slowed every session. Two things:
 *
 * - Identical lookups in flight share one query.
 * - Answers (records, NODATA, NXDOMAIN) are kept for `cacheTime`, at most; temporary failures
 *   are never kept, so the next lookup asks again. Node does not give the TTL of MX and TXT
 *   answers, so the cache cannot honour each record's TTL: it keeps every answer for the same
 *   short time instead, which bounds how stale an answer can be (a zone change is seen within
 *   `cacheTime`) whatever the record's TTL.
 */

export interface DnsCacheOptions {
  readonly clock: Clock;
  /** How long an answer is kept, ms; 0 turns caching off (lookups in flight are still shared). */
  readonly cacheTime: number;
  /** Entries kept at most; the oldest go first. */
  readonly maxEntries?: number;
}

interface Entry {
  readonly expires: number;
  readonly result: DnsResult<unknown>;
}

export function cachingResolver(inner: DnsResolver, options: DnsCacheOptions): DnsResolver {
  const maxEntries = options.maxEntries ?? 10_000;
  const answers = new Map<string, Entry>();
  const inflight = new Map<string, Promise<DnsResult<unknown>>>();

  function cached<T>(type: string, name: string, ask: () => Promise<DnsResult<T>>): Promise<DnsResult<T>> {
    const key = `${type} ${name.toLowerCase()}`;
    const now = options.clock.now();
    const hit = answers.get(key);
    if (hit && hit.expires > now) return Promise.resolve(hit.result as DnsResult<T>);
    if (hit) answers.delete(key);
    const running = inflight.get(key);
    if (running) return running as Promise<DnsResult<T>>;
    const query = ask().then((result) => {
      if (result.kind !== 'temporary' && options.cacheTime > 0) {
        answers.set(key, { expires: options.clock.now() + options.cacheTime, result });
        if (answers.size > maxEntries) answers.delete(answers.keys().next().value!);
      }
      return result;
    });
    // Whatever the outcome, the next lookup asks anew (a rejection is never shared later).
    void query.finally(() => inflight.delete(key)).catch(() => undefined);
    inflight.set(key, query);
    return query;
  }

  return {
    mx: (domain) => cached('MX', domain, () => inner.mx(domain)),
    a: (host) => cached('A', host, () => inner.a(host)),
    aaaa: (host) => cached('AAAA', host, () => inner.aaaa(host)),
    txt: (name) => cached('TXT', name, () => inner.txt(name)),
    tlsa: (name) => cached('TLSA', name, () => inner.tlsa(name)),
    cancel: () => {
      inner.cancel();
      inflight.clear();
    },
  };
}
