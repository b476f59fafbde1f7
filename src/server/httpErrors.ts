import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorRegistry, OaoError, type OaoErrorCode } from '../errors.js';
import type { ErrorBody } from './schemas.js';

/** A URL no route serves, and a failure of the server itself (a defect, or a store that threw). */
export const ROUTE_NOT_FOUND = { code: 'OAO_ERR_ROUTE_NOT_FOUND', status: errorRegistry.OAO_ERR_ROUTE_NOT_FOUND.status } as const;
export const INTERNAL_ERROR = { code: 'OAO_ERR_INTERNAL', status: errorRegistry.OAO_ERR_INTERNAL.status } as const;

/** An answer ready to send: status, the one error body shape, and headers that go with it. */
export interface HttpError {
  readonly status: number;
  readonly body: ErrorBody;
  readonly headers: Readonly<Record<string, string>>;
}

export function errorBody(code: string, message: string, details?: Readonly<Record<string, unknown>>): ErrorBody {
  return { error: { code, message, ...(details === undefined ? {} : { details: { ...details } }) } };
}

/** An HttpError from a registry code: the status always comes from the registry. */
export function registryError(code: OaoErrorCode, message: string, details?: Readonly<Record<string, unknown>>): HttpError {
  return fromOaoError(new OaoError(code, message, details === undefined ? {} : { details }));
}

function fromOaoError(error: OaoError): HttpError {
  const headers: Record<string, string> = {};
  if (error.code === 'OAO_ERR_UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="oao"';
  if (error.code === 'OAO_ERR_TOO_MANY_RUNS' || error.code === 'OAO_ERR_STORE_UNAVAILABLE') headers['retry-after'] = '1';
  if (error.code === 'OAO_ERR_TENANT_BUDGET') {
    // Whole seconds until spend leaves the tenant's window (its end, for a calendar window).
    const ms = error.details?.retryAfterMs;
    headers['retry-after'] = String(typeof ms === 'number' && Number.isFinite(ms) ? Math.max(1, Math.ceil(ms / 1000)) : 1);
  }
  return { status: error.status, body: errorBody(error.code, error.message, error.details), headers };
}

interface ValidationIssue {
  readonly keyword?: string;
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

const CONTEXT_PREFIX: Readonly<Record<string, string>> = {
  body: 'body',
  querystring: 'query',
  params: 'params',
  headers: 'headers',
};

/**
 * Maps anything a route, a hook or Fastify itself threw to the one error body shape. Bad input is
 * always a 4xx with an OAO code naming the field; only a defect is a 500.
 */
export function toHttpError(error: unknown, bodyLimit: number): HttpError {
  if (OaoError.isInstance(error)) return fromOaoError(error);
  const fastifyError = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    statusCode?: unknown;
    message?: unknown;
    validation?: unknown;
    validationContext?: unknown;
  };
  if (Array.isArray(fastifyError.validation) && fastifyError.validation.length > 0) {
    return fromValidation(fastifyError.validation as ValidationIssue[], typeof fastifyError.validationContext === 'string' ? fastifyError.validationContext : 'body');
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return registryError('OAO_ERR_INVALID_JSON', 'The request body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return registryError('OAO_ERR_INVALID_JSON', 'The request body is empty, but its Content-Type says JSON');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      // A JSON-only API: this also keeps browsers' "simple" cross-site form posts out.
      return registryError('OAO_ERR_UNSUPPORTED_MEDIA_TYPE', 'The request body must be JSON, sent with Content-Type: application/json', {
        field: 'headers.content-type',
      });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return registryError('OAO_ERR_PAYLOAD_TOO_LARGE', `The request body is over this server's limit of ${bodyLimit} bytes`, {
        limit: bodyLimit,
      });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return registryError('OAO_ERR_INVALID_ARGUMENT', 'The request body does not match its Content-Length', { field: 'headers.content-length' });
    default:
      break;
  }
  const status = typeof fastifyError.statusCode === 'number' ? fastifyError.statusCode : 500;
  if (status === 415) return registryError('OAO_ERR_UNSUPPORTED_MEDIA_TYPE', 'The request body must be JSON, sent with Content-Type: application/json');
  if (status === 413) return registryError('OAO_ERR_PAYLOAD_TOO_LARGE', `The request body is over this server's limit of ${bodyLimit} bytes`, { limit: bodyLimit });
  if (status >= 400 && status < 500) {
    const message = typeof fastifyError.message === 'string' && fastifyError.message.length > 0 ? fastifyError.message : 'The request is invalid';
    return registryError('OAO_ERR_INVALID_ARGUMENT', message);
  }
  return {
    status: INTERNAL_ERROR.status,
    body: errorBody(INTERNAL_ERROR.code, 'The server failed to handle the request; it has been logged'),
    headers: {},
  };
}

function fromValidation(issues: readonly ValidationIssue[], context: string): HttpError {
  const prefix = CONTEXT_PREFIX[context] ?? context;
  const described = issues.slice(0, 10).map((issue) => ({ field: fieldOf(prefix, issue), message: issue.message ?? 'Invalid value' }));
  const first = issues[0] as ValidationIssue;
  const { field, message } = described[0] as { field: string; message: string };
  const path = pathOf(first);
  let code: OaoErrorCode = 'OAO_ERR_INVALID_ARGUMENT';
  let text = `${field}: ${message}`;
  if (prefix === 'body' && path.length === 0 && first.keyword === 'invalid_type') {
    code = 'OAO_ERR_INVALID_JSON';
    text = 'The request body must be a JSON object';
  } else if (prefix === 'body' && path[0] === 'policy') {
    code = 'OAO_ERR_INVALID_POLICY';
  }
  return registryError(code, text, { field, issues: described });
}

function pathOf(issue: ValidationIssue): string[] {
  const path = issue.instancePath ?? '';
  return path === '' || path === '/' ? [] : path.slice(1).split('/');
}

function fieldOf(prefix: string, issue: ValidationIssue): string {
  const path = pathOf(issue);
  // An unknown key is named itself, not the object it sits in.
  const keys = issue.params?.keys;
  if (issue.keyword === 'unrecognized_keys' && Array.isArray(keys) && typeof keys[0] === 'string') path.push(keys[0]);
  return [prefix, ...path].join('.');
}

/**
 * Whether an error was raised by something other than OAO and Fastify: a hook of the app around
 * the API (a rate limiter's 429, an auth plugin's 403). Such an error keeps its own status and
 * body: the app's error handler answers it, not the API's.
 */
export function isForeignClientError(error: unknown): boolean {
  if (OaoError.isInstance(error) || typeof error !== 'object' || error === null) return false;
  const { code, statusCode, validation } = error as { code?: unknown; statusCode?: unknown; validation?: unknown };
  if (validation !== undefined) return false;
  if (typeof code === 'string' && code.startsWith('FST_')) return false;
  return typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500;
}

export interface ErrorHandlingOptions {
  readonly bodyLimit: number;
  /** Where the API is described, for the not-found message. */
  readonly docsUrl: string;
  /**
   * Hand errors raised by the surrounding app's own hooks (see {@link isForeignClientError}) to the
   * parent context's error handler instead of answering them. True inside a user's app.
   */
  readonly delegateForeignErrors: boolean;
}

/**
 * Installs the error handler on `app`'s context; the routes, hooks and content-type parsers of
 * that context and of its children answer with the one error body shape.
 */
export function installErrorHandler(app: FastifyInstance, { bodyLimit, delegateForeignErrors }: Omit<ErrorHandlingOptions, 'docsUrl'>): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    // Thrown from an error handler, an error goes to the parent context's handler.
    if (delegateForeignErrors && isForeignClientError(error)) throw error;
    const answer = toHttpError(error, bodyLimit);
    if (answer.status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
}

/** Answers URLs no route serves (below `app`'s prefix) with 404 `OAO_ERR_ROUTE_NOT_FOUND`. */
export function installNotFoundHandler(app: FastifyInstance, { docsUrl }: Pick<ErrorHandlingOptions, 'docsUrl'>): void {
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const url = (request.url.split('?', 1)[0] ?? request.url).slice(0, 200);
    return reply
      .code(ROUTE_NOT_FOUND.status)
      .send(errorBody(ROUTE_NOT_FOUND.code, `No route serves ${request.method} ${url}; the API is described at ${docsUrl}`, { method: request.method, url }));
  });
}
