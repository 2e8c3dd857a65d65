import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDirectory } from '../../core/fsync.ts';
import { MAX_POLICY_AGE_SECONDS, type MtaStsPolicy } from './policy.ts';

/**
 * The policy cache on disk: one JSON file `{ "version": 1, "policies": { domain: policy } }`,
 * replaced whole on every change (tmp file, fsync, rename, fsync folder), so a crash leaves the
 * old file or the new one, never a mix. An unreadable file or entry is dropped, not fatal: the
 * worst case is refetching policies, which RFC 8461 expects of a sender without a cache.
 */

const FORMAT_VERSION = 1;

function isPolicy(value: unknown): value is MtaStsPolicy {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    (p.mode === 'enforce' || p.mode === 'testing' || p.mode === 'none') &&
    Array.isArray(p.mx) &&
    p.mx.every((m) => typeof m === 'string') &&
    typeof p.maxAge === 'number' &&
    Number.isInteger(p.maxAge) &&
    p.maxAge >= 0 &&
    p.maxAge <= MAX_POLICY_AGE_SECONDS &&
    typeof p.id === 'string' &&
    p.id !== '' &&
    typeof p.fetchedAt === 'number' &&
    Number.isFinite(p.fetchedAt)
  );
}

/** Reads the cache; a missing, damaged or foreign file gives an empty cache. */
export async function readPolicyCache(file: string): Promise<Map<string, MtaStsPolicy>> {
  const policies = new Map<string, MtaStsPolicy>();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return policies;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return policies;
  }
  const root = parsed as { version?: unknown; policies?: unknown } | null;
  if (root?.version !== FORMAT_VERSION || typeof root.policies !== 'object' || root.policies === null)
    return policies;
  for (const [domain, policy] of Object.entries(root.policies)) {
    if (isPolicy(policy)) {
      policies.set(domain, {
        mode: policy.mode,
        mx: [...policy.mx],
        maxAge: policy.maxAge,
        id: policy.id,
        fetchedAt: policy.fetchedAt,
      });
    }
  }
  return policies;
}

/** Replaces the cache file atomically and durably. */
export async function writePolicyCache(file: string, policies: Map<string, MtaStsPolicy>): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const body = `${JSON.stringify({ version: FORMAT_VERSION, policies: Object.fromEntries(policies) }, null, 1)}\n`;
  try {
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(body, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await fsyncDirectory(dir);
}
