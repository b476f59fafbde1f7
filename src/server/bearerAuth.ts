import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { OaoError } from '../errors.js';

/**
 * An onRequest hook that lets a request through only with `Authorization: Bearer <key>` for one of
 * `keys`. Keys are compared as SHA-256 digests with `timingSafeEqual`, against every key without
 * stopping at a match, so the time taken tells nothing about a key's content or length.
 */
export function bearerAuth(keys: readonly string[]): (request: FastifyRequest) => Promise<void> {
  const digests = keys.map(digest);
  return (request) => {
    const header = request.headers.authorization;
    if (header === undefined || header.length === 0) {
      return Promise.reject(new OaoError('OAO_ERR_UNAUTHORIZED', 'This server needs an API key: send Authorization: Bearer <key>'));
    }
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const presented = digest(match?.[1] ?? '');
    let valid = false;
    for (const expected of digests) valid = timingSafeEqual(presented, expected) || valid;
    if (match === null || !valid) {
      return Promise.reject(
        new OaoError('OAO_ERR_UNAUTHORIZED', 'The API key is not valid: send Authorization: Bearer <key> with a key this server accepts'),
      );
    }
    return Promise.resolve();
  };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
