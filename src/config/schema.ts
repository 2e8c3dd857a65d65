import { z } from 'zod';
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

/** `host:port`, `[v6]:port` or `:port` (all addresses). */
const binding = z
  .string()
  .regex(/^(\[[0-9a-f:.]+\]|[0-9a-z.:-]*):\d{1,5}$/i, 'expected an address and port such as 127.0.0.1:2525');

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
  /** RFC 5321 §4.5.3.1.6 says 1000 octets for a text line; real mail breaks that, so the default is generous. */
  maxDataLineLength: z
    .number()
    .int()
    .min(1000)
    .default(64 * 1024),
  maxHopCount: z.number().int().positive().default(30),
  /** Delay before answering a failed AUTH (Exchange's tarpit interval). */
  tarpitInterval: duration.default(5000),
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
      mechanisms: z.array(z.enum(['PLAIN', 'LOGIN'])).default(['PLAIN', 'LOGIN']),
      /** Offer AUTH only after STARTTLS (Exchange's "require TLS" on client connectors). */
      requireTls: z.boolean().default(true),
      /** Refuse MAIL FROM until the client has authenticated. */
      required: z.boolean().default(false),
    })
    .default({ mechanisms: ['PLAIN', 'LOGIN'], requireTls: true, required: false }),
  tls: z
    .strictObject({
      mode: z.enum(['none', 'starttls', 'implicit']).default('starttls'),
      /** With STARTTLS: refuse MAIL FROM before TLS. */
      required: z.boolean().default(false),
      certificate: tlsFilesSchema.optional(),
    })
    .default({ mode: 'starttls', required: false }),
  /** What to do with a bare CR or LF inside message data (SMTP smuggling defence). */
  bareLineEndings: z.enum(['reject', 'normalize']).default('reject'),
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
    })
    .default({
      mailboxRetryInterval: 5 * 60_000,
      messageExpiration: 2 * 86_400_000,
      groupCommitWindow: 0,
      maxConcurrentMailboxDeliveries: 20,
    }),
});

export type Config = z.infer<typeof configSchema>;
