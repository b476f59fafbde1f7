// Raising the limits of a paused run over HTTP: POST /runs/:id/budget.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, ExecutionReport, StepResult } from '../src/index.js';
import { createServer, type ServerOptions } from '../src/server/index.js';

/** Runs until its review sees step 4. */
const stepper = {
  name: 'stepper',
  invoke: (input: number, _ctx: AgentContext) => ({ output: input }),
  review: (result: StepResult) => (result.step >= 4 ? { done: true as const } : { done: false as const, input: result.step + 1 }),
};

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function serve(options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const app = await createServer({
    agents: { stepper },
    policy: { maxSteps: 6, onLimit: { maxSteps: 'pause' } },
    apiKeys: [],
    dashboard: false,
    ...options,
  });
  apps.push(app);
  return app;
}

/** Polls until the run has run `steps` steps and stands in REVIEW: paused there, since its review answers at once. */
async function paused(app: FastifyInstance, id: string, steps: number, headers: Record<string, string> = {}): Promise<void> {
  for (;;) {
    const answer = await app.inject({ method: 'GET', url: `/runs/${id}`, headers });
    const run = answer.json<{ state: string | null; counters: { steps: number } }>();
    if (run.state === 'REVIEW' && run.counters.steps === steps) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function report(app: FastifyInstance, id: string, headers: Record<string, string> = {}): Promise<ExecutionReport> {
  for (;;) {
    const answer = await app.inject({ method: 'GET', url: `/runs/${id}`, headers });
    const body = answer.json<{ report?: ExecutionReport | null }>();
    if (body.report) return body.report;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('POST /runs/:id/budget', () => {
  it('raises a paused run within the server policy, and it goes on', { timeout: 20_000 }, async () => {
    const app = await serve();
    const started = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'stepper', task: 1, executionId: 'b1', policy: { maxSteps: 2 } } });
    expect(started.statusCode, started.body).toBe(202);
    await paused(app, 'b1', 2);
    const tooHigh = await app.inject({ method: 'POST', url: '/runs/b1/budget', payload: { limits: { maxSteps: 7 } } });
    expect(tooHigh.statusCode).toBe(400);
    expect(tooHigh.json()).toMatchObject({ error: { code: 'OAO_ERR_INVALID_ARGUMENT' } });
    const empty = await app.inject({ method: 'POST', url: '/runs/b1/budget', payload: { limits: {} } });
    expect(empty.statusCode).toBe(400);
    const raised = await app.inject({ method: 'POST', url: '/runs/b1/budget', payload: { limits: { maxSteps: 4 }, by: 'ops', reason: 'fine' } });
    expect(raised.statusCode, raised.body).toBe(200);
    expect(raised.json()).toEqual({ executionId: 'b1', limits: { maxSteps: 4 }, by: 'ops', reason: 'fine', applied: 'live' });
    const done = await report(app, 'b1');
    expect(done.status).toBe('SUCCESS');
    expect(done.totalSteps).toBe(4);
    const again = await app.inject({ method: 'POST', url: '/runs/b1/budget', payload: { limits: { maxSteps: 5 } } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: { code: 'OAO_ERR_ALREADY_DECIDED' } });
    const unknown = await app.inject({ method: 'POST', url: '/runs/nope/budget', payload: { limits: { maxSteps: 5 } } });
    expect(unknown.statusCode).toBe(404);
  });

  it('only approver keys may raise; the key name is recorded', { timeout: 20_000 }, async () => {
    const app = await serve({ apiKeys: [{ name: 'ops', key: 'k-ops' }, { name: 'dev', key: 'k-dev' }], approverKeys: ['ops'] });
    const ops = { authorization: 'Bearer k-ops' };
    const started = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'stepper', task: 1, executionId: 'b2', policy: { maxSteps: 1 } }, headers: ops });
    expect(started.statusCode, started.body).toBe(202);
    await paused(app, 'b2', 1, ops);
    const denied = await app.inject({ method: 'POST', url: '/runs/b2/budget', payload: { limits: { maxSteps: 4 } }, headers: { authorization: 'Bearer k-dev' } });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({ error: { code: 'OAO_ERR_FORBIDDEN' } });
    const raised = await app.inject({ method: 'POST', url: '/runs/b2/budget', payload: { limits: { maxSteps: 4 } }, headers: ops });
    expect(raised.statusCode, raised.body).toBe(200);
    expect(raised.json().by).toBe('ops');
    expect((await report(app, 'b2', ops)).status).toBe('SUCCESS');
  });
});
