import { PassThrough, type Readable } from 'node:stream';
import type { SendConnectorConfig } from '../../config/schema.ts';
import type { Logger } from '../../core/logger.ts';
import type { SessionProtocolLog } from '../../logging/session-log.ts';
import { type EventBus, nullEventBus } from '../../observe/events.ts';
import type { DeliveryJob, NextHop, QueuedRecipient } from '../../queue/types.ts';
import type { DnsResolver } from '../../routing/dns/resolver.ts';
import { domainOf } from '../../routing/router.ts';
import type { SendConnectorSelector } from '../../routing/send-connectors.ts';
import type { AttemptResult, DeliveryAgent } from '../types.ts';
import {
  formatReply,
  type OutboundEnvelope,
  openSmtpConnection,
  type SmtpClientConnection,
  SmtpClientError,
  type SmtpClientOptions,
  type SmtpReply,
} from './client/index.ts';
import { ConnectionPool } from './connection-pool.ts';
import { type Destination, findDestinations } from './destinations.ts';

/** What a policy (MTA-STS) says about one domain's MX delivery. */
export interface MxPolicy {
  /** MX hosts that may be used; the others are left out (enforce) or only reported (testing). */
  readonly allowed: ReadonlyArray<string>;
  /** TLS with a certificate valid for the MX host name is required. */
  readonly requireTls: boolean;
  readonly report: string;
}

export interface SmtpDeliveryAgentOptions {
  readonly selector: SendConnectorSelector;
  readonly resolver: DnsResolver;
  readonly allowPrivateAddresses: boolean;
  readonly nodeFqdn: string;
  readonly logger: Logger;
  readonly maxOutboundConnections: number;
  /** A connector's smart-host password, read from config or its file at start. */
  readonly passwordFor: (connector: SendConnectorConfig) => string | undefined;
  /** Extra trust anchors for a connector (its tls.caFile), read at start. */
  readonly caFor: (connector: SendConnectorConfig) => Buffer | undefined;
  /** A DKIM-Signature header to put in front of the message, or undefined. */
  readonly sign?: (openBody: () => Readable) => Promise<Buffer | undefined>;
  /** MTA-STS for DNS-routed domains; undefined when the domain has no policy in force. */
  readonly mxPolicy?: (domain: string, mxHosts: ReadonlyArray<string>) => Promise<MxPolicy | undefined>;
  /** For tests: where to connect instead of the real port. */
  readonly connect?: (options: SmtpClientOptions) => Promise<SmtpClientConnection>;
  /**
   * A protocol log session for a new connection of this connector, or undefined (its
   * protocolLogging is none). `credentials`: kept out of every line, whatever it carries.
   */
  readonly protocolLog?: (
    connector: SendConnectorConfig,
    credentials: { username: string; password: string } | undefined,
  ) => SessionProtocolLog | undefined;
  /** Outbound TLS handshakes (protocol events), per send connector. */
  readonly events?: EventBus;
}

/** One reply for every recipient of the job. */
function all(job: DeliveryJob, result: AttemptResult): Map<number, AttemptResult> {
  return new Map(job.recipients.map((r) => [r.index, result]));
}

function fromReply(reply: SmtpReply, where: string): AttemptResult {
  const response = `${formatReply(reply)} (${where})`.slice(0, 1000);
  if (reply.code >= 200 && reply.code < 300) return { kind: 'delivered', response };
  if (reply.code >= 500) return { kind: 'permanent', response };
  return { kind: 'transient', response };
}

function fromError(error: unknown, where: string): AttemptResult {
  if (error instanceof SmtpClientError) {
    const code = error.permanent ? 550 : 451;
    const detail = error.reply ? formatReply(error.reply) : `${code} ${error.status} ${error.message}`;
    const response = `${detail} (${where}, during ${error.stage})`.slice(0, 1000);
    return { kind: error.permanent ? 'permanent' : 'transient', response };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { kind: 'transient', response: `451 4.4.0 ${message} (${where})`.slice(0, 1000) };
}

function envelopeOf(job: DeliveryJob, size: number): OutboundEnvelope {
  const { message } = job;
  return {
    sender: message.sender,
    recipients: job.recipients.map((r: QueuedRecipient) => ({
      address: r.address,
      ...(r.notify === undefined ? {} : { notify: r.notify }),
      ...(r.orcpt === undefined ? {} : { orcpt: r.orcpt }),
    })),
    size,
    bodyType: message.bodyType,
    smtpUtf8: message.smtpUtf8,
    dsn: message.dsn,
  };
}

/** The stored body, with a header (the DKIM signature) in front when there is one. */
function withPrefix(prefix: Buffer | undefined, openBody: () => Readable): () => Readable {
  if (!prefix) return openBody;
  return () => {
    const out = new PassThrough();
    out.write(prefix);
    const body = openBody();
    body.on('error', (error) => out.destroy(error));
    body.pipe(out);
    return out;
  };
}

/**
 * Delivers remote recipients through their send connector: to the domain's MX hosts (in
 * preference order, each address in turn) or to the connector's smart hosts (in order, for
 * failover), with the connector's TLS and authentication policy, reusing connections per
 * destination within the connector's and the node's limits.
 *
 * Results per recipient: 2xx delivered, 4xx and connection failures transient (the retry
 * schedule applies), 5xx permanent (an NDR follows). When a host fails before the transaction
 * (refused, timed out, TLS policy not met, 4xx/5xx greeting), the next host is tried; once the
 * transaction has begun, its replies are the answer.
 */
export class SmtpDeliveryAgent implements DeliveryAgent {
  readonly hopType = 'smtp' as const;
  readonly #o: SmtpDeliveryAgentOptions;
  readonly #pool: ConnectionPool;
  /** `host[address]:port` of each open connection, for responses and logs. */
  readonly #peers = new WeakMap<SmtpClientConnection, string>();

  constructor(options: SmtpDeliveryAgentOptions) {
    this.#o = options;
    this.#pool = new ConnectionPool({ maxTotal: options.maxOutboundConnections });
  }

  get pool(): ConnectionPool {
    return this.#pool;
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  /**
   * A queue's jobs beyond its send connector's maxConnectionsPerDestination would only wait in
   * the pool for a connection (each holding a scheduler slot), so the scheduler runs no more.
   * A queue is per domain whatever the connector, the pool's destination per connector and
   * domain: with recipients of one domain split over connectors (by size) this is the stricter.
   * A hop no connector serves fails without a connection, so it needs no limit.
   */
  maxConcurrentJobs(hop: NextHop): number {
    if (hop.type !== 'smtp') return Number.POSITIVE_INFINITY;
    const connector =
      (hop.connector === undefined ? undefined : this.#o.selector.byName(hop.connector)) ??
      this.#selectAny(hop.domain);
    return connector?.limits.maxConnectionsPerDestination ?? Number.POSITIVE_INFINITY;
  }

  #selectAny(domain: string): SendConnectorConfig | undefined {
    const choice = this.#o.selector.select(domain, 0);
    return choice.kind === 'connector' ? choice.connector : undefined;
  }

  async deliver(job: DeliveryJob, openBody: () => Readable): Promise<ReadonlyMap<number, AttemptResult>> {
    const first = job.recipients[0];
    if (first?.nextHop.type !== 'smtp') return new Map();
    const hop = first.nextHop;
    const recipientDomain = domainOf(first.address);

    const signature = this.#o.sign ? await this.#o.sign(openBody) : undefined;
    const size = job.message.size + (signature?.length ?? 0);
    const connector = this.#connectorFor(hop.connector, recipientDomain, size);
    if ('result' in connector) return all(job, connector.result);

    const key = `${connector.name}\t${hop.domain}`;
    const limits = {
      connector: connector.name,
      maxPerConnector: connector.limits.maxConnections,
      maxPerDestination: connector.limits.maxConnectionsPerDestination,
      maxMessagesPerConnection: connector.limits.maxMessagesPerConnection,
      idleTimeout: connector.limits.idleTimeout,
    };
    const envelope = envelopeOf(job, size);
    const body = withPrefix(signature, openBody);

    const lease = await this.#pool.lease(key, limits);
    let connection: SmtpClientConnection | undefined;
    try {
      if (lease.reused) {
        const reused = await this.#sendOn(lease.reused, job, envelope, body);
        // A connection that went stale while parked fails before the transaction: open a new one.
        if (reused) {
          connection = lease.reused;
          return reused;
        }
        lease.reused.close();
      }
      const opened = await this.#open(connector, recipientDomain, job);
      if ('results' in opened) return opened.results;
      connection = opened.connection;
      return (await this.#sendOn(connection, job, envelope, body, true)) ?? new Map();
    } finally {
      lease.release(connection);
    }
  }

  #connectorFor(
    name: string | undefined,
    domain: string,
    size: number,
  ): SendConnectorConfig | { result: AttemptResult } {
    const named = name === undefined ? undefined : this.#o.selector.byName(name);
    if (named && named.maxMessageSize >= size) return named;
    const choice = this.#o.selector.select(domain, size);
    if (choice.kind === 'connector') return choice.connector;
    if (choice.kind === 'tooBig') {
      return {
        result: {
          kind: 'permanent',
          response: `554 5.3.4 Message too big for the send connectors to ${domain} (${size} bytes, the limit is ${choice.largest})`,
        },
      };
    }
    return {
      result: { kind: 'transient', response: `451 4.4.0 No send connector serves ${domain} any more` },
    };
  }

  /** Runs the transaction; undefined when the connection failed before it could begin. */
  async #sendOn(
    connection: SmtpClientConnection,
    job: DeliveryJob,
    envelope: OutboundEnvelope,
    body: () => Readable,
    fresh = false,
  ): Promise<Map<number, AttemptResult> | undefined> {
    const where = this.#peers.get(connection) ?? 'unknown peer';
    let outcome: Awaited<ReturnType<SmtpClientConnection['send']>>;
    try {
      outcome = await connection.send(envelope, body);
    } catch (error) {
      if (!fresh && error instanceof SmtpClientError && error.stage === 'mail') return undefined;
      return all(job, fromError(error, where));
    }
    const results = new Map<number, AttemptResult>();
    job.recipients.forEach((recipient, i) => {
      const rcpt = outcome.recipients[i] ?? outcome.mail;
      if (rcpt.code >= 300 || !outcome.data) results.set(recipient.index, fromReply(rcpt, where));
      else results.set(recipient.index, fromReply(outcome.data, where));
    });
    this.#o.logger.debug({ queueId: job.message.id, peer: where }, 'smtp transaction done');
    return results;
  }

  async #open(
    connector: SendConnectorConfig,
    recipientDomain: string,
    job: DeliveryJob,
  ): Promise<{ connection: SmtpClientConnection } | { results: Map<number, AttemptResult> }> {
    const found = await findDestinations(connector, recipientDomain, {
      resolver: this.#o.resolver,
      allowPrivateAddresses: this.#o.allowPrivateAddresses,
    });
    if (found.kind !== 'hosts') return { results: all(job, { kind: found.kind, response: found.response }) };

    let destinations: ReadonlyArray<Destination> = found.destinations;
    let policy: MxPolicy | undefined;
    if (connector.routing.type === 'dns' && connector.mtaSts && this.#o.mxPolicy) {
      policy = await this.#o.mxPolicy(
        recipientDomain,
        destinations.map((d) => d.host),
      );
      if (policy) {
        const allowed = new Set(policy.allowed.map((h) => h.toLowerCase()));
        destinations = destinations.filter((d) => allowed.has(d.host.toLowerCase()));
        if (destinations.length === 0) {
          return {
            results: all(job, {
              kind: 'transient',
              response: `451 4.7.5 MTA-STS policy of ${recipientDomain} allows none of its MX hosts (${policy.report})`,
            }),
          };
        }
      }
    }

    let last: AttemptResult | undefined;
    const connect = this.#o.connect ?? openSmtpConnection;
    for (const destination of destinations) {
      for (const address of destination.addresses) {
        const where = `${destination.host}[${address}]:${destination.port}`;
        try {
          const connection = await connect(this.#clientOptions(connector, destination, address, policy));
          this.#peers.set(connection, where);
          const { secure } = connection;
          if (secure.tls) this.#tlsEvent(connector, 'established', secure.protocol);
          return { connection };
        } catch (error) {
          if (error instanceof SmtpClientError && (error.stage === 'tls' || error.stage === 'starttls'))
            this.#tlsEvent(connector, 'failed');
          last = fromError(error, where);
          this.#o.logger.info(
            { connector: connector.name, peer: where, reason: last.response },
            'outbound connection failed; trying the next host',
          );
        }
      }
    }
    return {
      results: all(job, last ?? { kind: 'transient', response: '451 4.4.1 No host could be reached' }),
    };
  }

  #tlsEvent(connector: SendConnectorConfig, outcome: 'established' | 'failed', protocol?: string): void {
    (this.#o.events ?? nullEventBus).emit({
      kind: 'tls',
      connector: connector.name,
      direction: 'send',
      outcome,
      ...(protocol !== undefined ? { protocol } : {}),
    });
  }

  #clientOptions(
    connector: SendConnectorConfig,
    destination: Destination,
    address: string,
    policy: MxPolicy | undefined,
  ): SmtpClientOptions {
    const ca = this.#o.caFor(connector);
    const enforced = policy?.requireTls === true && destination.fromMx;
    const password = this.#o.passwordFor(connector);
    const username = connector.auth.username;
    const sessionLog = this.#o.protocolLog?.(
      connector,
      username !== undefined && password !== undefined ? { username, password } : undefined,
    );
    return {
      ...(sessionLog ? { sessionLog } : {}),
      host: destination.host,
      address,
      port: destination.port,
      ehloName: connector.ehloName ?? this.#o.nodeFqdn,
      tls: enforced
        ? {
            mode: connector.tls.mode === 'implicit' ? 'implicit' : 'required',
            verify: 'domain',
            matchNames: [destination.host],
            ...(ca ? { ca } : {}),
          }
        : {
            mode: connector.tls.mode,
            verify: connector.tls.validation,
            matchNames: [connector.tls.domain ?? destination.host],
            ...(ca ? { ca } : {}),
          },
      ...(connector.auth.mode !== 'none' && connector.auth.username && password !== undefined
        ? {
            auth: { username: connector.auth.username, password },
            allowPlaintextAuth: connector.auth.mode === 'basic',
          }
        : {}),
      timeouts: { connect: connector.limits.connectTimeout, command: connector.limits.commandTimeout },
    };
  }
}
