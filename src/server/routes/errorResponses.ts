import { errorBodySchema } from '../schemas.js';

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 503;

const DESCRIPTIONS: Readonly<Record<ErrorStatus, string>> = {
  400: 'Invalid input (OAO_ERR_INVALID_JSON, OAO_ERR_INVALID_ARGUMENT or OAO_ERR_INVALID_POLICY); `details.field` names the field',
  401: 'OAO_ERR_UNAUTHORIZED: the server needs an API key',
  403: 'OAO_ERR_FORBIDDEN: this API key may not do this',
  404: 'OAO_ERR_UNKNOWN_AGENT, OAO_ERR_RUN_NOT_FOUND or OAO_ERR_UNKNOWN_TENANT',
  409: 'The run\'s state does not allow it now (the code says why)',
  413: "OAO_ERR_PAYLOAD_TOO_LARGE: the body is over the server's limit",
  415: 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE: the body is not `application/json` in UTF-8',
  429: "OAO_ERR_TOO_MANY_RUNS: the server runs as many runs as it allows; or OAO_ERR_TENANT_BUDGET: the API key's tenant has spent its budget for the window. Retry after `Retry-After` seconds",
  503: 'OAO_ERR_STORE_UNAVAILABLE: the run store cannot serve the request now (`details.cause` names why); retry later',
};

interface ErrorResponse {
  readonly description: string;
  readonly content: { readonly 'application/json': { readonly schema: typeof errorBodySchema } };
}

/** The documented error answers of a route, each with the one error body shape. */
export function errorResponses(...statuses: readonly ErrorStatus[]): Record<number, ErrorResponse> {
  const responses: Record<number, ErrorResponse> = {};
  for (const status of statuses) responses[status] = errorResponse(DESCRIPTIONS[status]);
  return responses;
}

/** One documented error answer, described for the route it belongs to. */
export function errorResponse(description: string): ErrorResponse {
  return { description, content: { 'application/json': { schema: errorBodySchema } } };
}

/** A success answer with a description, in the same form. */
export function jsonResponse<T>(description: string, schema: T): { description: string; content: { 'application/json': { schema: T } } } {
  return { description, content: { 'application/json': { schema } } };
}
