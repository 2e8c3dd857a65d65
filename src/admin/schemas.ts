/**
 * JSON schemas of the admin API: fastify validates requests with them (a bad parameter is a 400
 * before any handler runs), serializes answers with them, and @fastify/swagger turns them into
 * the OpenAPI document. Answer objects keep `additionalProperties: true`, so a field a component
 * adds later is passed through rather than silently dropped by the serializer.
 */
import { TRACKING_EVENTS } from '../observe/events.ts';

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;
const strings = { type: 'array', items: str } as const;

export const errorSchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: {
      type: 'string',
      enum: [
        'bad-request',
        'unauthorized',
        'not-found',
        'conflict',
        'rate-limited',
        'unavailable',
        'internal',
      ],
    },
    message: str,
  },
} as const;

/** The error answers every authenticated route can give. */
export function errors(...statuses: Array<400 | 401 | 404 | 409 | 429 | 503>): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const s of statuses) out[s] = { ...errorSchema, description: ERROR_DESCRIPTIONS[s] };
  return out;
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'a malformed parameter, filter, time, limit or body',
  401: 'no valid bearer token',
  404: 'unknown queue or message',
  409: 'the operation does not apply',
  429: 'too many failed logins',
  503: 'not ready, or the component is not running',
};

export const noContent = { 204: { type: 'null', description: 'done' } } as const;

export const queueSummarySchema = {
  type: 'object',
  additionalProperties: true,
  required: ['name', 'deliveryType', 'nextHop', 'status', 'messageCount', 'recipientCount'],
  properties: {
    name: str,
    deliveryType: {
      type: 'string',
      enum: [
        'MailboxDelivery',
        'DnsConnectorDelivery',
        'SmartHostConnectorDelivery',
        'Unreachable',
        'Poison',
      ],
    },
    nextHop: str,
    connector: str,
    status: { type: 'string', enum: ['Active', 'Ready', 'Retry', 'Suspended'] },
    messageCount: int,
    recipientCount: int,
    nextRetryAt: num,
    lastError: str,
  },
} as const;

export const MESSAGE_STATUSES = ['Active', 'Ready', 'Retry', 'Suspended', 'Poison'] as const;

const recipientSchema = {
  type: 'object',
  additionalProperties: true,
  required: ['index', 'address', 'status', 'attempts', 'nextAttemptAt', 'updatedAt', 'nextHop'],
  properties: {
    index: int,
    address: str,
    orcpt: str,
    notify: { anyOf: [{ type: 'string', enum: ['NEVER'] }, strings] },
    status: { type: 'string', enum: ['pending', 'active', 'suspended', 'delivered', 'failed'] },
    attempts: int,
    nextAttemptAt: num,
    lastResponse: str,
    updatedAt: num,
    pendingNotification: str,
    delayNotified: bool,
    nextHop: {
      type: 'object',
      additionalProperties: true,
      required: ['type'],
      properties: {
        type: { type: 'string', enum: ['mailbox', 'smtp', 'unreachable'] },
        mailbox: str,
        domain: str,
        connector: str,
      },
    },
  },
} as const;

export const messageViewSchema = {
  type: 'object',
  additionalProperties: true,
  required: [
    'id',
    'sender',
    'receivedAt',
    'expiresAt',
    'size',
    'status',
    'queues',
    'crashCount',
    'recipients',
  ],
  properties: {
    id: str,
    sender: str,
    receivedAt: num,
    expiresAt: num,
    size: int,
    status: { type: 'string', enum: MESSAGE_STATUSES },
    queues: strings,
    crashCount: int,
    messageId: str,
    subject: str,
    bodyType: str,
    smtpUtf8: bool,
    dsn: { type: 'object', additionalProperties: true, properties: { ret: str, envid: str } },
    origin: {
      type: 'object',
      additionalProperties: true,
      properties: { connector: str, clientIp: str, clientHelo: str, authUser: str, tls: bool },
    },
    authResults: { type: 'object', additionalProperties: true },
    recipients: { type: 'array', items: recipientSchema },
  },
} as const;

export const trackingEventSchema = {
  type: 'object',
  additionalProperties: true,
  required: ['seq', 'time', 'eventId', 'source', 'recipients', 'recipientStatus'],
  properties: {
    seq: int,
    time: num,
    eventId: { type: 'string', enum: TRACKING_EVENTS },
    source: str,
    internalId: str,
    messageId: str,
    clientIp: str,
    clientHostname: str,
    serverIp: str,
    serverHostname: str,
    connector: str,
    sender: str,
    returnPath: str,
    recipients: strings,
    recipientStatus: strings,
    size: int,
    subject: str,
    directionality: str,
    relatedRecipient: str,
    reference: str,
    detail: str,
  },
} as const;

/** A time in a query: ISO 8601 or ms since epoch; checked by parseQueryTime for a precise reason. */
export const timeParam = {
  type: 'string',
  description: 'ISO 8601 with an offset (2026-12-01T09:00:00Z), a date (2026-12-01, UTC), or ms since epoch',
} as const;

export const queueParams = {
  type: 'object',
  required: ['queue'],
  additionalProperties: false,
  properties: {
    queue: { type: 'string', minLength: 1, maxLength: 1024, description: 'the queue name, URL-encoded' },
  },
} as const;

export const messageParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^[0-9A-Za-z]{1,64}$', description: 'the queue id of the message' },
  },
} as const;
