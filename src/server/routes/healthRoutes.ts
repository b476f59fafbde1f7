import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { RUNTIME_VERSION } from '../../version.js';
import { healthResponseSchema } from '../schemas.js';
import { jsonResponse } from './errorResponses.js';

/** GET /health: always open (no API key), so load balancers and `oao` can probe the server. */
export const healthRoutes: FastifyPluginCallbackZod = (app, _options, done) => {
  app.get(
    '/health',
    {
      schema: {
        operationId: 'health',
        tags: ['service'],
        summary: 'Liveness probe; needs no API key',
        security: [],
        response: { 200: jsonResponse('The server is up', healthResponseSchema) },
      },
    },
    () => ({ status: 'ok' as const, version: RUNTIME_VERSION }),
  );
  done();
};
