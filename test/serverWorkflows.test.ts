import { afterEach, describe, expect, it } from 'vitest';
import { OaoError, defineWorkflow, workflowEventSchema, type AgentContext, type WorkflowEvent, type WorkflowResult } from '../src/index.js';
import { createServer, startServer, type StartedServer } from '../src/server/index.js';
import { createGates } from './helpers.js';

const T = 20_000;
const gates = createGates();

const echo = { name: 'echo', invoke: (task: unknown) => ({ output: task, usage: { input: 1, output: 1 } }) };
const gatedSignals: AbortSignal[] = [];
const gated = {
  name: 'gated',
  async invoke(task: unknown, ctx: AgentContext) {
    gatedSignals.push(ctx.signal);
    await new Promise<void>((resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
      void gates.gate('gated').promise.then(resolve);
    });
    return { output: task };
  },
};
const pair = defineWorkflow({
  id: 'pair',
  nodes: {
    first: { agent: echo, task: ({ input }) => `first ${String(input.topic)}` },
    wait: { agent: gated, needs: ['first'], task: ({ results }) => results.first.finalOutput },
    skipped: { agent: echo, needs: ['first'], when: () => false },
  },
});
const workflows = { pair };

const started: StartedServer[] = [];
afterEach(async () => {
  gates.openAll();
  gates.clear();
  await Promise.all(started.splice(0).map((server) => server.close()));
});

/** Reads an SSE body to its end; returns the workflow events it carried. */
async function readEvents(url: string): Promise<WorkflowEvent[]> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const text = await response.text();
  return text
    .split('\n\n')
    .map((block) => block.split('\n').find((line) => line.startsWith('data: ')))
    .filter((line): line is string => line !== undefined)
    .map((line) => workflowEventSchema.parse(JSON.parse(line.slice(6))));
}

describe('workflows over HTTP', () => {
  it('starts a run (202), streams its events as SSE until WORKFLOW_COMPLETE, and serves its result', async () => {
    const server = await startServer({ agents: { echo }, workflows, port: 0 });
    started.push(server);
    const list = (await (await fetch(`${server.url}/workflows`)).json()) as { workflows: { name: string; shape: { nodes: { name: string; needs: string[] }[] } }[] };
    expect(list.workflows[0]?.name).toBe('pair');
    expect(list.workflows[0]?.shape.nodes.map((node) => node.name)).toEqual(['first', 'wait', 'skipped']);

    const response = await fetch(`${server.url}/workflows/pair/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: { topic: 'AI' }, maxConcurrency: 2 }),
    });
    expect(response.status).toBe(202);
    const body = (await response.json()) as { workflowRunId: string; statusUrl: string; eventsUrl: string };
    expect(response.headers.get('location')).toBe(body.statusUrl);
    const running = (await (await fetch(`${server.url}${body.statusUrl}`)).json()) as { status: string; nodes: Record<string, string> };
    expect(running.status).toBe('running');
    const eventsDone = readEvents(`${server.url}${body.eventsUrl}`);
    gates.gate('gated').resolve();
    const events = await eventsDone;
    expect(events[0]?.type).toBe('WORKFLOW_START');
    expect(events[events.length - 1]?.type).toBe('WORKFLOW_COMPLETE');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
    const view = (await (await fetch(`${server.url}${body.statusUrl}`)).json()) as { status: string; nodes: Record<string, string>; result: WorkflowResult };
    expect(view.status).toBe('SUCCESS');
    expect(view.nodes).toEqual({ first: 'SUCCESS', wait: 'SUCCESS', skipped: 'SKIPPED' });
    expect(view.result.nodes.wait?.report?.finalOutput).toBe('first AI');
    // A node's run is a run of the server: GET /runs/:id has it.
    const runId = view.result.nodes.first?.report?.executionId as string;
    const run = await fetch(`${server.url}/runs/${runId}`);
    expect(run.status).toBe(200);
  }, T);

  it('answers bad input with typed 4xx errors, never a 500', async () => {
    const app = await createServer({ agents: { echo }, workflows, logger: false });
    try {
      const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
      const unknown = await post('/workflows/nope/runs', {});
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toMatchObject({ error: { code: 'OAO_ERR_UNKNOWN_WORKFLOW', details: { workflows: ['pair'] } } });
      for (const bad of [{ maxConcurrency: 0 }, { onFailure: 'explode' }, { budget: { maxTokens: -1 } }, { extra: true }]) {
        const answer = await post('/workflows/pair/runs', bad);
        expect(answer.statusCode, JSON.stringify(bad)).toBe(400);
        expect(answer.json().error.code).toMatch(/^OAO_ERR_/);
      }
      // The dashboard's workflow view is served next to the runs page.
      for (const file of ['workflows.html', 'workflows.js']) expect((await app.inject({ method: 'GET', url: `/dashboard/${file}` })).statusCode, file).toBe(200);
      const missing = await app.inject({ method: 'GET', url: '/workflow-runs/nope' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('OAO_ERR_RUN_NOT_FOUND');
    } finally {
      await app.close();
    }
    await expect(createServer({ agents: { echo }, workflows: { bad: { id: 'x' } as never }, logger: false })).rejects.toSatisfy(
      (error: unknown) => OaoError.isInstance(error) && error.code === 'OAO_ERR_INVALID_WORKFLOW',
    );
  }, T);

  it('cancels the workflow runs still going when the server closes', async () => {
    const app = await createServer({ agents: { echo }, workflows, logger: false });
    const started = await app.inject({ method: 'POST', url: '/workflows/pair/runs', headers: { 'content-type': 'application/json' }, payload: '{"input":{"topic":"x"}}' });
    const { workflowRunId } = started.json<{ workflowRunId: string }>();
    let view = (await app.inject({ method: 'GET', url: `/workflow-runs/${workflowRunId}` })).json<{ nodes: Record<string, string> }>();
    for (let i = 0; i < 20 && view.nodes.wait !== 'running'; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      view = (await app.inject({ method: 'GET', url: `/workflow-runs/${workflowRunId}` })).json<{ nodes: Record<string, string> }>();
    }
    expect(view.nodes.wait).toBe('running');
    const signal = gatedSignals[gatedSignals.length - 1];
    expect(signal?.aborted).toBe(false);
    await app.close();
    // The gate was never opened: closing the server cancelled the running node.
    expect(signal?.aborted).toBe(true);
  }, T);
});
