import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { RunService } from '../RunService.js';
import { whatIfRequestSchema, whatIfResponseSchema } from '../schemas.js';
import { errorResponses, jsonResponse } from './errorResponses.js';

/** POST /what-if: a policy evaluated against the recorded runs, from their logs alone. */
export const whatIfRoutes: FastifyPluginCallbackZod<{ service: RunService }> = (app, { service }, done) => {
  app.post(
    '/what-if',
    {
      schema: {
        operationId: 'whatIf',
        tags: ['runs'],
        summary: 'Evaluate a policy against recorded runs',
        description:
          'For each run in the store (filtered by `agent`, `since` and `until`), or each run named in `runs`: whether it would have ended ' +
          'the same way under `policy`, where the policy would have stopped it (`wouldStop`: the event\'s `seq` and the rule) and what ' +
          'stopping there would have saved. Read from the runs\' event logs alone: no agent, tool or model is called, and nothing is ' +
          'started. `policy` is taken as it is, not narrowed by the server\'s.',
        body: whatIfRequestSchema,
        response: { 200: jsonResponse('One verdict per run, and the totals', whatIfResponseSchema), ...errorResponses(400, 401, 404, 413, 415, 503) },
      },
    },
    (request) => service.whatIf(request.body),
  );
  done();
};
