import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { registryError } from './httpErrors.js';

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
