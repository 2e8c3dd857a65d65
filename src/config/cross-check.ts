import { isPasswordHash } from '../directory/password.ts';
import { parseIpRange } from '../receive/ip-ranges.ts';
import type { Config } from './schema.ts';

export interface CrossProblem {
  readonly path: ReadonlyArray<PropertyKey>;
  readonly message: string;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

/** Checks that span several fields: names unique, addresses in accepted domains, targets that exist. */
export function crossCheck(config: Config): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const domains = new Map(config.acceptedDomains.map((d) => [d.name, d]));

  const seenDomains = new Set<string>();
  config.acceptedDomains.forEach((d, i) => {
    if (seenDomains.has(d.name))
      problems.push({ path: ['acceptedDomains', i, 'name'], message: `domain ${d.name} is listed twice` });
    seenDomains.add(d.name);
  });
  if (config.acceptedDomains.filter((d) => d.default).length > 1) {
    const i = config.acceptedDomains.findLastIndex((d) => d.default);
    problems.push({
      path: ['acceptedDomains', i, 'default'],
      message: 'only one accepted domain can be the default',
    });
  }

  const owner = new Map<string, string>();
  const claim = (address: string, path: ReadonlyArray<PropertyKey>, what: string) => {
    const previous = owner.get(address);
    if (previous) problems.push({ path, message: `${address} is already used by ${previous}` });
    else owner.set(address, what);
    const domain = domains.get(domainOf(address));
    if (!domain) {
      problems.push({
        path,
        message: `${address} is not in an accepted domain (add ${domainOf(address)} to acceptedDomains)`,
      });
    }
  };
  config.mailboxes.forEach((m, i) => {
    claim(m.address, ['mailboxes', i, 'address'], `mailbox ${m.address}`);
    m.aliases.forEach((a, j) => claim(a, ['mailboxes', i, 'aliases', j], `mailbox ${m.address}`));
    if (m.passwordHash !== undefined && !isPasswordHash(m.passwordHash)) {
      problems.push({
        path: ['mailboxes', i, 'passwordHash'],
        message: 'expected a hash from `ferrymail passwd` ($scrypt$...), not a clear-text password',
      });
    }
  });
  config.aliases.forEach((a, i) => claim(a.address, ['aliases', i, 'address'], `alias ${a.address}`));
  config.groups.forEach((g, i) => claim(g.address, ['groups', i, 'address'], `group ${g.address}`));

  const mustExist = (address: string, path: ReadonlyArray<PropertyKey>) => {
    const domain = domains.get(domainOf(address));
    if (domain?.type === 'authoritative' && !owner.has(address)) {
      problems.push({ path, message: `${address} is not a mailbox, alias or group` });
    }
  };
  config.aliases.forEach((a, i) => mustExist(a.target, ['aliases', i, 'target']));
  config.groups.forEach((g, i) => g.members.forEach((m, j) => mustExist(m, ['groups', i, 'members', j])));

  const names = new Set<string>();
  const bindings = new Map<string, string>();
  config.receiveConnectors.forEach((c, i) => {
    if (names.has(c.name))
      problems.push({
        path: ['receiveConnectors', i, 'name'],
        message: `connector name ${c.name} is used twice`,
      });
    names.add(c.name);
    c.remoteRanges.forEach((r, j) => {
      if (!parseIpRange(r)) {
        problems.push({
          path: ['receiveConnectors', i, 'remoteRanges', j],
          message: 'expected an IP address, a CIDR block or a range first-last',
        });
      }
    });
    const ranges = [...c.remoteRanges].sort().join(',');
    c.bindings.forEach((b, j) => {
      const key = `${b}|${ranges}`;
      const other = bindings.get(key);
      if (other && !b.endsWith(':0')) {
        problems.push({
          path: ['receiveConnectors', i, 'bindings', j],
          message: `connector ${other} already listens on ${b} for the same remote ranges`,
        });
      }
      bindings.set(key, c.name);
    });
    if (c.tls.mode === 'none' && c.tls.required) {
      problems.push({
        path: ['receiveConnectors', i, 'tls', 'required'],
        message: 'TLS cannot be required when tls.mode is none',
      });
    }
  });
  return problems;
}
