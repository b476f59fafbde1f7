import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStore, type AgentContext, type OaoEvent, type StepResult } from '../src/index.js';
import { createServer, errorBodySchema, whatIfResponseSchema, type ServerOptions, type WhatIfResponse } from '../src/server/index.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';

/**
 * POST /what-if: runs recorded through the API, then a policy evaluated against them from their
 * logs. Verdicts, filters, bad bodies, keys and a store that cannot be read.
 */

const agents = {
  echo: (task: string) => `echo: ${task}`,
  /** Three steps, each one search and 100 tokens. */
  researcher: {
    async invoke(task: string, ctx: AgentContext) {
      await ctx.callTool('search', { q: task });
      ctx.usage(100);
      return `notes on ${task}`;
    },
    review: (result: StepResult) => ({ done: result.step === 3 }),
  },
  runaway: {
    invoke: (_task: string, ctx: AgentContext) => `step ${ctx.step}`,
    review: () => ({ done: false }),
  },
};
const tools = { search: () => 'hits' };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function build(options: Partial<ServerOptions> = {}): Promise<{ app: FastifyInstance; store: ReturnType<typeof createMemoryStore> }> {
  const store = createMemoryStore();
  const app = await createServer({ agents, tools, store, apiKeys: [], ...options });
  cleanups.push(() => app.close());
  return { app, store };
}

async function record(app: FastifyInstance, agent: string, executionId: string, policy?: object): Promise<void> {
  const response = await app.inject({ method: 'POST', url: '/run', payload: { agent, task: 'pricing', executionId, ...(policy === undefined ? {} : { policy }) } });
  expect(response.statusCode, response.body).toBe(200);
}

function whatIf(app: FastifyInstance, payload: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/what-if', payload: payload as object, headers });
}

function verdicts(response: LightMyRequestResponse): WhatIfResponse {
  expect(response.statusCode, response.body).toBe(200);
  return whatIfResponseSchema.parse(response.json());
}

function verdictOf(result: WhatIfResponse, executionId: string) {
  const run = result.runs.find((candidate) => candidate.executionId === executionId);
  if (run === undefined) throw new Error(`no verdict on ${executionId}`);
  return run;
}

function expectError(response: LightMyRequestResponse, status: number, code: string, field?: string): void {
  expect(response.statusCode, response.body).toBe(status);
  const { error } = errorBodySchema.parse(response.json());
  expect(error.code).toBe(code);
  if (field !== undefined) expect(error.details?.field).toBe(field);
}

/** The seq of the n-th (1-based) event of a type in a run's log. */
function seqOf(store: ReturnType<typeof createMemoryStore>, executionId: string, type: OaoEvent['type'], n: number): number {
  const events = store.events(executionId).filter((event) => event.type === type);
  const event = events[n - 1];
  if (event === undefined) throw new Error(`no ${type} #${n} in ${executionId}`);
  return event.seq;
}

describe('POST /what-if', () => {
  it('a narrower policy stops the recorded run where it would have, with the rule and what it saves', { timeout: 30_000 }, async () => {
    const { app, store } = await build();
    await record(app, 'researcher', 'research-1');
    await record(app, 'echo', 'echo-1');

    const fewerCalls = verdicts(await whatIf(app, { policy: { maxToolCalls: 2 } }));
    expect(fewerCalls.runs.map((run) => run.executionId)).toEqual(['echo-1', 'research-1']); // newest first
    const research = verdictOf(fewerCalls, 'research-1');
    expect(research).toMatchObject({
      agentName: 'researcher',
      same: false,
      wouldStop: { seq: seqOf(store, 'research-1', 'TOOL_CALL', 3), rule: 'max_tool_calls' },
      saved: { steps: 0, tokens: 100, toolCalls: 1 },
      recorded: { steps: 3, tokens: 300, toolCalls: 3, termination: { reason: 'completed' } },
    });
    expect(research.wouldStop?.message).toMatch(/maxToolCalls|tool calls/i);
    expect(verdictOf(fewerCalls, 'echo-1')).toMatchObject({ same: true, wouldStop: null, saved: { steps: 0, tokens: 0, toolCalls: 0 } });
    expect(fewerCalls.totals).toEqual({ runs: 2, same: 1, changed: 1, unknown: 0, saved: { steps: 0, tokens: 100, toolCalls: 1 } });

    const fewerSteps = verdicts(await whatIf(app, { policy: { maxSteps: 2 } }));
    expect(verdictOf(fewerSteps, 'research-1')).toMatchObject({
      same: false,
      wouldStop: { seq: seqOf(store, 'research-1', 'STEP_START', 3), rule: 'max_steps' },
      saved: { steps: 1, tokens: 100, toolCalls: 1 },
    });

    const fewerTokens = verdicts(await whatIf(app, { policy: { maxTokens: 150 } }));
    expect(verdictOf(fewerTokens, 'research-1')).toMatchObject({
      same: false,
      wouldStop: { seq: seqOf(store, 'research-1', 'TOKEN_USAGE', 2), rule: 'max_tokens' },
      saved: { steps: 1, tokens: 100, toolCalls: 1 },
    });
  });

  it('the policy the runs ran under: every run the same, nothing saved', { timeout: 30_000 }, async () => {
    const { app } = await build({ policy: { maxSteps: 4 } });
    await record(app, 'researcher', 'research-1');
    await record(app, 'runaway', 'runaway-1');
    await record(app, 'echo', 'echo-1');
    const result = verdicts(await whatIf(app, { policy: { maxSteps: 4 } }));
    expect(result.runs.map((run) => run.same)).toEqual([true, true, true]);
    // The run its limit stopped is stopped at the same event, by the same rule.
    expect(verdictOf(result, 'runaway-1').wouldStop?.rule).toBe('max_steps');
    expect(result.totals).toEqual({ runs: 3, same: 3, changed: 0, unknown: 0, saved: { steps: 0, tokens: 0, toolCalls: 0 } });
  });

  it('a policy wider than the server\'s is evaluated as it is: a run a limit stopped cannot be judged', { timeout: 30_000 }, async () => {
    const { app } = await build({ policy: { maxSteps: 2 } });
    await record(app, 'runaway', 'runaway-1');
    const result = verdicts(await whatIf(app, { policy: { maxSteps: 50 } }));
    expect(verdictOf(result, 'runaway-1')).toMatchObject({ same: null, wouldStop: null, recorded: { termination: { reason: 'policy_violation', rule: 'max_steps' } } });
    expect(verdictOf(result, 'runaway-1').reason).toMatch(/max_steps/);
    expect(result.totals.unknown).toBe(1);
  });

  it('filters by runs, agent, since and until', { timeout: 30_000 }, async () => {
    const { app } = await build();
    await record(app, 'researcher', 'research-1');
    await record(app, 'echo', 'echo-1');
    await record(app, 'echo', 'echo-2');
    const ids = async (body: object) => verdicts(await whatIf(app, { policy: {}, ...body })).runs.map((run) => run.executionId);

    expect(await ids({ runs: ['research-1', 'echo-1'] })).toEqual(['research-1', 'echo-1']);
    expect(await ids({ agent: 'echo' })).toEqual(['echo-2', 'echo-1']);
    expect(await ids({ agent: 'nobody' })).toEqual([]);
    expect(await ids({ since: '1h' })).toEqual(['echo-2', 'echo-1', 'research-1']);
    expect(await ids({ since: '2000-01-01', until: '2000-01-02T00:00:00Z' })).toEqual([]);
    expect(await ids({ until: '2000-01-01' })).toEqual([]);
    expect(await ids({ since: '2000-01-01T00:00:00Z', agent: 'researcher' })).toEqual(['research-1']);
    // The filters apply to named runs too.
    expect(await ids({ runs: ['research-1', 'echo-1'], agent: 'echo' })).toEqual(['echo-1']);
  });

  it('bad bodies get 4xx with a code naming the field', { timeout: 30_000 }, async () => {
    const { app } = await build();
    await record(app, 'echo', 'echo-1');
    expectError(await whatIf(app, { policy: { maxSteps: 0 } }), 400, 'OAO_ERR_INVALID_POLICY', 'body.policy.maxSteps');
    expectError(await whatIf(app, { policy: { maxStep: 3 } }), 400, 'OAO_ERR_INVALID_POLICY', 'body.policy.maxStep');
    expectError(await whatIf(app, { policy: { tools: { maxCalls: { search: -1 } } } }), 400, 'OAO_ERR_INVALID_POLICY', 'body.policy.tools.maxCalls.search');
    expectError(await whatIf(app, { policy: { maxSteps: 2 }, extra: true }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.extra');
    expectError(await whatIf(app, { policy: {}, since: 'yesterday' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.since');
    expectError(await whatIf(app, { policy: {}, until: '7 days' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.until');
    expectError(await whatIf(app, { policy: {}, since: '1h', until: '2h' }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.until');
    expectError(await whatIf(app, { policy: {}, runs: [] }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.runs');
    expectError(await whatIf(app, { policy: {}, runs: ['bad id!'] }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.runs.0');
    expectError(await whatIf(app, { policy: {}, agent: 42 }), 400, 'OAO_ERR_INVALID_ARGUMENT', 'body.agent');
    expectError(await whatIf(app, [1, 2]), 400, 'OAO_ERR_INVALID_JSON');
    expectError(await app.inject({ method: 'POST', url: '/what-if', payload: '{"policy":', headers: { 'content-type': 'application/json' } }), 400, 'OAO_ERR_INVALID_JSON');
    expectError(await app.inject({ method: 'POST', url: '/what-if', payload: 'policy', headers: { 'content-type': 'text/plain' } }), 415, 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE');
    const missing = await whatIf(app, { policy: {}, runs: ['echo-1', 'never-ran'] });
    expectError(missing, 404, 'OAO_ERR_RUN_NOT_FOUND');
    expect(errorBodySchema.parse(missing.json()).error.details?.executionId).toBe('never-ran');
  });

  it('needs an API key when the server has keys', { timeout: 30_000 }, async () => {
    const { app } = await build({ apiKeys: ['k'] });
    expectError(await whatIf(app, { policy: {} }), 401, 'OAO_ERR_UNAUTHORIZED');
    expect(verdicts(await whatIf(app, { policy: {} }, { authorization: 'Bearer k' })).totals.runs).toBe(0);
  });

  it('a store that cannot be read: 503 OAO_ERR_STORE_UNAVAILABLE, and the server stays up', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oao-what-if-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = createSqliteStore({ path: join(dir, 'runs.db') });
    const app = await createServer({ agents, tools, store, apiKeys: [] });
    cleanups.push(() => app.close());
    await record(app, 'researcher', 'research-1');
    expect(verdicts(await whatIf(app, { policy: { maxToolCalls: 1 } })).totals.changed).toBe(1);

    store.close();
    for (const body of [{ policy: {} }, { policy: {}, runs: ['research-1'] }]) {
      const down = await whatIf(app, body);
      expectError(down, 503, 'OAO_ERR_STORE_UNAVAILABLE');
      expect(down.headers['retry-after']).toBe('1');
      expect(errorBodySchema.parse(down.json()).error.details?.cause).toBe('OAO_ERR_STORE');
    }
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('is in the OpenAPI document with its request and answer', { timeout: 30_000 }, async () => {
    const { app } = await build();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const operation = doc.paths['/what-if'].post;
    expect(operation.operationId).toBe('whatIf');
    expect(Object.keys(operation.responses).sort()).toEqual(['200', '400', '401', '404', '413', '415', '503']);
    expect(doc.components.schemas.WhatIfRun).toBeDefined();
    // The run request's policy keeps its own description: the what-if policy is a copy.
    expect(doc.components.schemas.PolicyOptionsInput.description).toMatch(/narrow/);
    expect(doc.components.schemas.WhatIfPolicyInput.description).toContain('not narrowed by the server');
    expect(doc.paths['/what-if'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/WhatIfRequestInput' });
  });
});
