import { QueueAdminError } from '../queue/admin-types.ts';
import { QueueUnavailableError } from '../queue/types.ts';
import { TrackingQueryError } from '../tracking/types.ts';

export type ApiErrorCode =
  | 'bad-request'
  | 'unauthorized'
  | 'not-found'
  | 'conflict'
  | 'rate-limited'
  | 'unavailable'
  | 'internal';

/** An answer other than 2xx, thrown by a handler: `{error, message}` with `status`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: ApiErrorCode;
  constructor(status: number, code: ApiErrorCode, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const QUEUE_ADMIN_STATUS = { 'not-found': 404, conflict: 409, invalid: 400 } as const;
const QUEUE_ADMIN_CODE = { 'not-found': 'not-found', conflict: 'conflict', invalid: 'bad-request' } as const;

/** The answer for anything a route throws; `undefined` status means a bug (500, logged). */
export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof QueueAdminError)
    return new ApiError(QUEUE_ADMIN_STATUS[error.code], QUEUE_ADMIN_CODE[error.code], error.message);
  if (error instanceof TrackingQueryError) return new ApiError(400, 'bad-request', error.message);
  // The queue is closing or its writer died: not a bug of the request, and worth retrying.
  if (error instanceof QueueUnavailableError)
    return new ApiError(503, 'unavailable', `queue unavailable: ${error.message}`);
  const e = error as { validation?: unknown; statusCode?: unknown; message?: unknown };
  if (e?.validation !== undefined) return new ApiError(400, 'bad-request', String(e.message));
  // fastify's own refusals: malformed JSON, unsupported content type, body too large.
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return new ApiError(e.statusCode, e.statusCode === 404 ? 'not-found' : 'bad-request', String(e.message));
  return undefined;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/i;

/** A time in a query string: ISO 8601 with an offset, a date (UTC midnight), or ms since epoch. */
export function parseQueryTime(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (ISO_TIME.test(text)) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return ms;
    throw new ApiError(400, 'bad-request', `querystring/${name}: ${text} is not a real date or time`);
  }
  const hint = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)
    ? ' (a time needs its offset: add Z for UTC, or +01:00)'
    : '';
  throw new ApiError(
    400,
    'bad-request',
    `querystring/${name}: expected an ISO 8601 time such as 2026-12-01T09:00:00Z or ms since epoch, not ${JSON.stringify(text)}${hint}`,
  );
}
