import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../core/logger.ts';
import { parseBinding } from '../receive/server.ts';
import { AdminAuth, type AdminIdentity, identityLabel } from './auth.ts';
import type { AdminContext } from './context.ts';
import { toApiError } from './errors.ts';
import { registerObserveRoutes } from './routes-observe.ts';
import { registerQueueRoutes } from './routes-queue.ts';
import { errors } from './schemas.ts';
import { loadOrCreateLocalToken } from './token-file.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answered without a token: login, and health when admin.anonymousHealth is on. */
    public?: boolean;
  }
}

export interface AdminServerOptions {
  readonly config: Config;
  readonly context: AdminContext;
  readonly logger: Logger;
}

export interface AdminServer {
  /** Where the API listens (the real port when the config said 0). */
  address(): Array<{ host: string; port: number }>;
  close(): Promise<void>;
}

/** A request still running when close() is called gets this long before its connection is cut. */
const CLOSE_GRACE_MS = 2000;

async function packageVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The admin API (docs/admin-api.md) on every `admin.listen` address: one fastify app, served by
 * one HTTP server per address. Every route but login needs a bearer token; fastify's own logger
 * is off and requests are logged through the node's pino logger (debug; failures at warn).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { config, context } = options;
  const logger = options.logger.child({ component: 'admin' });
  const adminConfig = config.admin;
  const localToken = await loadOrCreateLocalToken(config.node.dataDir, logger);
  const auth = new AdminAuth({ config: adminConfig, localToken, clock: context.clock });
  const version = await packageVersion();
  const servers: Server[] = [];
  const address = () =>
    servers
      .filter((s) => s.listening)
      .map((s) => {
        const a = s.address();
        return typeof a === 'object' && a ? { host: a.address, port: a.port } : { host: String(a), port: 0 };
      });

  const app = await buildApp({ config, context, logger, auth, version, address });
  try {
    for (const binding of adminConfig.listen) {
      const { host, port } = parseBinding(binding);
      const server = createServer((req, res) => app.routing(req, res));
      // A client that dribbles its request in holds a connection: it gets seconds, not minutes.
      server.headersTimeout = 10_000;
      server.requestTimeout = 30_000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: host || undefined, port }, () => {
          server.off('error', reject);
          resolve();
        });
      }).catch((error: unknown) => {
        throw new Error(
          `admin API cannot listen on ${binding}: ${error instanceof Error ? error.message : String(error)}`,
        );
      });
      server.on('error', (error) => logger.error({ err: error, binding }, 'admin listener error'));
      servers.push(server);
    }
  } catch (error) {
    await closeServers(servers);
    await app.close();
    throw error;
  }
  for (const a of address()) logger.info({ host: a.host, port: a.port }, 'admin API listening');

  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= (async () => {
        await closeServers(servers);
        await app.close();
      })();
      return closing;
    },
  };
}

async function closeServers(servers: ReadonlyArray<Server>): Promise<void> {
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
          server.close(() => {
            clearTimeout(timer);
            resolve();
          });
          server.closeIdleConnections();
        }),
    ),
  );
}

async function buildApp(options: {
  config: Config;
  context: AdminContext;
  logger: Logger;
  auth: AdminAuth;
  version: string;
  address: () => Array<{ host: string; port: number }>;
}): Promise<FastifyInstance> {
  const { config, context, logger, auth, version } = options;
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // Unknown query parameters are refused rather than dropped: a misspelt filter must not list everything.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Ferrymail admin API',
        version,
        description:
          'Queue viewer, message tracking, metrics and health of a Ferrymail node (docs/admin-api.md).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  // An empty JSON body is no body: `curl -H 'content-type: application/json' -X POST .../suspend`
  // must not be a 400. Routes that need a body still say so through their schema.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(
        Object.assign(new Error(`body is not JSON: ${(error as Error).message}`), { statusCode: 400 }),
        undefined,
      );
    }
  });

  const identities = new WeakMap<FastifyRequest, AdminIdentity>();
  const identityOf = (request: FastifyRequest): AdminIdentity => {
    const identity = identities.get(request);
    // The auth hook runs before every handler that asks; reaching here without one is a bug.
    if (!identity) throw new Error('request has no admin identity');
    return identity;
  };

  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config?.public) return;
    const header = request.headers.authorization;
    const identity = auth.authenticate(header);
    if (identity) {
      identities.set(request, identity);
      return;
    }
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer')
      .send({
        error: 'unauthorized',
        message:
          header === undefined
            ? 'a bearer token is required: Authorization: Bearer <token>'
            : 'the bearer token is not valid (wrong, or a session that expired)',
      });
  });

  app.addHook('onResponse', async (request, reply) => {
    const identity = identities.get(request);
    logger.debug(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        clientIp: request.ip,
        ...(identity ? { who: identityLabel(identity) } : {}),
      },
      'admin request',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const api = toApiError(error);
    if (!api) {
      logger.warn({ err: error, method: request.method, url: request.url }, 'admin request failed');
      return reply
        .code(500)
        .send({ error: 'internal', message: 'internal error; the node log has the details' });
    }
    if (api.status >= 500)
      logger.warn({ method: request.method, url: request.url, reason: api.message }, 'admin request refused');
    return reply.code(api.status).send({ error: api.code, message: api.message });
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: 'not-found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/login',
    {
      config: { public: true },
      schema: {
        summary: 'Log in with an admin account; the token is valid for admin.sessionLifetime',
        tags: ['auth'],
        security: [],
        body: {
          type: 'object',
          required: ['username', 'password'],
          additionalProperties: false,
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 256 },
            password: { type: 'string', maxLength: 1024 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['token', 'expiresAt'],
            properties: {
              token: { type: 'string', description: 'send as Authorization: Bearer <token>' },
              expiresAt: { type: 'number', description: 'ms since epoch' },
            },
          },
          400: errors(400)[400],
          401: errors(401)[401],
          429: errors(429)[429],
        },
      },
    },
    async (request, reply) => {
      const { username, password } = request.body;
      const result = await auth.login(username, password, request.ip);
      if (result.ok) {
        logger.info({ account: username, clientIp: request.ip }, 'admin login');
        return { token: result.token, expiresAt: result.expiresAt };
      }
      if (result.reason === 'limited') {
        logger.warn({ account: username, clientIp: request.ip }, 'admin login refused: too many failures');
        return reply
          .code(429)
          .header('retry-after', String(result.retryAfterSeconds))
          .send({
            error: 'rate-limited',
            message: `too many failed logins; try again in ${result.retryAfterSeconds} s`,
          });
      }
      logger.warn({ account: username, clientIp: request.ip }, 'admin login failed');
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: 'wrong account name or password' });
    },
  );

  registerQueueRoutes(app, context, identityOf);
  registerObserveRoutes(
    app,
    context,
    { version, adminListeners: options.address, logger: options.logger },
    config.admin.anonymousHealth,
  );

  app.get(
    '/api/v1/openapi.json',
    {
      schema: {
        summary: 'This OpenAPI 3 document',
        tags: ['node'],
        response: { 200: { type: 'object', additionalProperties: true }, ...errors(401) },
      },
    },
    async () => app.swagger(),
  );

  await app.ready();
  return app;
}
