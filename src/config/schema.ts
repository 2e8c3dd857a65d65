import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { emailAuthenticationSchema } from '../agents/email-auth/config.ts';
import {
  authLockoutSchema,
  authMechanismSchema,
  clientCertificatesSchema,
  oauthSchema,
  sendAsEntrySchema,
} from './auth-schema.ts';
import { duration, size } from './units.ts';

/**
 * The whole configuration of a node: one YAML file. Defaults follow Exchange's
 * (../shared/reference/exchange-transport.md) so an Exchange administrator recognises them.
 */

const emailAddress = z
  .string()
  .regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an e-mail address such as alice@example.test')
  .transform((a) => a.toLowerCase());

const domainName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i, 'expected a domain name')
  .transform((d) => d.toLowerCase());

/**
 * `ipv4:port`, `[ipv6]:port`, `localhost:port` or `:port` (all addresses); port 0-65535, 0 = any
 * free port. Checked here, so a typo is reported at its line, not when the listener fails.
 */
const binding = z.string().superRefine((value, ctx) => {
  const m = /^(?:\[([^\]]*)\]|([^[\]]*)):(\d+)$/.exec(value);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'expected an address and port such as 127.0.0.1:2525' });
    return;
  }
  const [, bracketed, plain, port] = m;
  if (
    bracketed !== undefined
      ? !isIPv6(bracketed)
      : plain !== '' && plain!.toLowerCase() !== 'localhost' && !isIPv4(plain!)
  ) {
    const address = bracketed === undefined ? plain! : `[${bracketed}]`;
    ctx.addIssue({
      code: 'custom',
      message:
        bracketed === undefined && isIPv6(plain!)
          ? `an IPv6 address goes in brackets: [${plain}]:${port}`
          : `${address} is not an address to listen on: expected an IPv4 address such as 127.0.0.1, an IPv6 address in brackets such as [::1], localhost, or nothing (:${port}) for every address`,
    });
  }
  if (Number(port) > 65535)
    ctx.addIssue({
      code: 'custom',
      message: `port ${port} is out of range: expected 0 to 65535 (0 = any free port)`,
    });
});

/** A single IP address, a CIDR block or a range `a.b.c.d-e.f.g.h`. */
const ipRange = z.string().min(1);

export const permissionSchema = z.enum([
  'submit',
  'relay',
  'bypassSizeLimit',
  'acceptAnySender',
  'acceptRoutingHeaders',
  'bypassAntiSpam',
]);
export type Permission = z.infer<typeof permissionSchema>;

export const permissionGroupSchema = z.enum(['anonymous', 'authenticatedUsers', 'partners', 'servers']);
export type PermissionGroup = z.infer<typeof permissionGroupSchema>;

const tlsFilesSchema = z.strictObject({
  cert: z.string().describe('path to a PEM certificate chain'),
  key: z.string().describe('path to a PEM private key'),
});

const receiveLimitsSchema = z.strictObject({
  maxMessageSize: size.default(36 * 1024 * 1024),
  maxHeaderSize: size.default(256 * 1024),
  maxRecipients: z.number().int().positive().default(200),
  maxConnections: z.number().int().positive().default(5000),
  maxConnectionsPerSource: z.number().int().positive().default(20),
  connectionTimeout: duration.default(10 * 60_000),
  inactivityTimeout: duration.default(5 * 60_000),
  maxProtocolErrors: z.number().int().nonnegative().default(5),
  maxLogonFailures: z.number().int().nonnegative().default(3),
  /** RFC 5321 §4.5.3.1.4: 512 octets for a command line; kept configurable for odd clients. */
  maxCommandLength: z.number().int().min(512).default(2048),
  /**
   * Octets in one content line, without its line ending (DATA or BDAT; not BINARYMIME); longer
   * fails the message with 554 5.6.0. RFC 5321 §4.5.3.1.6 says 1000 octets for a text line;
   * real mail breaks that, so the default is generous.
   */
  maxDataLineLength: z
    .number()
    .int()
    .min(1000)
    .default(64 * 1024),
  maxHopCount: z.number().int().positive().default(30),
  /** Delay before answering a failed AUTH (Exchange's tarpit interval). */
  tarpitInterval: duration.default(5000),
  /**
   * Hold the greeting this long; a client that talks before it (a spam bot that does not wait)
   * is answered 554 5.5.0 and dropped. 0: greet at once.
   */
  greetDelay: duration.default(0),
});

export const receiveConnectorSchema = z.strictObject({
  name: z.string().min(1),
  enabled: z.boolean().default(true),
  bindings: z.array(binding).min(1),
  remoteRanges: z.array(ipRange).default(['0.0.0.0/0', '::/0']),
  fqdn: z.string().optional().describe('name in the banner and EHLO reply; defaults to node.fqdn'),
  banner: z.string().optional(),
  permissionGroups: z.partialRecord(permissionGroupSchema, z.array(permissionSchema)).default({
    anonymous: ['submit'],
  }),
  auth: z
    .strictObject({
      /** CRAM-MD5 needs mailboxes' cramMd5Secret; XOAUTH2 and OAUTHBEARER need the top-level oauth. */
      mechanisms: z.array(authMechanismSchema).default(['PLAIN', 'LOGIN']),
      /** Offer AUTH only after STARTTLS (Exchange's "require TLS" on client connectors). */
      requireTls: z.boolean().default(true),
      /** Refuse MAIL FROM until the client has authenticated. */
      required: z.boolean().default(false),
      /** Authenticated senders may use only their own addresses and sendAs rights (default: on when AUTH is required). */
      sendAs: z.boolean().optional(),
    })
    .default({ mechanisms: ['PLAIN', 'LOGIN'], requireTls: true, required: false }),
  tls: z
    .strictObject({
      mode: z.enum(['none', 'starttls', 'implicit']).default('starttls'),
      /** With STARTTLS: refuse MAIL FROM before TLS. */
      required: z.boolean().default(false),
      certificate: tlsFilesSchema.optional(),
      /** Several certificates: the one naming the client's SNI is served, else the first (after `certificate`). */
      certificates: z.array(tlsFilesSchema).optional(),
      /** Ask clients for a certificate (mutual TLS); a match grants the partners or servers group. */
      clientCertificates: clientCertificatesSchema.optional(),
    })
    .default({ mode: 'starttls', required: false }),
  /** What to do with a bare CR or LF inside message data (SMTP smuggling defence). */
  bareLineEndings: z.enum(['reject', 'normalize']).default('reject'),
  /**
   * Drop (554 5.5.0) a client that sends commands before their turn: without EHLO (so without
   * PIPELINING), or behind a command that must end a group (RFC 2920: EHLO, DATA, VRFY, EXPN,
   * TURN, QUIT, NOOP). Postfix's smtpd_forbid_unauth_pipelining.
   */
  forbidUnauthPipelining: z.boolean().default(true),
  /** Exchange's ProtocolLoggingLevel: `verbose` writes every session to the protocol log (src/logging/). */
  protocolLogging: z.enum(['none', 'verbose']).default('none'),
  limits: receiveLimitsSchema.default(receiveLimitsSchema.parse({})),
});
export type ReceiveConnectorConfig = z.infer<typeof receiveConnectorSchema>;
export type ReceiveLimits = ReceiveConnectorConfig['limits'];

export const acceptedDomainSchema = z.strictObject({
  name: domainName,
  type: z.enum(['authoritative', 'internalRelay', 'externalRelay']).default('authoritative'),
  /** The default domain signs NDRs as postmaster@<domain>. */
  default: z.boolean().default(false),
});
export type AcceptedDomainConfig = z.infer<typeof acceptedDomainSchema>;

export const mailboxSchema = z.strictObject({
  address: emailAddress,
  displayName: z.string().optional(),
  /** A hash from `ferrymail passwd`; never a clear-text password. */
  passwordHash: z.string().optional(),
  /** Further addresses (proxy addresses) that rewrite to this mailbox. */
  aliases: z.array(emailAddress).default([]),
  /** For CRAM-MD5: `{CRAM-MD5}<64 hex>` from `ferrymail passwd --cram-md5` (password-equivalent; docs/security.md). */
  cramMd5Secret: z.string().optional(),
  /** Further senders this mailbox may submit as: addresses, `@domain`, or `<>` (the null sender). */
  sendAs: z.array(sendAsEntrySchema).default([]),
});
export type MailboxConfig = z.infer<typeof mailboxSchema>;

export const aliasSchema = z.strictObject({
  address: emailAddress,
  target: emailAddress,
});

export const groupSchema = z.strictObject({
  address: emailAddress,
  displayName: z.string().optional(),
  members: z.array(emailAddress).min(1),
});
export type GroupConfig = z.infer<typeof groupSchema>;

/** `host`, `host:port`, `[v6]` or `[v6]:port`: a smart host. */
const hostAndPort = z
  .string()
  .regex(
    /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$/i,
    'expected a host name or address with an optional port, such as smtp.example.net:587 or [192.0.2.1]:25',
  );

/** `*`, `example.com` or `*.example.com`, as Exchange writes a send connector's address space. */
const addressSpacePattern = z
  .string()
  .regex(
    /^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/i,
    'expected *, a domain such as example.com, or a wildcard such as *.example.com',
  )
  .transform((d) => d.toLowerCase());

/** An address space alone (cost 1) or with its cost, `{ domain: example.com, cost: 10 }`. */
const addressSpaceSchema = z.union([
  addressSpacePattern.transform((domain) => ({ domain, cost: 1 })),
  z.strictObject({ domain: addressSpacePattern, cost: z.number().int().min(1).max(100).default(1) }),
]);
export type AddressSpace = z.infer<typeof addressSpaceSchema>;

/** True when the text has no control characters (a connector name becomes part of queue keys and log lines). */
function printable(text: string): boolean {
  for (let k = 0; k < text.length; k++) {
    const code = text.charCodeAt(k);
    if (code < 0x20 || code === 0x7f) return false;
  }
  return true;
}

export const sendConnectorSchema = z.strictObject({
  name: z.string().min(1).refine(printable, 'expected a name without control characters'),
  enabled: z.boolean().default(true),
  addressSpaces: z.array(addressSpaceSchema).min(1),
  /** DNS: each recipient domain's MX (A/AAAA fallback); smartHost: these hosts, tried in order. */
  routing: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('dns') }),
      z.strictObject({ type: z.literal('smartHost'), hosts: z.array(hostAndPort).min(1) }),
    ])
    .default({ type: 'dns' }),
  /** Port for MX hosts and for smart hosts given without one. */
  port: z.number().int().min(1).max(65535).default(25),
  auth: z
    .strictObject({
      /** basicRequireTls: AUTH only inside TLS (Exchange's BasicAuthRequireTLS). */
      mode: z.enum(['none', 'basic', 'basicRequireTls']).default('none'),
      username: z.string().optional(),
      /** Write `${ENV_VAR}`, or use passwordFile; never logged. */
      password: z.string().optional(),
      passwordFile: z.string().optional(),
    })
    .prefault({}),
  tls: z
    .strictObject({
      /** opportunistic: STARTTLS when offered; required: no TLS, no delivery; implicit: TLS from the first byte. */
      mode: z.enum(['none', 'opportunistic', 'required', 'implicit']).default('opportunistic'),
      /** none; certificate: a trusted chain; domain: a trusted chain naming the host (or tls.domain). */
      validation: z.enum(['none', 'certificate', 'domain']).default('none'),
      /** The name the certificate must carry for `validation: domain` (Exchange's TlsDomain). */
      domain: z.string().optional(),
      /** Extra trust anchors (PEM), for a private CA. */
      caFile: z.string().optional(),
    })
    .prefault({}),
  /** Name in EHLO; defaults to the node's FQDN. */
  ehloName: z.string().optional(),
  /** Messages larger than this do not use the connector (Exchange: 35 MB). */
  maxMessageSize: size.default(35 * 1024 * 1024),
  /** Use MTA-STS (RFC 8461) policies with DNS routing. */
  mtaSts: z.boolean().default(true),
  /** Exchange's ProtocolLoggingLevel: `verbose` writes every outbound session to the protocol log. */
  protocolLogging: z.enum(['none', 'verbose']).default('none'),
  limits: z
    .strictObject({
      /** Connections at once through this connector. */
      maxConnections: z.number().int().positive().default(1000),
      /** Connections at once to one destination (domain or smart host). */
      maxConnectionsPerDestination: z.number().int().positive().default(20),
      /** Transactions on one connection before it is closed (Exchange: 20). */
      maxMessagesPerConnection: z.number().int().positive().default(20),
      connectTimeout: duration.default(30_000),
      /** Reply wait for a command (RFC 5321 §4.5.3.2: 5 minutes). */
      commandTimeout: duration.default(5 * 60_000),
      /** An idle connection is kept this long for the next message to the same destination. */
      idleTimeout: duration.default(5000),
    })
    .prefault({}),
});
export type SendConnectorConfig = z.infer<typeof sendConnectorSchema>;

export const dkimKeySchema = z.strictObject({
  /** Mail whose From: is in this domain (or a subdomain, when no closer key exists) is signed. */
  domain: domainName,
  selector: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i,
      'expected a DKIM selector such as s2026',
    ),
  /** PEM private key (RSA ≥ 1024 bits or Ed25519), as written by `ferrymail dkim keygen`. */
  privateKeyFile: z.string(),
});
export type DkimKeyConfig = z.infer<typeof dkimKeySchema>;

/** An instant written as an ISO 8601 date-time with its offset, such as 2027-01-31T00:00:00Z; becomes milliseconds. */
const dateTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/, {
    message: 'expected a date-time such as 2027-01-31T00:00:00Z',
    abort: true,
  })
  .refine((t) => !Number.isNaN(Date.parse(t)), 'expected a real date, such as 2027-01-31T00:00:00Z')
  .transform((t) => Date.parse(t));

/** An IP list entry: an address, CIDR block or range, alone or with the instant it stops applying. */
const ipListEntrySchema = z.preprocess(
  (entry) => (typeof entry === 'string' ? { range: entry } : entry),
  z.strictObject({ range: ipRange, expires: dateTime.optional() }),
);
export type IpListEntry = z.infer<typeof ipListEntrySchema>;

/** Which answers of a block list count as a listing: an exact address, a bit of the last octet, or any. */
const dnsblMatchSchema = z.union([
  z.literal('any'),
  z.strictObject({
    exact: z.string().refine((a) => isIPv4(a), 'expected an IPv4 address such as 127.0.0.2'),
  }),
  z.strictObject({ bitmask: z.number().int().min(1).max(255) }),
]);
export type DnsblMatch = z.infer<typeof dnsblMatchSchema>;

const dnsblProviderSchema = z.strictObject({
  zone: domainName,
  /** Lower first: when several lists name a client, the reply is the first one's. */
  priority: z.number().int().nonnegative().default(0),
  /** Answers that count; any 127.0.0.0/8 answer when absent. */
  match: z.array(dnsblMatchSchema).min(1).default(['any']),
  /** The reply text; `{ip}`, `{zone}` and `{reason}` (the list's TXT record) are filled in. */
  rejectText: z
    .string()
    .default('Recipient not authorized, your IP {ip} has been found on the block list {zone}'),
});
export type DnsblProviderConfig = z.infer<typeof dnsblProviderSchema>;

/** Security agents of every receive connector (Exchange's anti-spam agents). Off unless configured, except the header firewall. */
export const agentsSchema = z.strictObject({
  /** Clients never refused by the block lists, and exempt from DNSBL and rate limits. Allow beats block. */
  ipAllowList: z.array(ipListEntrySchema).default([]),
  /** Clients refused at connect with 554 5.7.1. */
  ipBlockList: z.array(ipListEntrySchema).default([]),
  dnsbl: z
    .strictObject({
      providers: z.array(dnsblProviderSchema).default([]),
      /** rcpt: refuse every RCPT but postmaster (550 5.7.1), as Exchange does; connect: refuse the connection (554 5.7.1). */
      rejectAt: z.enum(['rcpt', 'connect']).default('rcpt'),
      /** A list that does not answer in time is skipped (fail open). */
      timeout: duration.default(5000),
    })
    .prefault({}),
  senderFilter: z
    .strictObject({
      /** Reverse paths refused at MAIL with 554 5.1.0. */
      blockedSenders: z.array(emailAddress).default([]),
      /** Domains refused at MAIL; `*.example.com` also covers every subdomain. */
      blockedDomains: z.array(addressSpacePattern).default([]),
      /** Refuse the null sender `<>` too (Exchange's BlankSenderBlockingEnabled); it carries NDRs, so off by default. */
      blockNullSender: z.boolean().default(false),
    })
    .prefault({}),
  rateLimits: z
    .strictObject({
      /** Messages (MAIL commands) per minute from one IP on one connector; beyond: 421 4.7.0 and disconnect. */
      messagesPerMinutePerSource: z.number().int().positive().optional(),
      /** Connections per minute from one IP on one connector; beyond: 421 4.7.0 at connect. */
      connectionsPerMinutePerSource: z.number().int().positive().optional(),
    })
    .prefault({}),
  tarpit: z
    .strictObject({
      /** After this many rejected RCPTs in a session, each further RCPT reply waits the connector's tarpitInterval. */
      afterRejectedRecipients: z.number().int().positive().optional(),
    })
    .prefault({}),
  /** An agent that fails refuses with 451 4.7.0 instead of being skipped. */
  failClosed: z.boolean().default(false),
});
export type AgentsConfig = z.infer<typeof agentsSchema>;

/** The admin API (src/admin/, docs/admin-api.md): off unless `listen` names an address. */
export const adminSchema = z.strictObject({
  /** Where the API listens, such as 127.0.0.1:8025; empty: no API. */
  listen: z.array(binding).default([]),
  /** Who may log in (POST /api/v1/login): a name and a hash from `ferrymail passwd`. */
  accounts: z
    .array(
      z.strictObject({
        name: z.string().min(1).refine(printable, 'expected a name without control characters'),
        passwordHash: z.string(),
      }),
    )
    .default([]),
  /** API tokens, stored as the SHA-256 (64 hex digits) of the token's text. */
  tokens: z
    .array(
      z.strictObject({
        name: z.string().min(1).refine(printable, 'expected a name without control characters'),
        sha256: z
          .string()
          .regex(
            /^[0-9a-f]{64}$/i,
            'expected the SHA-256 of the token as 64 hex digits (sha256sum prints it)',
          )
          .transform((h) => h.toLowerCase()),
      }),
    )
    .default([]),
  /** A login's session token is valid this long. */
  sessionLifetime: duration.default(8 * 3_600_000),
  /** Failed logins from one client IP, or for one account, within `window`; beyond: 429. */
  loginRateLimit: z
    .strictObject({
      attempts: z.number().int().positive().default(5),
      window: duration.default(15 * 60_000),
    })
    .prefault({}),
  /** Answer /health/live and /health/ready without a token (for a load balancer's probes). */
  anonymousHealth: z.boolean().default(false),
});
export type AdminConfig = z.infer<typeof adminSchema>;

export const configSchema = z.strictObject({
  node: z
    .strictObject({
      name: z.string().default('ferrymail'),
      /** The host name this node announces; defaults to the machine's host name. */
      fqdn: z.string().optional(),
      /** All state: queue, mailboxes, generated certificates. Relative to the config file's folder. */
      dataDir: z.string().default('./data'),
      /** A certificate for every TLS connector that names none; generated self-signed on first start if absent. */
      certificate: tlsFilesSchema.optional(),
      logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    })
    .default({ name: 'ferrymail', dataDir: './data', logLevel: 'info' }),
  acceptedDomains: z.array(acceptedDomainSchema).default([]),
  mailboxes: z.array(mailboxSchema).default([]),
  aliases: z.array(aliasSchema).default([]),
  groups: z.array(groupSchema).default([]),
  receiveConnectors: z.array(receiveConnectorSchema).default([]),
  queue: z
    .strictObject({
      /** Mailbox delivery retry interval (Exchange: 5 minutes). */
      mailboxRetryInterval: duration.default(5 * 60_000),
      /** A message still undelivered after this is returned with NDR 4.4.7. */
      messageExpiration: duration.default(2 * 86_400_000),
      /**
       * How long the first commit of an idle queue waits for company. 0: none; under load,
       * commits batch by themselves while the previous batch is being made durable.
       */
      groupCommitWindow: duration.default(0),
      /** Deliveries into mailboxes at once. */
      maxConcurrentMailboxDeliveries: z.number().int().positive().default(20),
      /** Outbound SMTP deliveries at once on the node (Exchange's MaxOutboundConnections). */
      maxOutboundConnections: z.number().int().positive().default(1000),
      /** Remote delivery retries (Exchange's schedule: 4 × 1 min, 6 × 5 min, then every 15 min). */
      retry: z
        .strictObject({
          glitchRetries: z.number().int().nonnegative().default(4),
          glitchInterval: duration.default(60_000),
          transientRetries: z.number().int().nonnegative().default(6),
          transientInterval: duration.default(5 * 60_000),
          messageRetryInterval: duration.default(15 * 60_000),
        })
        .prefault({}),
      /** A "delayed" notice goes to the sender when a recipient is still not delivered after this. 0: never. */
      delayNotification: duration.default(4 * 3_600_000),
      /** RET=FULL returns the whole original only up to this size; above it, the headers. */
      maxFullReturnSize: size.default(10 * 1024 * 1024),
      /** Crashes of the node while a message was being delivered before it goes to the Poison queue (Exchange: 2). */
      poisonThreshold: z.number().int().min(1).max(100).default(2),
      /**
       * Back pressure (src/receive/back-pressure.ts, docs/reliability.md): at `highWatermark`
       * recipients awaiting delivery, anonymous MAIL gets 452 4.3.1; below `lowWatermark` all is
       * accepted again. Authenticated, partner and server sessions are never refused.
       */
      backPressure: z
        .strictObject({
          enabled: z.boolean().default(true),
          highWatermark: z.number().int().positive().default(10_000),
          lowWatermark: z.number().int().nonnegative().default(2_000),
          checkInterval: duration.default(2_000),
        })
        .refine((b) => b.lowWatermark <= b.highWatermark, {
          message: 'lowWatermark must not be above highWatermark',
          path: ['lowWatermark'],
        })
        .prefault({}),
    })
    .prefault({}),
  dns: z
    .strictObject({
      /** Resolvers (`ip`, `ip:port`, `[v6]:port`); the system's when empty. */
      servers: z.array(z.string()).default([]),
      timeout: duration.default(5000),
      tries: z.number().int().positive().default(2),
      /** Answers are reused this long (src/routing/dns/cache.ts); 0: every lookup asks the server. */
      cacheTime: duration.default(60_000),
      /** Let MX and A/AAAA answers point at loopback and private addresses (labs and tests). */
      allowPrivateAddresses: z.boolean().default(false),
    })
    .prefault({}),
  sendConnectors: z.array(sendConnectorSchema).default([]),
  dkim: z
    .strictObject({
      keys: z.array(dkimKeySchema).default([]),
    })
    .prefault({}),
  agents: agentsSchema.prefault({}),
  /** OAuth 2.0 bearer tokens (JWT) for AUTH XOAUTH2 and OAUTHBEARER. */
  oauth: oauthSchema.optional(),
  /** Failed-login lockout per source IP and per account, across all connectors. */
  authLockout: authLockoutSchema,
  /** SPF, DKIM, DMARC and ARC on receipt (src/agents/email-auth/config.ts, docs/configuration.md). */
  emailAuthentication: emailAuthenticationSchema.prefault({}),
  /** Where and how long connectors with `protocolLogging: verbose` keep their protocol logs (src/logging/). */
  protocolLog: z
    .strictObject({
      /** Default `<dataDir>/logs/protocol`; relative to the config file's folder. */
      dir: z.string().optional(),
      /** A new file once the current one would grow past this (Exchange: 10 MB). */
      maxFileSize: size.default(10 * 1024 * 1024),
      /** The oldest files go once a folder (SmtpReceive, SmtpSend) holds more (Exchange: 250 MB). */
      maxDirectorySize: size.default(250 * 1024 * 1024),
      /** Files older than this are deleted, at start and hourly (Exchange: 30 days). */
      maxAge: duration.default(30 * 86_400_000),
    })
    .prefault({}),
  /** The message tracking log, `<dataDir>/tracking/tracking.db` (src/tracking/, docs/operations.md). */
  tracking: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Events older than this are removed (Exchange's MessageTrackingLogMaxAge: 30 days). */
      retention: duration.refine((ms) => ms > 0, 'must be longer than 0').default(30 * 86_400_000),
      /** Store each message's subject (Exchange's MessageTrackingLogSubjectLoggingEnabled). */
      logSubject: z.boolean().default(true),
    })
    .prefault({}),
  /** The admin API: queue viewer, message tracking, metrics, health (docs/admin-api.md). */
  admin: adminSchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
