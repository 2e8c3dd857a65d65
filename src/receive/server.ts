import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ReceiveConnectorConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { IdGenerator } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { SessionProtocolLog } from '../logging/session-log.ts';
import { nullEventBus } from '../observe/events.ts';
import { formatReply, reply } from '../smtp/reply.ts';
import { type CertificatePem, ConnectorCertificates, connectorCertificateFiles } from '../tls/contexts.ts';
import { ClientCertificateTrust } from './auth/client-certificates.ts';
import { type AuthServices, defaultAuthServices } from './auth/sasl.ts';
import { bestMatch, type IpRange, normalizeIp, parseIpRange } from './ip-ranges.ts';
import { SmtpSession } from './session.ts';
import type { ReceiveContext } from './types.ts';

export interface ReceiveServerOptions {
  connectors: ReadonlyArray<ReceiveConnectorConfig>;
  context: ReceiveContext;
  nodeFqdn: string;
  /** Used by every TLS connector that names no certificate of its own. */
  defaultCertificate: { cert: Buffer; key: Buffer };
  /** Reads the node's certificate again, for reloadCertificates(); without it the first one stays. */
  reloadDefaultCertificate?: () => Promise<CertificatePem>;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  /** Failed-login lockout and OAuth tokens, shared by all connectors; defaults: lockout only. */
  auth?: AuthServices;
  /** The protocol log (src/logging/), for connectors with protocolLogging: verbose. */
  protocolLog?: { receiveSession(connector: string, sessionId: string): SessionProtocolLog };
}

export interface ReceiveServer {
  close(): Promise<void>;
  /** Where each connector listens (the real port when the config said 0). */
  addresses(): Array<{ connector: string; binding: string; host: string; port: number }>;
  sessionCount(): number;
  /**
   * Reads every connector's certificate files again and serves them to new handshakes; sessions
   * already in TLS keep theirs. A connector whose files cannot be used keeps its old ones (logged).
   */
  reloadCertificates(): Promise<CertificateReload[]>;
}

export interface CertificateReload {
  readonly connector: string;
  readonly ok: boolean;
  readonly error?: string;
}

interface ConnectorRuntime {
  readonly config: ReceiveConnectorConfig;
  readonly ranges: ReadonlyArray<IpRange>;
  readonly certificates: ConnectorCertificates;
  sessions: number;
  readonly perSource: Map<string, number>;
  /** Client certificates (mutual TLS), when the connector asks for them. */
  readonly clientCertificates: ClientCertificateTrust | undefined;
}

interface Listener {
  readonly binding: string;
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
  readonly connectors: ConnectorRuntime[];
  server?: Server;
}

/** The TLS socket options that ask the client for a certificate, on connectors configured to. */
function clientCertificateRequest(connector: ConnectorRuntime) {
  return connector.clientCertificates ? ClientCertificateTrust.tlsOptions : {};
}

/** `127.0.0.1:25`, `[::1]:25`, `:25` (all addresses). */
export function parseBinding(binding: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(binding);
  if (!m) throw new Error(`bad binding ${binding}`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

/**
 * Starts one listener per distinct binding. Connectors sharing a binding must agree on implicit
 * TLS; each connection is given to the connector whose remote range is the most specific match.
 */
export async function startReceiveServer(options: ReceiveServerOptions): Promise<ReceiveServer> {
  const listeners = new Map<string, Listener>();
  const sessions = new Set<SmtpSession>();
  /** Sockets not (yet) owned by a session: refusals being sent, implicit-TLS handshakes. */
  const unowned = new Set<Socket>();
  let closing = false;
  let nodeCertificate: CertificatePem = options.defaultCertificate;
  const runtimes: ConnectorRuntime[] = [];
  const auth = options.auth ?? defaultAuthServices(options.clock);
  const events = options.context.events ?? nullEventBus;
  for (const config of options.connectors) {
    if (!config.enabled) continue;
    const ranges = config.remoteRanges.map((text) => {
      const range = parseIpRange(text);
      if (!range) throw new Error(`receive connector ${config.name}: bad remote range ${text}`);
      return range;
    });
    const files = connectorCertificateFiles(config.tls);
    const certificates = await ConnectorCertificates.load(
      files.length > 0 ? { kind: 'files', files } : { kind: 'node', load: async () => nodeCertificate },
    );
    const runtime: ConnectorRuntime = {
      config,
      ranges,
      certificates,
      sessions: 0,
      perSource: new Map(),
      clientCertificates:
        config.tls.clientCertificates && config.tls.mode !== 'none'
          ? await ClientCertificateTrust.load(config.tls.clientCertificates)
          : undefined,
    };
    runtimes.push(runtime);
    for (const binding of config.bindings) {
      const { host, port } = parseBinding(binding);
      // Port 0 asks for an ephemeral port: such bindings are never shared.
      const key = port === 0 ? `${binding}#${config.name}` : `${host}:${port}`;
      const implicitTls = config.tls.mode === 'implicit';
      const existing = listeners.get(key);
      if (existing) {
        if (existing.implicitTls !== implicitTls) {
          throw new Error(`receive connectors on ${binding} disagree on implicit TLS`);
        }
        // The same binding named twice by one connector is one listener.
        if (!existing.connectors.includes(runtime)) existing.connectors.push(runtime);
      } else {
        listeners.set(key, { binding, host, port, implicitTls, connectors: [runtime] });
      }
    }
  }

  const onConnection = (listener: Listener, socket: Socket) => {
    socket.on('error', () => undefined);
    if (closing) {
      socket.destroy();
      return;
    }
    // Replies are already batched per pipelined group; Nagle would only hold them back.
    socket.setNoDelay(true);
    const remoteIp = normalizeIp(socket.remoteAddress ?? '');
    const connector = bestMatch(
      remoteIp,
      listener.connectors.map((c) => ({ ranges: c.ranges, value: c })),
    );
    const refuse = (code: number, status: string, text: string) => {
      unowned.add(socket);
      socket.once('close', () => unowned.delete(socket));
      socket.end(formatReply(reply(code, status, text)));
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    if (!connector) {
      return refuse(554, '5.7.1', `${options.nodeFqdn} no connector accepts connections from ${remoteIp}`);
    }
    const limits = connector.config.limits;
    const fromSource = connector.perSource.get(remoteIp) ?? 0;
    if (connector.sessions >= limits.maxConnections || fromSource >= limits.maxConnectionsPerSource) {
      return refuse(421, '4.3.2', `${options.nodeFqdn} Too many connections; try again later`);
    }
    openSession(listener, connector, socket, remoteIp);
  };

  const openSession = (listener: Listener, connector: ConnectorRuntime, socket: Socket, remoteIp: string) => {
    connector.sessions++;
    connector.perSource.set(remoteIp, (connector.perSource.get(remoteIp) ?? 0) + 1);
    const release = () => {
      connector.sessions--;
      const left = (connector.perSource.get(remoteIp) ?? 1) - 1;
      if (left <= 0) connector.perSource.delete(remoteIp);
      else connector.perSource.set(remoteIp, left);
    };
    const startSession = (stream: Socket, tls: boolean) => {
      const sessionId = options.ids.sessionId();
      const protocolLog =
        connector.config.protocolLogging === 'verbose'
          ? options.protocolLog?.receiveSession(connector.config.name, sessionId)
          : undefined;
      const session = new SmtpSession(
        stream,
        remoteIp,
        tls,
        {
          connector: connector.config,
          fqdn: connector.config.fqdn ?? options.nodeFqdn,
          tls: () => ({ ...connector.certificates.options(), ...clientCertificateRequest(connector) }),
          context: options.context,
          clock: options.clock,
          logger: options.logger,
          sessionId,
          auth,
          ...(protocolLog ? { protocolLog } : {}),
          ...(connector.clientCertificates ? { clientCertificates: connector.clientCertificates } : {}),
        },
        () => {
          sessions.delete(session);
          release();
          events.emit({ kind: 'session', connector: connector.config.name, phase: 'close' });
        },
      );
      sessions.add(session);
      events.emit({ kind: 'session', connector: connector.config.name, phase: 'open' });
      session.start();
    };
    if (!listener.implicitTls) return startSession(socket, false);
    // Implicit TLS: the handshake comes first, with this connector's certificate.
    unowned.add(socket);
    socket.once('close', () => unowned.delete(socket));
    const secure = new TLSSocket(socket, {
      isServer: true,
      ...connector.certificates.options(),
      ...clientCertificateRequest(connector),
    });
    const handshakeTimer = setTimeout(() => secure.destroy(), connector.config.limits.inactivityTimeout);
    handshakeTimer.unref();
    let started = false;
    secure.once('secure', () => {
      clearTimeout(handshakeTimer);
      unowned.delete(socket);
      if (closing) {
        secure.destroy();
        return;
      }
      started = true;
      const protocol = secure.getProtocol() ?? 'TLS';
      events.emit({
        kind: 'tls',
        connector: connector.config.name,
        direction: 'receive',
        outcome: 'established',
        protocol,
      });
      startSession(secure, true);
    });
    secure.on('error', () => {
      if (!started)
        events.emit({
          kind: 'tls',
          connector: connector.config.name,
          direction: 'receive',
          outcome: 'failed',
        });
      secure.destroy();
    });
    secure.once('close', () => {
      clearTimeout(handshakeTimer);
      if (!started) release();
    });
  };

  const started: Listener[] = [];
  try {
    for (const listener of listeners.values()) {
      // Implicit TLS is a plain listener whose sockets are wrapped once the connector is known,
      // so each connector's own certificate and limits apply from the first byte.
      const server = createTcpServer();
      server.on('connection', (socket: Socket) => onConnection(listener, socket));
      server.on('error', (error) =>
        options.logger.error({ err: error, binding: listener.binding }, 'listener error'),
      );
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listener.host || undefined, port: listener.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      listener.server = server;
      started.push(listener);
    }
  } catch (error) {
    await Promise.all(started.map((l) => new Promise((r) => l.server?.close(r))));
    throw new Error(`cannot listen: ${error instanceof Error ? error.message : String(error)}`);
  }

  return {
    addresses() {
      const out: Array<{ connector: string; binding: string; host: string; port: number }> = [];
      for (const listener of started) {
        // A closed listener is not where a connector listens (readiness relies on this).
        if (!listener.server?.listening) continue;
        const address = listener.server.address();
        const port = typeof address === 'object' && address ? address.port : listener.port;
        for (const c of listener.connectors) {
          out.push({ connector: c.config.name, binding: listener.binding, host: listener.host, port });
        }
      }
      return out;
    },
    sessionCount: () => sessions.size,
    async reloadCertificates() {
      if (options.reloadDefaultCertificate) {
        try {
          nodeCertificate = await options.reloadDefaultCertificate();
        } catch (error) {
          options.logger.error({ err: error }, 'cannot reload the node certificate; keeping the one in use');
        }
      }
      const results: CertificateReload[] = [];
      for (const runtime of runtimes) {
        const connector = runtime.config.name;
        try {
          await runtime.certificates.reload();
          results.push({ connector, ok: true });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          options.logger.error(
            { connector, err: error },
            'cannot reload TLS certificates; keeping the ones in use',
          );
          results.push({ connector, ok: false, error: message });
        }
      }
      options.logger.info(
        { reloaded: results.filter((r) => r.ok).map((r) => r.connector) },
        'TLS certificates reloaded',
      );
      return results;
    },
    async close() {
      closing = true;
      const listenersClosed = started.map((l) => new Promise((resolve) => l.server?.close(resolve)));
      for (const session of sessions) session.shutdown();
      // A handshake or a refusal in flight has no session to say goodbye: it just ends, so that
      // close() never waits for a handshake timeout.
      for (const socket of unowned) socket.destroy();
      await Promise.all(listenersClosed);
    },
  };
}
