import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { waitForListener } from './wait.ts';

/** The installed Postfix version; `-d` reads the built-in default, so no /etc/postfix/main.cf is needed. */
export function postfixVersion(): string {
  return execFileSync('postconf', ['-d', '-h', 'mail_version']).toString().trim();
}

/** Installs Debian's postfix (which ships smtp-source) when it is missing, without configuring a system MTA. */
export function ensurePostfix(): void {
  const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  if (has('smtp-source') && has('postfix')) return;
  console.error('installing postfix (for smtp-source and the comparison)…');
  const run = (cmd: string) =>
    execFileSync('sh', ['-c', cmd], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  run('echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections');
  run('apt-get update -qq && apt-get install -y -qq postfix');
  // The package must not leave a system MTA on port 25 behind: only the private instance runs.
  spawnSync('postfix', ['stop'], { stdio: 'ignore' });
}

function id(flag: '-u' | '-g', user: string): number {
  return Number(execFileSync('id', [flag, user]).toString().trim());
}

/** What the relay instance forwards to: everything goes to this address's smtpd (smtp-sink in the bench). */
export interface RelayOptions {
  relayTo: { host: string; port: number };
  /** main.cf lines appended last (they override the ones above: Postfix takes the last value). */
  mainCf?: string;
}

export interface PostfixInstance {
  /** Its maillog_file, for a failing round's diagnostics. */
  log: string;
  /** The master process's pid (every other Postfix process of the instance descends from it). */
  masterPid(): number;
  stop(): void;
}

/**
 * A private Postfix instance (its own config and queue folders) listening on 127.0.0.1:<port>,
 * with Postfix's default durability. Without options it delivers bench.test to Maildir through
 * virtual(8); with `relayTo` it relays everything from 127.0.0.0/8 to that host, as a smart-host
 * relay does.
 */
export function startPostfixInstance(
  root: string,
  port: number,
  options: RelayOptions,
): Promise<PostfixInstance>;
// Last, so ReturnType<typeof startPostfixInstance> (bench/inbound.ts) is the Maildir instance.
export function startPostfixInstance(
  root: string,
  port: number,
): Promise<PostfixInstance & { maildir: string }>;
export async function startPostfixInstance(
  root: string,
  port: number,
  options?: RelayOptions,
): Promise<PostfixInstance & { maildir?: string }> {
  const etc = join(root, 'etc');
  const queue = join(root, 'queue');
  const data = join(root, 'data');
  const vmail = join(root, 'vmail');
  for (const d of [etc, queue, data, vmail]) mkdirSync(d, { recursive: true });
  // Postfix's own users must be able to reach their folders.
  chmodSync(dirname(root), 0o755);
  chmodSync(root, 0o755);
  const uid = id('-u', 'nobody');
  const gid = id('-g', 'nobody');
  chownSync(vmail, uid, gid);
  chownSync(data, id('-u', 'postfix'), id('-g', 'postfix'));
  // Delivery: Maildir through virtual(8), or every recipient to the relay host.
  const delivery = options
    ? `relay_domains =
relayhost = [${options.relayTo.host}]:${options.relayTo.port}
# Match Ferrymail's send connector: up to 20 connections to the destination
# (maxConnectionsPerDestination 20; these are Postfix's defaults, spelled out),
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
# kept open and reused between messages (Ferrymail reuses them, up to maxMessagesPerConnection 20).
# On-demand caching (the default) only starts once a backlog builds; name the relay host so it is
# cached from the first message.
smtp_connection_cache_on_demand = yes
smtp_connection_cache_destinations = $relayhost
smtp_connection_reuse_count_limit = 20
# No TLS: the sink offers none (Ferrymail's opportunistic STARTTLS finds none either).
smtp_tls_security_level = none
`
    : `virtual_mailbox_domains = bench.test
virtual_mailbox_base = ${vmail}
virtual_mailbox_maps = texthash:${etc}/vmailbox
virtual_uid_maps = static:${uid}
virtual_gid_maps = static:${gid}
virtual_minimum_uid = 1
`;
  // Run as root, `postfix -c <dir>` needs no entry in the system main.cf
  // (alternate_config_directories binds only the set-gid commands, which this bench does not use).
  // Settings in mainCf replace the ones below (dropped here, or postconf warns about each).
  const overridden = new Set(
    (options?.mainCf ?? '')
      .split('\n')
      .map((line) => /^\s*([a-z0-9_]+)\s*=/.exec(line)?.[1])
      .filter(Boolean),
  );
  const keep = (text: string) =>
    text
      .split('\n')
      .filter((line) => !overridden.has(/^\s*([a-z0-9_]+)\s*=/.exec(line)?.[1]))
      .join('\n');
  writeFileSync(
    join(etc, 'main.cf'),
    keep(`compatibility_level = 3.6
queue_directory = ${queue}
data_directory = ${data}
mail_owner = postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.postfix.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
${delivery}maillog_file = ${root}/maillog
maillog_file_prefixes = ${root}
alias_maps =
alias_database =
smtpd_banner = $myhostname ESMTP
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
`) + (options?.mainCf ?? ''),
  );
  if (!options) writeFileSync(join(etc, 'vmailbox'), 'user@bench.test bench.test/user/\n');
  execFileSync('cp', ['/etc/postfix/master.cf', join(etc, 'master.cf')]);
  const postconf = (...args: string[]) =>
    execFileSync('postconf', ['-c', etc, ...args], { stdio: 'inherit' });
  postconf('-MX', 'smtp/inet');
  postconf('-M', `127.0.0.1:${port}/inet=127.0.0.1:${port} inet n - n - - smtpd`);
  postconf('-F', '*/*/chroot=n');
  execFileSync('postfix', ['-c', etc, 'check'], { stdio: 'inherit' });
  const stop = () => {
    spawnSync('postfix', ['-c', etc, 'stop'], { stdio: 'ignore' });
  };
  execFileSync('postfix', ['-c', etc, 'start'], { stdio: 'inherit' });
  try {
    await waitForListener(port);
  } catch (error) {
    stop();
    throw error;
  }
  const log = join(root, 'maillog');
  const masterPid = () => Number(readFileSync(join(queue, 'pid', 'master.pid'), 'latin1').trim());
  return options
    ? { log, masterPid, stop }
    : { log, masterPid, maildir: join(vmail, 'bench.test', 'user'), stop };
}
