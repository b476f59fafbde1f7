import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { executionReportSchema } from '../../report/schema.js';
import type { RunService } from '../RunService.js';
import type { TenantBudgets } from '../../tenants/TenantBudgets.js';
import { admitTenant, chargeTenant, refundOnFailure, requestTenant } from './tenantRoutes.js';
import { runMultiRequestSchema, runMultiResponseSchema, runRequestSchema } from '../schemas.js';
import { errorResponses, jsonResponse } from './errorResponses.js';

/** POST /run and POST /run-multi: run and wait for the report(s). */
export const runRoutes: FastifyPluginCallbackZod<{ service: RunService; tenants?: TenantBudgets | undefined }> = (app, { service, tenants }, done) => {
  app.post(
    '/run',
    {
      schema: {
        operationId: 'runAgent',
        tags: ['runs'],
        summary: 'Run an agent and wait for its report',
        description:
          'Answers 200 with the ExecutionReport whatever the run did: its `status` and `termination` say how it ended. ' +
          'Pass your own `executionId` to watch the run live on GET /runs/{id}/events while this request waits. The body is the bare report; ' +
          'the limits the run ran under are in GET /runs/{id} (`effectivePolicy`) and in its EXECUTION_START event.',
        body: runRequestSchema,
        response: { 200: jsonResponse('The report of the finished run', executionReportSchema), ...errorResponses(400, 401, 404, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const ledger = await admitTenant(tenants, request, 1);
      const { finished } = await refundOnFailure(tenants, ledger, 1, service.start(request.body, requestTenant(tenants, request)));
      chargeTenant(tenants, ledger, finished);
      return finished;
    },
  );

  app.post(
    '/run-multi',
    {
      schema: {
        operationId: 'runMulti',
        tags: ['runs'],
        summary: 'Run several agents on one task, in parallel, and wait for every report',
        description:
          'At most `maxConcurrency` runs at once (never more than the server\'s); one report per agent (or per job name in the map form), ' +
          'whatever each run did. `effectivePolicy` is the limits every run of the batch ran under.',
        body: runMultiRequestSchema,
        response: { 200: jsonResponse('One report per job', runMultiResponseSchema), ...errorResponses(400, 401, 404, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const jobs = Array.isArray(request.body.agents) ? request.body.agents.length : Object.keys(request.body.agents).length;
      const ledger = await admitTenant(tenants, request, jobs);
      const answer = refundOnFailure(tenants, ledger, jobs, service.runMulti(request.body, requestTenant(tenants, request)));
      chargeTenant(tenants, ledger, answer.then((batch) => Object.values(batch.reports)));
      return answer;
    },
  );
  done();
};
