import { isIPv4, isIPv6 } from 'node:net';
import type { CrossProblem } from '../config/cross-check.ts';
import type { Config } from '../config/schema.ts';
import { isPasswordHash } from '../directory/password.ts';

/** `127.0.0.1:8025` → `127.0.0.1`; `[::1]:8025` → `::1`; `:8025` → `` (every address). */
export function bindingHost(binding: string): string {
  const m = /^(?:\[([^\]]*)\]|([^[\]]*)):\d+$/.exec(binding);
  return m?.[1] ?? m?.[2] ?? '';
}

/** Only this host can reach an address on loopback. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return h === '::1' || h.startsWith('::ffff:127.');
  return false;
}

/**
 * The admin API's config: hashes that can be checked, names that say who did what, and no API
 * open beyond this host that only the local token file (readable on this host alone) could use.
 */
export function adminProblems(config: Config): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const admin = config.admin;
  const names = new Set<string>();
  admin.accounts.forEach((a, i) => {
    if (names.has(a.name))
      problems.push({ path: ['admin', 'accounts', i, 'name'], message: `account ${a.name} is listed twice` });
    names.add(a.name);
    if (!isPasswordHash(a.passwordHash))
      problems.push({
        path: ['admin', 'accounts', i, 'passwordHash'],
        message: 'expected a hash from `ferrymail passwd` ($scrypt$...), not a clear-text password',
      });
  });
  const tokenNames = new Set<string>();
  const hashes = new Set<string>();
  admin.tokens.forEach((t, i) => {
    if (tokenNames.has(t.name))
      problems.push({ path: ['admin', 'tokens', i, 'name'], message: `token ${t.name} is listed twice` });
    tokenNames.add(t.name);
    if (hashes.has(t.sha256))
      problems.push({
        path: ['admin', 'tokens', i, 'sha256'],
        message: 'the same token is listed twice: events could not say which one was used',
      });
    hashes.add(t.sha256);
  });
  if (admin.accounts.length === 0 && admin.tokens.length === 0) {
    admin.listen.forEach((binding, i) => {
      if (isLoopback(bindingHost(binding))) return;
      problems.push({
        path: ['admin', 'listen', i],
        message:
          `${binding} can be reached from other hosts, but no admin account or token is configured, ` +
          'so only the local token file could log in there: add admin.accounts or admin.tokens, or listen on 127.0.0.1',
      });
    });
  }
  return problems;
}
