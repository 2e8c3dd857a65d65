import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/logger.ts';
import { TRACKING_EVENTS, type TrackingEventId } from '../observe/events.ts';
import type { TrackingQuery } from '../tracking/types.ts';
import type { AdminContext } from './context.ts';
import { ApiError, parseQueryTime } from './errors.ts';
import { errors, timeParam, trackingEventSchema } from './schemas.ts';

/** Message tracking, metrics, health and the node's status. */
export function registerObserveRoutes(
  app: FastifyInstance,
  context: AdminContext,
  info: {
    version: string;
    adminListeners: () => ReadonlyArray<{ host: string; port: number }>;
    logger: Logger;
  },
  publicHealth: boolean,
): void {
  app.get<{
    Querystring: {
      start?: string;
      end?: string;
      eventId?: TrackingEventId;
      sender?: string;
      recipient?: string;
      messageId?: string;
      internalId?: string;
      subject?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/api/v1/tracking',
    {
      schema: {
        summary: 'Search the message tracking log (Get-MessageTrackingLog); filters AND, oldest first',
        tags: ['tracking'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            start: { ...timeParam, description: `inclusive; ${timeParam.description}` },
            end: { ...timeParam, description: `exclusive; ${timeParam.description}` },
            eventId: { type: 'string', enum: TRACKING_EVENTS },
            sender: { type: 'string' },
            recipient: { type: 'string', minLength: 1 },
            messageId: { type: 'string', minLength: 1, description: 'with or without angle brackets' },
            internalId: { type: 'string', minLength: 1, description: 'the queue id' },
            subject: { type: 'string', minLength: 1, description: 'substring, case-insensitive' },
            limit: { type: 'integer', minimum: 1, maximum: 5000, default: 100 },
            cursor: { type: 'string', minLength: 1, description: 'nextCursor of the previous page' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['events'],
            properties: {
              events: { type: 'array', items: trackingEventSchema },
              nextCursor: { type: 'string' },
            },
          },
          ...errors(400, 401, 503),
        },
      },
    },
    async (request) => {
      const { start, end, ...rest } = request.query;
      const startMs = parseQueryTime('start', start);
      const endMs = parseQueryTime('end', end);
      if (!context.tracking)
        throw new ApiError(503, 'unavailable', 'this node keeps no message tracking log');
      const query: TrackingQuery = {
        ...rest,
        ...(startMs !== undefined ? { start: startMs } : {}),
        ...(endMs !== undefined ? { end: endMs } : {}),
      };
      // What was recorded before the search is in it: a trace right after a send finds it.
      await context.tracking.flush();
      return context.tracking.search(query);
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['observe'],
        response: {
          200: { description: 'the metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errors(401, 503),
        },
      },
    },
    async (_request, reply) => {
      if (!context.metrics) throw new ApiError(503, 'unavailable', 'this node collects no metrics');
      const text = await context.metrics.text();
      return reply.header('content-type', context.metrics.contentType).send(text);
    },
  );

  const statusOk = {
    type: 'object',
    required: ['status'],
    properties: { status: { type: 'string', enum: ['ok'] } },
  };
  const checks = {
    type: 'object',
    required: ['queue', 'receive'],
    properties: { queue: { type: 'boolean' }, receive: { type: 'boolean' } },
  };
  const healthConfig = { public: publicHealth };

  app.get(
    '/health/live',
    {
      config: healthConfig,
      schema: {
        summary: 'Liveness: the process answers',
        tags: ['health'],
        ...(publicHealth ? { security: [] } : {}),
        response: { 200: statusOk, ...errors(401) },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/health/ready',
    {
      config: healthConfig,
      schema: {
        summary: 'Readiness: the queue store is open and every receive connector listens; 503 otherwise',
        tags: ['health'],
        ...(publicHealth ? { security: [] } : {}),
        response: {
          200: {
            type: 'object',
            required: ['status', 'checks'],
            properties: { status: { type: 'string', enum: ['ok'] }, checks },
          },
          503: {
            type: 'object',
            required: ['status', 'checks'],
            properties: { status: { type: 'string', enum: ['unavailable'] }, checks },
          },
          ...errors(401),
        },
      },
    },
    async (_request, reply) => {
      const result = await context.readiness().catch((error: unknown) => {
        info.logger.warn({ err: error }, 'readiness check failed; answering unavailable');
        return { queue: false, receive: false };
      });
      const ready = result.queue && result.receive;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks: result });
    },
  );

  const listener = {
    type: 'object',
    required: ['kind', 'host', 'port'],
    properties: {
      kind: { type: 'string', enum: ['receive', 'admin'] },
      connector: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'integer' },
    },
  };
  app.get(
    '/api/v1/status',
    {
      schema: {
        summary: "The node's name, version, uptime and listeners",
        tags: ['node'],
        response: {
          200: {
            type: 'object',
            required: ['name', 'fqdn', 'version', 'startedAt', 'uptimeSeconds', 'listeners'],
            properties: {
              name: { type: 'string' },
              fqdn: { type: 'string' },
              version: { type: 'string' },
              startedAt: { type: 'number' },
              uptimeSeconds: { type: 'number' },
              listeners: { type: 'array', items: listener },
            },
          },
          ...errors(401),
        },
      },
    },
    async () => ({
      name: context.node.name,
      fqdn: context.node.fqdn,
      version: info.version,
      startedAt: context.node.startedAt,
      uptimeSeconds: Math.max(0, Math.floor((context.clock.now() - context.node.startedAt) / 1000)),
      listeners: [
        ...context.node
          .listeners()
          .map((l) => ({ kind: 'receive', connector: l.connector, host: l.host, port: l.port })),
        ...info.adminListeners().map((l) => ({ kind: 'admin', host: l.host, port: l.port })),
      ],
    }),
  );
}
