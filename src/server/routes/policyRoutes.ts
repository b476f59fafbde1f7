import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { RunService } from '../RunService.js';
import { serverPolicyResponseSchema } from '../schemas.js';
import { errorResponses, jsonResponse } from './errorResponses.js';

/**
 * GET /policy: the server's own limits, the most any request can get. Clients (the dashboard's
 * form among them) show them, so that a requested limit above them is no surprise.
 */
export const policyRoutes: FastifyPluginCallbackZod<{ service: RunService }> = (app, { service }, done) => {
  app.get(
    '/policy',
    {
      schema: {
        operationId: 'getServerPolicy',
        tags: ['service'],
        summary: 'The server\'s policy and limits: the ceiling of every request',
        description:
          'A request\'s `policy` can only narrow `policy`: a larger limit is lowered to it (the answer of POST /runs and GET /runs/{id} ' +
          'says which limits applied in `effectivePolicy`).',
        response: { 200: jsonResponse('The server\'s policy and limits', serverPolicyResponseSchema), ...errorResponses(401) },
      },
    },
    () => service.limits(),
  );
  done();
};
