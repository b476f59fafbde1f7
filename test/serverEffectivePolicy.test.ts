import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStore, executionReportSchema, type AgentContext } from '../src/index.js';
import { createServer, serverPolicyResponseSchema, type ServerOptions } from '../src/server/index.js';
import { createGates } from './helpers.js';

/**
 * A request's policy can only narrow the server's, and a limit above the server's is lowered
 * rather than refused. The answer says which limits applied: `effectivePolicy` beside the report
 * (POST /runs, GET /runs/:id, POST /run-multi), never inside the hashed report; GET /policy shows
 * the server's own ceiling.
 */

const gates = createGates();
const agents = {
  echo: { invoke: (task: string) => ({ output: `echo: ${task}` }) },
  gated: {
    async invoke(task: string, ctx: AgentContext) {
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        void gates.gate(task).promise.then(resolve);
      });
      return { output: task };
    },
  },
};

const SERVER_POLICY = { maxSteps: 4, maxTokens: 1_000, maxToolCalls: 3, timeoutMs: 10_000, tools: { deny: ['shell'], maxCalls: { search: 2 } } };
/** Asks for more than the server allows in some limits, less in others. */
const GREEDY = { maxSteps: 99, maxTokens: 50, timeoutMs: 2_000_000, tools: { allow: ['search', 'shell'], maxCalls: { search: 9, fetch: 1 } } };
const EFFECTIVE = {
  maxSteps: 4,
  maxTokens: 50,
  maxToolCalls: 3,
  timeoutMs: 10_000,
  tools: { allow: ['search', 'shell'], deny: ['shell'], maxCalls: { search: 2, fetch: 1 } },
  retry: expect.any(Object),
};

const apps: FastifyInstance[] = [];
afterEach(async () => {
  gates.openAll();
  gates.clear();
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function build(options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const app = await createServer({ agents, policy: SERVER_POLICY, apiKeys: [], ...options });
  apps.push(app);
  return app;
}

function post(app: FastifyInstance, url: string, payload: unknown) {
  return app.inject({ method: 'POST', url, payload: payload as object });
}

async function settled(app: FastifyInstance, statusUrl: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const run = (await app.inject({ method: 'GET', url: statusUrl })).json();
    if (run.status !== 'running') return run;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${statusUrl} did not finish`);
}

describe('effectivePolicy beside the report', () => {
  it('POST /runs answers with the limits that apply, lowered where the request asked for more', async () => {
    const app = await build();
    const started = await post(app, '/runs', { agent: 'gated', task: 'held', policy: GREEDY });
    expect(started.statusCode).toBe(202);
    expect(started.json().effectivePolicy).toEqual(EFFECTIVE);
  });

  it('GET /runs/:id has them while the run runs and once it has finished; the report does not', async () => {
    const app = await build();
    const { statusUrl } = (await post(app, '/runs', { agent: 'gated', task: 'held', policy: GREEDY })).json();
    const live = (await app.inject({ method: 'GET', url: statusUrl })).json();
    expect(live).toMatchObject({ status: 'running', report: null, effectivePolicy: EFFECTIVE });

    gates.gate('held').resolve();
    const done = await settled(app, statusUrl);
    expect(done.effectivePolicy).toEqual(EFFECTIVE);
    const report = done.report as Record<string, unknown>;
    expect(Object.keys(report)).not.toContain('effectivePolicy');
    expect(Object.keys(report)).not.toContain('policy');
    expect(executionReportSchema.strict().safeParse(report).success).toBe(true);
  });

  it('POST /run answers with the bare report, as before; the limits are in GET /runs/:id', async () => {
    const app = await build();
    const answer = await post(app, '/run', { agent: 'echo', task: 'x', policy: GREEDY, executionId: 'bare-1' });
    expect(answer.statusCode).toBe(200);
    const report = answer.json();
    expect(executionReportSchema.strict().parse(report).finalOutput).toBe('echo: x');
    expect((await app.inject({ method: 'GET', url: '/runs/bare-1' })).json().effectivePolicy).toEqual(EFFECTIVE);
  });

  it('POST /run-multi answers with the limits every run of the batch ran under', async () => {
    const app = await build();
    const body = (await post(app, '/run-multi', { agents: ['echo'], task: 'x', policy: GREEDY })).json();
    expect(body.effectivePolicy).toEqual(EFFECTIVE);
    const child = (await app.inject({ method: 'GET', url: `/runs/${body.reports.echo.executionId}` })).json();
    expect(child.effectivePolicy).toEqual(EFFECTIVE);
  });

  it('without a request policy the server\'s own limits apply, and say so', async () => {
    const app = await build();
    const started = (await post(app, '/runs', { agent: 'echo', task: 'x' })).json();
    expect(started.effectivePolicy).toMatchObject({ maxSteps: 4, maxTokens: 1_000, tools: { allow: null, deny: ['shell'], maxCalls: { search: 2 } } });
  });

  it("come from the run's EXECUTION_START in the store: another server on the same store reads them too", async () => {
    const store = createMemoryStore();
    const app = await build({ store });
    await post(app, '/run', { agent: 'echo', task: 'x', policy: GREEDY, executionId: 'from-events' });
    const start = store.events('from-events')[0];
    expect(start?.type === 'EXECUTION_START' && start.payload.policy).toEqual(EFFECTIVE);
    await app.close();
    const later = await build({ store });
    expect((await later.inject({ method: 'GET', url: '/runs/from-events' })).json().effectivePolicy).toEqual(EFFECTIVE);
  });
});

describe('GET /policy: the server\'s own ceiling', () => {
  it('answers the server\'s policy and limits', async () => {
    const app = await build({ maxConcurrency: 3, limits: { bodyLimit: 5_000, maxTaskLength: 700, maxConcurrentRuns: 9 } });
    const answer = await app.inject({ method: 'GET', url: '/policy' });
    expect(answer.statusCode).toBe(200);
    const body = serverPolicyResponseSchema.parse(answer.json());
    expect(body).toEqual({
      policy: { ...EFFECTIVE, maxTokens: 1_000, tools: { allow: null, deny: ['shell'], maxCalls: { search: 2 } } },
      maxConcurrency: 3,
      limits: { bodyLimit: 5_000, maxTaskLength: 700, maxConcurrentRuns: 9, maxExecutionIdLength: 128 },
    });
  });

  it('needs an API key when the server has keys', async () => {
    const app = await build({ apiKeys: ['k'] });
    expect((await app.inject({ method: 'GET', url: '/policy' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/policy', headers: { authorization: 'Bearer k' } })).statusCode).toBe(200);
  });

  it('is documented, and effectivePolicy is in the schemas of the answers that carry it', async () => {
    const app = await build();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.paths['/policy'].get.responses['200']).toBeDefined();
    const started = doc.paths['/runs'].post.responses['202'].content['application/json'].schema;
    expect(started.required).toContain('effectivePolicy');
    expect(doc.components.schemas.Run.properties.effectivePolicy).toBeDefined();
    expect(doc.components.schemas.PolicyLimits).toBeDefined();
    const multi = doc.paths['/run-multi'].post.responses['200'].content['application/json'].schema;
    expect(multi.required).toContain('effectivePolicy');
    expect(doc.components.schemas.ExecutionReport.properties.effectivePolicy).toBeUndefined();
  });
});
