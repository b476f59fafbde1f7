import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { streamRunEvents, type SseStream } from './sse.js';
import { errorResponses, jsonResponse } from './routes/errorResponses.js';
import type { WorkflowService } from './WorkflowService.js';

const nameParamsSchema = z.object({ name: z.string().min(1).max(200) });
const runIdParamsSchema = z.object({ id: z.string().min(1).max(256) });

const budgetSchema = z.strictObject({
  maxSteps: z.number().int().positive().optional(),
  maxTokens: z.number().int().nonnegative().optional(),
  maxToolCalls: z.number().int().nonnegative().optional(),
  timeoutMs: z.number().int().positive().max(2_147_483_647).optional(),
});

export const workflowRunRequestSchema = z.strictObject({
  /** The workflow's input (JSON). @default null */
  input: z.unknown().optional(),
  maxConcurrency: z.number().int().positive().optional(),
  onFailure: z.enum(['skip-dependents', 'fail-fast']).optional(),
  budget: budgetSchema.optional(),
});

const shapeSchema = z.object({
  id: z.string(),
  nodes: z.array(
    z.object({
      name: z.string(),
      agent: z.string(),
      needs: z.array(z.string()),
      fanOut: z.boolean(),
      conditional: z.boolean(),
      policy: z.string().nullable(),
      tools: z.array(z.string()),
    }),
  ),
});

const startedSchema = z.object({
  workflowRunId: z.string(),
  workflow: z.string(),
  status: z.literal('running'),
  statusUrl: z.string(),
  eventsUrl: z.string(),
});

const viewSchema = z.object({
  workflowRunId: z.string(),
  workflow: z.string(),
  status: z.enum(['running', 'interrupted', 'SUCCESS', 'FAILED']),
  nodes: z.record(z.string(), z.string()),
  shape: shapeSchema,
  result: z.record(z.string(), z.unknown()).nullable(),
});

/**
 * The workflow resources: list the registered workflows, start a run (202), look at one, follow
 * its events as Server-Sent Events. Bad input is a typed 400; an unknown workflow 404.
 */
export const workflowRoutes: FastifyPluginCallbackZod<{ workflows: WorkflowService; basePath: string }> = (app, { workflows, basePath }, done) => {
  const streams = new Set<SseStream>();
  app.addHook('preClose', (closing) => {
    for (const stream of streams) stream.end();
    workflows.close();
    closing();
  });

  app.get(
    '/workflows',
    {
      schema: {
        operationId: 'listWorkflows',
        tags: ['workflows'],
        summary: 'The workflows this server runs, with their nodes and edges',
        response: { 200: jsonResponse('The registered workflows', z.object({ workflows: z.array(z.object({ name: z.string(), shape: shapeSchema })) })), ...errorResponses(401) },
      },
    },
    () => ({ workflows: workflows.list().map(({ name, shape }) => ({ name, shape: { id: shape.id, nodes: shape.nodes.map((node) => ({ ...node, needs: [...node.needs], tools: [...node.tools] })) } })) }),
  );

  app.post(
    '/workflows/:name/runs',
    {
      schema: {
        operationId: 'startWorkflowRun',
        tags: ['workflows'],
        summary: 'Start a workflow run and return at once',
        description:
          'Answers 202 with the workflow run\'s id and where to follow it. `maxConcurrency` is capped by the server\'s. Every node run is ' +
          'a run of this server, listed by GET /runs. An unknown workflow is OAO_ERR_UNKNOWN_WORKFLOW (404); bad input a typed 400.',
        params: nameParamsSchema,
        body: workflowRunRequestSchema,
        response: { 202: jsonResponse('The workflow run started', startedSchema), ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request, reply) => {
      const { workflowRunId, workflow } = workflows.start(request.params.name, request.body);
      const statusUrl = `${basePath}/workflow-runs/${encodeURIComponent(workflowRunId)}`;
      return reply.code(202).header('location', statusUrl).send({ workflowRunId, workflow, status: 'running' as const, statusUrl, eventsUrl: `${statusUrl}/events` });
    },
  );

  app.get(
    '/workflow-runs/:id',
    {
      schema: {
        operationId: 'getWorkflowRun',
        tags: ['workflows'],
        summary: 'A workflow run: its nodes\' statuses now, and its result once it has finished',
        description:
          'Served from memory while this server keeps the run, else from the store (a run of an earlier process): its result rebuilt from the logs, ' +
          'or status `interrupted` for one whose process died before it finished.',
        params: runIdParamsSchema,
        response: { 200: jsonResponse('The workflow run', viewSchema), ...errorResponses(401, 404) },
      },
    },
    async (request) => {
      const view = await workflows.get(request.params.id);
      return { ...view, shape: { id: view.shape.id, nodes: view.shape.nodes.map((node) => ({ ...node, needs: [...node.needs], tools: [...node.tools] })) }, result: view.result as Record<string, unknown> | null };
    },
  );

  app.get(
    '/workflow-runs/:id/events',
    {
      schema: {
        operationId: 'streamWorkflowRunEvents',
        tags: ['workflows'],
        summary: 'Follow a workflow run\'s events (Server-Sent Events)',
        description:
          'Each message is `id: <seq>`, `event: <type>`, `data: <the workflow event as JSON>`: the events so far, then live ones; closes after WORKFLOW_COMPLETE. ' +
          'A workflow run this server process does not hold is read from the store: its stored log (its own events, numbered as stored), then the stream closes.',
        params: runIdParamsSchema,
        response: { 200: { description: 'An event stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errorResponses(401, 404) },
      },
    },
    async (request, reply) => {
      const events$ = await workflows.events$(request.params.id);
      reply.hijack();
      const stream = streamRunEvents(reply.raw, events$, -1, (ended) => streams.delete(ended));
      if (!stream.ended) streams.add(stream);
      return reply;
    },
  );
  done();
};
