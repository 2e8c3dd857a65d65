import { adminProblems } from '../admin/config-check.ts';
import { MAX_GROUP_DEPTH, resolveConfiguredAddresses } from '../directory/expansion.ts';
import { isPasswordHash } from '../directory/password.ts';
import { isCramMd5Secret } from '../receive/auth/cram-md5.ts';
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
  problems.push(...emptyExpansions(config));
  problems.push(...postmasterProblems(config, owner));

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
  problems.push(...sendConnectorProblems(config));
  problems.push(...certificateGroupProblems(config));
  problems.push(...authProblems(config));
  problems.push(...agentProblems(config));
  problems.push(...adminProblems(config));
  return problems;
}

/** IP list entries must be addresses, CIDR blocks or ranges; a block list must not be named twice. */
function agentProblems(config: Config): CrossProblem[] {
  const problems: CrossProblem[] = [];
  for (const list of ['ipAllowList', 'ipBlockList'] as const) {
    config.agents[list].forEach((entry, i) => {
      if (parseIpRange(entry.range)) return;
      problems.push({
        // The entry (`- 192.0.2.0/24`, or `- range: …` with expires): both start on the range's line.
        path: ['agents', list, i],
        message: 'expected an IP address, a CIDR block or a range first-last',
      });
    });
  }
  const zones = new Set<string>();
  config.agents.dnsbl.providers.forEach((p, i) => {
    if (zones.has(p.zone))
      problems.push({
        path: ['agents', 'dnsbl', 'providers', i, 'zone'],
        message: `block list ${p.zone} is listed twice`,
      });
    zones.add(p.zone);
  });
  return problems;
}

/**
 * `partners` and `servers` (Exchange's Partners and ExchangeServers) are the groups a client joins
 * by presenting a client certificate that `tls.clientCertificates.map` maps to the group: rights
 * granted to a group no map entry of the connector leads to would silently never apply, so the
 * config is refused instead.
 */
function certificateGroupProblems(config: Config): CrossProblem[] {
  const problems: CrossProblem[] = [];
  config.receiveConnectors.forEach((c, i) => {
    const clients = c.tls.mode === 'none' ? undefined : c.tls.clientCertificates;
    for (const group of ['partners', 'servers'] as const) {
      if ((c.permissionGroups[group] ?? []).length === 0) continue;
      if (clients?.map.some((m) => m.group === group)) continue;
      problems.push({
        path: ['receiveConnectors', i, 'permissionGroups', group],
        message:
          `${group} is granted only by a client certificate (mutual TLS) that tls.clientCertificates.map ` +
          `maps to ${group}, and this connector has no such entry, so these rights would never apply; ` +
          'add one, or for trusted servers use a dedicated connector with their remoteRanges and ' +
          'anonymous: [submit, relay]',
      });
    }
    if (c.tls.clientCertificates && c.tls.mode === 'none') {
      problems.push({
        path: ['receiveConnectors', i, 'tls', 'clientCertificates'],
        message: 'client certificates need TLS, but tls.mode is none',
      });
    }
  });
  return problems;
}

/** AUTH mechanisms need what they check against: OAuth settings for tokens, well-formed CRAM-MD5 secrets. */
function authProblems(config: Config): CrossProblem[] {
  const problems: CrossProblem[] = [];
  config.receiveConnectors.forEach((c, i) => {
    c.auth.mechanisms.forEach((m, j) => {
      if ((m === 'XOAUTH2' || m === 'OAUTHBEARER') && config.oauth === undefined) {
        problems.push({
          path: ['receiveConnectors', i, 'auth', 'mechanisms', j],
          message: `${m} checks OAuth tokens, which needs the top-level oauth section (issuer, audience, jwksFile or jwksUrl)`,
        });
      }
    });
  });
  config.mailboxes.forEach((m, i) => {
    if (m.cramMd5Secret !== undefined && !isCramMd5Secret(m.cramMd5Secret)) {
      problems.push({
        path: ['mailboxes', i, 'cramMd5Secret'],
        message: 'expected a secret from `ferrymail passwd --cram-md5` ({CRAM-MD5} and 64 hex digits)',
      });
    }
  });
  return problems;
}

function sendConnectorProblems(config: Config): CrossProblem[] {
  const problems: CrossProblem[] = [];
  const names = new Set<string>();
  config.sendConnectors.forEach((c, i) => {
    const at = (...path: PropertyKey[]) => ['sendConnectors', i, ...path];
    if (names.has(c.name))
      problems.push({ path: at('name'), message: `connector name ${c.name} is used twice` });
    names.add(c.name);
    const spaces = new Set<string>();
    c.addressSpaces.forEach((a, j) => {
      if (spaces.has(a.domain))
        problems.push({ path: at('addressSpaces', j), message: `address space ${a.domain} is listed twice` });
      spaces.add(a.domain);
    });
    if (c.auth.mode !== 'none') {
      if (!c.auth.username)
        problems.push({ path: at('auth', 'username'), message: `auth mode ${c.auth.mode} needs a username` });
      if ((c.auth.password === undefined) === (c.auth.passwordFile === undefined))
        problems.push({
          path: at('auth', 'password'),
          message: `auth mode ${c.auth.mode} needs exactly one of password (e.g. \${SMARTHOST_PASSWORD}) or passwordFile`,
        });
      if (c.tls.mode === 'none' && c.auth.mode === 'basicRequireTls')
        problems.push({
          path: at('auth', 'mode'),
          message: 'basicRequireTls needs TLS, but tls.mode is none',
        });
    } else if (
      c.auth.username !== undefined ||
      c.auth.password !== undefined ||
      c.auth.passwordFile !== undefined
    ) {
      problems.push({
        path: at('auth', 'mode'),
        message: 'credentials are given but auth.mode is none (use basic or basicRequireTls)',
      });
    }
    if (c.tls.mode === 'none' && c.tls.validation !== 'none')
      problems.push({
        path: at('tls', 'validation'),
        message: 'certificate validation needs TLS, but tls.mode is none',
      });
    if (c.tls.domain !== undefined && c.tls.validation !== 'domain')
      problems.push({
        path: at('tls', 'domain'),
        message: 'tls.domain is only used with validation: domain',
      });
  });
  const keys = new Set<string>();
  config.dkim.keys.forEach((k, i) => {
    if (keys.has(k.domain))
      problems.push({
        path: ['dkim', 'keys', i, 'domain'],
        message: `domain ${k.domain} has two DKIM keys; one signs`,
      });
    keys.add(k.domain);
  });
  return problems;
}

/**
 * An alias or group that only leads back to itself would accept mail at RCPT and deliver it to
 * nobody: `a → b → a`, or groups whose members are only each other.
 */
function emptyExpansions(config: Config): CrossProblem[] {
  const resolutions = resolveConfiguredAddresses(config);
  const aliases = new Map(config.aliases.map((a) => [a.address, a.target]));
  const problems: CrossProblem[] = [];
  config.aliases.forEach((a, i) => {
    if (resolutions.get(a.address)?.kind !== 'unknown') return;
    const chain = [a.address];
    for (
      let next = aliases.get(a.address);
      next !== undefined && !chain.includes(next);
      next = aliases.get(next)
    )
      chain.push(next);
    const last = aliases.get(chain.at(-1)!);
    const loop = last === undefined ? chain.join(' → ') : [...chain, last].join(' → ');
    problems.push({
      path: ['aliases', i, 'target'],
      message: `alias that reaches no mailbox or outside address: ${loop}`,
    });
  });
  config.groups.forEach((g, i) => {
    if (resolutions.get(g.address)?.kind === 'unknown')
      problems.push({
        path: ['groups', i, 'members'],
        message: `group ${g.address} reaches no mailbox or outside address: its members only lead back to it, or nest more than ${MAX_GROUP_DEPTH} deep`,
      });
  });
  return problems;
}

/**
 * RFC 5321 §4.5.1: postmaster@ must work for every accepted domain. The directory sends an
 * unconfigured one to the default domain's postmaster, else to the first mailbox; with neither,
 * there is nobody to send it to.
 */
function postmasterProblems(config: Config, owner: ReadonlyMap<string, string>): CrossProblem[] {
  const index = Math.max(
    config.acceptedDomains.findIndex((d) => d.default),
    0,
  );
  const domain = config.acceptedDomains[index];
  if (domain?.type !== 'authoritative') return [];
  const postmaster = `postmaster@${domain.name}`;
  if (owner.has(postmaster) || config.mailboxes.length > 0) return [];
  return [
    {
      path: ['acceptedDomains', index, 'name'],
      message: `${postmaster} must reach someone: add a mailbox, or an alias ${postmaster} to an outside address`,
    },
  ];
}
