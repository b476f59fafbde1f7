import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { RunService } from '../RunService.js';
import { agentsResponseSchema } from '../schemas.js';
import { errorResponses, jsonResponse } from './errorResponses.js';

/** GET /agents: the names requests may use, with descriptions where the agents have them. */
export const agentRoutes: FastifyPluginCallbackZod<{ service: RunService }> = (app, { service }, done) => {
  app.get(
    '/agents',
    {
      schema: {
        operationId: 'listAgents',
        tags: ['agents'],
        summary: 'The agents this server runs',
        response: { 200: jsonResponse('Registered agents', agentsResponseSchema), ...errorResponses(401) },
      },
    },
    () => ({ agents: service.agents() }),
  );
  done();
};
