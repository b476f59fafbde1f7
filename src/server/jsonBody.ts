import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OaoError } from '../errors.js';

/**
 * Makes `application/json` in UTF-8 the only body this context reads: every other content type
 * (text/plain, forms, multipart, ...) and every other charset is refused with 415
 * `OAO_ERR_UNSUPPORTED_MEDIA_TYPE` before its body is parsed. Content-type parsers are
 * encapsulated, so this changes nothing for the routes of the app around the API.
 *
 * JSON-only also keeps browsers' cross-site "simple" requests (a form post, a text/plain fetch)
 * from starting runs on a server without API keys.
 */
export function acceptJsonBodiesOnly(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (request, body, done) => {
    try {
      checkCharset(request);
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}

/**
 * `JSON.parse`, which defines every key as an own data property: a `__proto__` key is data like
 * any other and never sets a prototype (no prototype-poisoning check is needed, and none refuses
 * valid JSON).
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0) {
    throw new OaoError('OAO_ERR_INVALID_JSON', 'The request body is empty, but its Content-Type says JSON');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new OaoError('OAO_ERR_INVALID_JSON', 'The request body is not valid JSON');
  }
}

/** `charset=utf-8` (any case, quoted or not, or its alias `utf8`) or none; anything else would be misread. */
function checkCharset(request: FastifyRequest): void {
  const header = request.headers['content-type'] ?? '';
  const charset = charsetOf(header);
  if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return;
  throw new OaoError(
    'OAO_ERR_UNSUPPORTED_MEDIA_TYPE',
    `The request body is sent as charset=${charset.slice(0, 40)}; this API reads JSON in UTF-8 only (Content-Type: application/json; charset=utf-8)`,
    { details: { field: 'headers.content-type' } },
  );
}

/** The charset parameter of a Content-Type, lower-cased and unquoted; undefined when absent. */
export function charsetOf(contentType: string): string | undefined {
  for (const parameter of contentType.split(';').slice(1)) {
    const equals = parameter.indexOf('=');
    if (equals < 0) continue;
    if (parameter.slice(0, equals).trim().toLowerCase() !== 'charset') continue;
    return parameter
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
  }
  return undefined;
}
