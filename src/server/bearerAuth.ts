import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { OaoError } from '../errors.js';
import type { ApiKey } from './serverOptions.js';

/** The key each request that passed {@link bearerAuth} was let through with. */
const keyOfRequest = new WeakMap<FastifyRequest, ApiKey>();

/**
 * An onRequest hook that lets a request through only with `Authorization: Bearer <key>` for one of
 * `keys`. Keys are compared as SHA-256 digests with `timingSafeEqual`, against every key without
 * stopping at a match, so the time taken tells nothing about a key's content or length. The key a
 * request came with is then known to the routes ({@link requestKey}).
 */
export function bearerAuth(keys: readonly ApiKey[]): (request: FastifyRequest) => Promise<void> {
  const digests = keys.map((apiKey) => ({ apiKey, digest: digest(apiKey.key) }));
  return (request) => {
    const header = request.headers.authorization;
    if (header === undefined || header.length === 0) {
      return Promise.reject(new OaoError('OAO_ERR_UNAUTHORIZED', 'This server needs an API key: send Authorization: Bearer <key>'));
    }
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const presented = digest(match?.[1] ?? '');
    let matched: ApiKey | undefined;
    for (const expected of digests) {
      const equal = timingSafeEqual(presented, expected.digest);
      matched = equal ? expected.apiKey : matched;
    }
    if (match === null || matched === undefined) {
      return Promise.reject(
        new OaoError('OAO_ERR_UNAUTHORIZED', 'The API key is not valid: send Authorization: Bearer <key> with a key this server accepts'),
      );
    }
    keyOfRequest.set(request, matched);
    return Promise.resolve();
  };
}

/** The API key a request was let through with; undefined on a server without keys. */
export function requestKey(request: FastifyRequest): ApiKey | undefined {
  return keyOfRequest.get(request);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
