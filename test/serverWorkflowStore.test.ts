import { describe, expect, it } from 'vitest';
import { canonicalJson, createMemoryStore, defineWorkflow, Orchestrator, workflowEventSchema, type AgentContext, type WorkflowResult } from '../src/index.js';
import { createServer, startServer } from '../src/server/index.js';

/** GET /workflow-runs/:id from the store: a workflow run of an earlier server process. */

const T = 20_000;
const echo = { name: 'echo', invoke: (task: unknown) => ({ output: task }) };
const stuck = {
  name: 'stuck',
  invoke: (_task: unknown, ctx: AgentContext) => new Promise<never>((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true })),
};
const pair = defineWorkflow({
  id: 'pair',
  nodes: {
    first: { agent: echo, task: ({ input }) => `first ${String(input)}` },
    second: { agent: echo, needs: ['first'], task: ({ results }) => results.first.finalOutput },
  },
});
const hanging = defineWorkflow({
  id: 'hanging',
  nodes: { first: { agent: echo }, wait: { agent: stuck, needs: ['first'] } },
});

describe('workflow runs served from the store', () => {
  it('serves a finished workflow run after a restart, with its result rebuilt from the logs', async () => {
    const store = createMemoryStore();
    const before = await createServer({ agents: { echo }, workflows: { pair }, store, logger: false });
    let workflowRunId: string;
    let result: WorkflowResult;
    try {
      const started = await before.inject({ method: 'POST', url: '/workflows/pair/runs', headers: { 'content-type': 'application/json' }, payload: '{"input":"x"}' });
      expect(started.statusCode).toBe(202);
      workflowRunId = started.json<{ workflowRunId: string }>().workflowRunId;
      let view = (await before.inject({ method: 'GET', url: `/workflow-runs/${workflowRunId}` })).json<{ status: string; result: WorkflowResult | null }>();
      for (let i = 0; i < 200 && view.result === null; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        view = (await before.inject({ method: 'GET', url: `/workflow-runs/${workflowRunId}` })).json<{ status: string; result: WorkflowResult | null }>();
      }
      expect(view.status).toBe('SUCCESS');
      result = view.result as WorkflowResult;
    } finally {
      await before.close();
    }

    const after = await createServer({ agents: { echo }, workflows: { pair }, store, logger: false });
    try {
      const response = await after.inject({ method: 'GET', url: `/workflow-runs/${workflowRunId}` });
      expect(response.statusCode).toBe(200);
      const view = response.json<{ status: string; workflow: string; nodes: Record<string, string>; shape: { id: string }; result: WorkflowResult }>();
      expect(view).toMatchObject({ status: 'SUCCESS', workflow: 'pair', nodes: { first: 'SUCCESS', second: 'SUCCESS' }, shape: { id: 'pair' } });
      expect(canonicalJson(view.result as never)).toBe(canonicalJson(result as never));
      const missing = await after.inject({ method: 'GET', url: '/workflow-runs/never-ran' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json<{ error: { code: string } }>().error.code).toBe('OAO_ERR_RUN_NOT_FOUND');
    } finally {
      await after.close();
    }
  }, T);

  it("streams a stored workflow run's log as Server-Sent Events after a restart", async () => {
    const store = createMemoryStore();
    await new Orchestrator({ store }).runWorkflow(pair, 'y', { workflowRunId: 'wf-sse' });
    const server = await startServer({ agents: { echo }, workflows: { pair }, store, port: 0 });
    try {
      const response = await fetch(`${server.url}/workflow-runs/wf-sse/events`);
      expect(response.status).toBe(200);
      const events = (await response.text())
        .split('\n\n')
        .map((block) => block.split('\n').find((line) => line.startsWith('data: ')))
        .filter((line): line is string => line !== undefined)
        .map((line) => workflowEventSchema.parse(JSON.parse(line.slice(6))));
      expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index));
      expect(events[0]?.type).toBe('WORKFLOW_START');
      expect(events.at(-1)?.type).toBe('WORKFLOW_COMPLETE');
      expect((await fetch(`${server.url}/workflow-runs/never-ran/events`)).status).toBe(404);
    } finally {
      await server.close();
    }
  }, T);

  it('says interrupted for a stored workflow run that no process finished', async () => {
    const store = createMemoryStore();
    const dying = new Orchestrator({ store });
    const handle = dying.startWorkflow(hanging, 'x', { workflowRunId: 'wf-cut' });
    for (let i = 0; i < 200 && handle.nodes().wait !== 'running'; i++) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const server = await createServer({ agents: { echo }, workflows: { hanging }, store, logger: false });
    try {
      const view = (await server.inject({ method: 'GET', url: '/workflow-runs/wf-cut' })).json<{ status: string; nodes: Record<string, string>; result: unknown }>();
      expect(view).toMatchObject({ status: 'interrupted', nodes: { first: 'SUCCESS', wait: 'running' }, result: null });
    } finally {
      await server.close();
      handle.cancel();
      await handle.result;
    }
  }, T);
});
