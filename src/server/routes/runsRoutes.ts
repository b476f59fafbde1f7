import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import type { RunService } from '../RunService.js';
import type { TenantBudgets } from '../../tenants/TenantBudgets.js';
import { admitTenant, chargeTenant, refundOnFailure, requestTenant } from './tenantRoutes.js';
import {
  cancelRequestSchema,
  cancelResponseSchema,
  runIdParamsSchema,
  runListQuerySchema,
  runListResponseSchema,
  runRequestSchema,
  runStateSchema,
  startRunResponseSchema,
} from '../schemas.js';
import { errorResponses, jsonResponse } from './errorResponses.js';

/**
 * The run resource: start without waiting, list, look at one, cancel one. `basePath` is where the
 * API is mounted (the prefix it is registered under, '' at the root): the URLs it answers with
 * start with it.
 */
export const runsRoutes: FastifyPluginCallbackZod<{ service: RunService; basePath: string; tenants?: TenantBudgets | undefined }> = (app, { service, basePath, tenants }, done) => {
  app.post(
    '/runs',
    {
      schema: {
        operationId: 'startRun',
        tags: ['runs'],
        summary: 'Start a run and return at once',
        description:
          'Answers 202 with the run\'s id, where to follow it (`Location` points at GET /runs/{id}), and `effectivePolicy`: the limits ' +
          'the run runs under, the server\'s policy narrowed by the request\'s (a requested limit above the server\'s is lowered, not refused).',
        body: runRequestSchema,
        response: { 202: jsonResponse('The run started', startRunResponseSchema), ...errorResponses(400, 401, 404, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const ledger = await admitTenant(tenants, request, 1);
      const { executionId, effectivePolicy, finished } = await refundOnFailure(tenants, ledger, 1, service.start(request.body, requestTenant(tenants, request)));
      chargeTenant(tenants, ledger, finished);
      const statusUrl = `${basePath}/runs/${encodeURIComponent(executionId)}`;
      return reply.code(202).header('location', statusUrl).send({
        executionId,
        status: 'running' as const,
        statusUrl,
        eventsUrl: `${statusUrl}/events`,
        cancelUrl: `${statusUrl}/cancel`,
        effectivePolicy,
      });
    },
  );

  app.get(
    '/runs',
    {
      schema: {
        operationId: 'listRuns',
        tags: ['runs'],
        summary: 'List runs, newest first',
        description:
          'Every run in the run store (also those of earlier server processes and of other processes on the same store). Page with ' +
          '`limit` and either `cursor` (the previous page\'s `nextCursor`) or `offset`; filter by `status` (`interrupted`: its process ' +
          'stopped before the run ended) and `agent`.',
        querystring: runListQuerySchema,
        response: { 200: jsonResponse('One page of runs', runListResponseSchema), ...errorResponses(400, 401, 503) },
      },
    },
    (request) => service.list(request.query),
  );

  app.get(
    '/runs/:id',
    {
      schema: {
        operationId: 'getRun',
        tags: ['runs'],
        summary: 'A run: live state and spend while it runs, its report once finished',
        description:
          '`effectivePolicy` holds the limits the run runs under, beside the report (the report itself is hashed and does not change). ' +
          'Read from the run\'s live events while this process runs it, else from its log in the run store.',
        params: runIdParamsSchema,
        response: { 200: jsonResponse('The run', runStateSchema), ...errorResponses(400, 401, 404, 503) },
      },
    },
    (request) => service.state(request.params.id),
  );

  app.post(
    '/runs/:id/cancel',
    {
      schema: {
        operationId: 'cancelRun',
        tags: ['runs'],
        summary: 'Cancel a run',
        description:
          'Answers 202 when this request cancelled the run (the body has its final status once it has stopped, which takes ' +
          'milliseconds), 200 when there was nothing to cancel (the run had already finished).',
        params: runIdParamsSchema,
        body: cancelRequestSchema,
        response: {
          200: jsonResponse('Nothing to cancel', cancelResponseSchema),
          202: jsonResponse('The run was cancelled', cancelResponseSchema),
          ...errorResponses(400, 401, 404, 413, 415, 503),
        },
      },
    },
    async (request, reply) => {
      const { settled: _settled, ...outcome } = await service.cancel(request.params.id, request.body?.reason ?? 'cancelled over HTTP');
      return reply.code(outcome.cancelled ? 202 : 200).send(outcome);
    },
  );
  done();
};
