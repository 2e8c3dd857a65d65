import type { FastifyInstance, FastifyRequest } from 'fastify';
import { track } from '../observe/events.ts';
import type { MessageFilter, MessageStatus, QueuedMessageView } from '../queue/admin-types.ts';
import { type AdminIdentity, identityLabel } from './auth.ts';
import type { AdminContext } from './context.ts';
import { ApiError, parseQueryTime } from './errors.ts';
import {
  errors,
  MESSAGE_STATUSES,
  messageParams,
  messageViewSchema,
  noContent,
  queueParams,
  queueSummarySchema,
  timeParam,
} from './schemas.ts';

const DEFAULT_PAGE = 100;

/**
 * The queue viewer: Get-Queue / Get-Message and their operations. Every change is tracked as an
 * ADMIN event naming who did it, what, and on which queue or message.
 */
export function registerQueueRoutes(
  app: FastifyInstance,
  context: AdminContext,
  identityOf: (request: FastifyRequest) => AdminIdentity,
): void {
  const admin = context.queueAdmin;
  const audit = (
    request: FastifyRequest,
    detail: string,
    message?: Pick<QueuedMessageView, 'id' | 'sender' | 'messageId' | 'subject'>,
  ) => {
    track(context.events, {
      time: context.clock.now(),
      eventId: 'ADMIN',
      source: 'ADMIN',
      recipients: [],
      recipientStatus: [],
      relatedRecipient: identityLabel(identityOf(request)),
      detail,
      ...(message
        ? {
            internalId: message.id,
            sender: message.sender,
            ...(message.messageId !== undefined ? { messageId: message.messageId } : {}),
            ...(message.subject !== undefined ? { subject: message.subject } : {}),
          }
        : {}),
    });
  };

  app.get(
    '/api/v1/queues',
    {
      schema: {
        summary: 'Every queue (Get-Queue)',
        tags: ['queues'],
        response: {
          200: {
            type: 'object',
            required: ['queues'],
            properties: { queues: { type: 'array', items: queueSummarySchema } },
          },
          ...errors(401),
        },
      },
    },
    async () => ({ queues: await admin.listQueues() }),
  );

  app.get<{ Params: { queue: string } }>(
    '/api/v1/queues/:queue',
    {
      schema: {
        summary: 'One queue',
        tags: ['queues'],
        params: queueParams,
        response: { 200: queueSummarySchema, ...errors(400, 401, 404) },
      },
    },
    async (request) => {
      const queue = await admin.getQueue(request.params.queue);
      if (!queue) throw new ApiError(404, 'not-found', `no queue ${request.params.queue}`);
      return queue;
    },
  );

  app.post<{ Params: { queue: string } }>(
    '/api/v1/queues/:queue/retry',
    {
      schema: {
        summary: 'Make every waiting recipient of the queue due now (Retry-Queue)',
        tags: ['queues'],
        params: queueParams,
        response: {
          200: { type: 'object', required: ['recipients'], properties: { recipients: { type: 'integer' } } },
          ...errors(400, 401, 404),
        },
      },
    },
    async (request) => {
      const recipients = await admin.retryQueue(request.params.queue);
      audit(request, `retry queue=${request.params.queue} recipients=${recipients}`);
      return { recipients };
    },
  );

  for (const action of ['suspend', 'resume'] as const) {
    app.post<{ Params: { queue: string } }>(
      `/api/v1/queues/:queue/${action}`,
      {
        schema: {
          summary:
            action === 'suspend'
              ? 'Stop delivering the queue (Suspend-Queue)'
              : 'Deliver the queue again (Resume-Queue)',
          tags: ['queues'],
          params: queueParams,
          response: { ...noContent, ...errors(400, 401, 404) },
        },
      },
      async (request, reply) => {
        const queue = request.params.queue;
        await (action === 'suspend' ? admin.suspendQueue(queue) : admin.resumeQueue(queue));
        audit(request, `${action} queue=${queue}`);
        return reply.code(204).send();
      },
    );
  }

  app.get<{
    Querystring: {
      queue?: string;
      status?: MessageStatus;
      sender?: string;
      recipient?: string;
      subject?: string;
      receivedAfter?: string;
      receivedBefore?: string;
      limit?: number;
      after?: string;
    };
  }>(
    '/api/v1/messages',
    {
      schema: {
        summary: 'Queued messages with per-recipient status (Get-Message); filters AND',
        tags: ['messages'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            queue: {
              type: 'string',
              minLength: 1,
              description: 'only messages with a recipient in this queue',
            },
            status: { type: 'string', enum: MESSAGE_STATUSES },
            sender: { type: 'string', description: 'exact envelope sender, case-insensitive' },
            recipient: { type: 'string', minLength: 1, description: 'exact recipient, case-insensitive' },
            subject: {
              type: 'string',
              minLength: 1,
              description: 'substring of the subject, case-insensitive',
            },
            receivedAfter: timeParam,
            receivedBefore: timeParam,
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: DEFAULT_PAGE },
            after: {
              type: 'string',
              pattern: '^[0-9A-Za-z]{1,64}$',
              description: 'nextAfter of the previous page',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['messages'],
            properties: {
              messages: { type: 'array', items: messageViewSchema },
              nextAfter: {
                type: 'string',
                description: 'present when the page is full: the after of the next page',
              },
            },
          },
          ...errors(400, 401),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const receivedAfter = parseQueryTime('receivedAfter', q.receivedAfter);
      const receivedBefore = parseQueryTime('receivedBefore', q.receivedBefore);
      const limit = q.limit ?? DEFAULT_PAGE;
      const filter: MessageFilter = {
        ...(q.queue !== undefined ? { queue: q.queue } : {}),
        ...(q.status !== undefined ? { status: q.status } : {}),
        ...(q.sender !== undefined ? { sender: q.sender } : {}),
        ...(q.recipient !== undefined ? { recipient: q.recipient } : {}),
        ...(q.subject !== undefined ? { subject: q.subject } : {}),
        ...(receivedAfter !== undefined ? { receivedAfter } : {}),
        ...(receivedBefore !== undefined ? { receivedBefore } : {}),
        ...(q.after !== undefined ? { after: q.after } : {}),
        limit,
      };
      const messages = await admin.listMessages(filter);
      const last = messages.at(-1);
      return { messages, ...(messages.length >= limit && last ? { nextAfter: last.id } : {}) };
    },
  );

  const found = async (id: string): Promise<QueuedMessageView> => {
    const message = await admin.getMessage(id);
    if (!message) throw new ApiError(404, 'not-found', `no message ${id} in the queue`);
    return message;
  };

  app.get<{ Params: { id: string } }>(
    '/api/v1/messages/:id',
    {
      schema: {
        summary: 'One queued message',
        tags: ['messages'],
        params: messageParams,
        response: { 200: messageViewSchema, ...errors(400, 401, 404) },
      },
    },
    async (request) => found(request.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/messages/:id/eml',
    {
      schema: {
        summary: 'The stored message (headers and body) as an .eml file (Export-Message)',
        tags: ['messages'],
        params: messageParams,
        response: {
          200: {
            description: 'the message, byte for byte as stored',
            content: { 'message/rfc822': { schema: { type: 'string', format: 'binary' } } },
          },
          ...errors(400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const stream = await admin.exportMessage(id);
      return reply
        .header('content-type', 'message/rfc822')
        .header('content-disposition', `attachment; filename="${id}.eml"`)
        .send(stream);
    },
  );

  const messageActions = {
    suspend: { summary: 'Hold the message (Suspend-Message)', run: (id: string) => admin.suspendMessage(id) },
    resume: {
      summary: 'Deliver the message again (Resume-Message)',
      run: (id: string) => admin.resumeMessage(id),
    },
    resubmit: {
      summary: 'Route the undelivered recipients again and make them due now',
      run: (id: string) => admin.resubmitMessage(id),
    },
    release: {
      summary: 'Back from the Poison queue to delivery; 409 when the message is not in Poison',
      run: (id: string) => admin.releasePoisonMessage(id),
    },
  };
  for (const [action, { summary, run }] of Object.entries(messageActions)) {
    app.post<{ Params: { id: string } }>(
      `/api/v1/messages/:id/${action}`,
      {
        schema: {
          summary,
          tags: ['messages'],
          params: messageParams,
          response: {
            ...noContent,
            ...errors(400, 401, 404, ...(action === 'release' ? [409 as const] : [])),
          },
        },
      },
      async (request, reply) => {
        const message = await found(request.params.id);
        await run(message.id);
        audit(request, action, message);
        return reply.code(204).send();
      },
    );
  }

  app.delete<{ Params: { id: string }; Querystring: { ndr: boolean } }>(
    '/api/v1/messages/:id',
    {
      schema: {
        summary: 'Remove the message (Remove-Message); ndr is required: true sends the sender an NDR',
        tags: ['messages'],
        params: messageParams,
        querystring: {
          type: 'object',
          required: ['ndr'],
          additionalProperties: false,
          properties: {
            ndr: {
              type: 'boolean',
              description:
                'true: undelivered recipients fail with 5.7.1 and the sender gets an NDR; false: dropped',
            },
          },
        },
        response: { ...noContent, ...errors(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const message = await found(request.params.id);
      await admin.removeMessage(message.id, { ndr: request.query.ndr });
      audit(request, `remove ndr=${request.query.ndr}`, message);
      return reply.code(204).send();
    },
  );
}
