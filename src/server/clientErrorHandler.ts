import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { registryError, type HttpError } from './httpErrors.js';

/**
 * Answers what Node's HTTP parser refuses before any route is chosen, in the API's one error body
 * shape instead of Fastify's default: 431 `OAO_ERR_HEADERS_TOO_LARGE` when the request line and
 * headers are over Node's `maxHeaderSize` (16 KiB by default: Node answers an over-long URL with
 * 431, never 414), 408 `OAO_ERR_REQUEST_TIMEOUT` when they do not arrive in time, and 400
 * `OAO_ERR_INVALID_ARGUMENT` for anything else that is not HTTP, such as the bytes after a body
 * that is longer than its Content-Length. The connection is closed after the answer.
 *
 * `createServer` installs it. A Fastify app that embeds `oaoPlugin` decides this for itself, at
 * the root: `Fastify({ clientErrorHandler: oaoClientErrorHandler })`.
 */
export function oaoClientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection is gone: there is no one to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const answer =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? registryError('OAO_ERR_HEADERS_TOO_LARGE', 'The request line and headers are over the server\'s limit (Node\'s maxHeaderSize, 16 KiB by default)')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? registryError('OAO_ERR_REQUEST_TIMEOUT', 'The request did not arrive in full in time')
        : registryError('OAO_ERR_INVALID_ARGUMENT', 'The request is not valid HTTP (a malformed request line or header, or a body longer than its Content-Length)', {
            field: 'request',
          });
  const body = JSON.stringify(answer.body);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Error'}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(error);
}

/**
 * Answers the router's own refusals in the API's error body shape (Fastify's `frameworkErrors`):
 * a URL whose percent-encoding is broken (`/runs/%ff`) is 400 `OAO_ERR_INVALID_ARGUMENT`, and a
 * path parameter over the router's `maxParamLength` is 404 `OAO_ERR_ROUTE_NOT_FOUND` (no run has
 * such an id). `createServer` installs it; in your own app, `Fastify({ frameworkErrors:
 * oaoFrameworkErrors })`.
 */
export function oaoFrameworkErrors(error: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply): void {
  const path = request.raw.url ?? '';
  const answer: HttpError =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? registryError('OAO_ERR_ROUTE_NOT_FOUND', 'No route serves that path: a path parameter is longer than any run id', { method: request.raw.method, path: path.slice(0, 200) })
      : registryError('OAO_ERR_INVALID_ARGUMENT', 'The URL is not valid: a percent-encoded sequence does not decode', { field: 'url' });
  void reply.code(answer.status).headers(answer.headers).type('application/json; charset=utf-8').send(JSON.stringify(answer.body));
}

/**
 * Answers a request whose `Expect` header asks for something other than `100-continue` (Node's
 * `checkExpectation` event) with 417 `OAO_ERR_EXPECTATION_FAILED` in the API's error body shape,
 * instead of Node's empty 417. `createServer` installs it on its HTTP server.
 */
export function oaoCheckExpectation(request: IncomingMessage, response: ServerResponse): void {
  const answer = registryError('OAO_ERR_EXPECTATION_FAILED', `The server does not support the expectation "${String(request.headers.expect).slice(0, 100)}"`, {
    field: 'headers.expect',
  });
  const body = JSON.stringify(answer.body);
  response.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  response.end(body);
}
