import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OaoError, createMemoryStore, executionReportSchema, type AgentContext, type StepResult } from '../src/index.js';
import {
  createMemoryRunStore,
  createServer,
  errorBodySchema,
  isLoopbackHost,
  runStateSchema,
  startServer,
  type ServerOptions,
} from '../src/server/index.js';
import { createGates, flush } from './helpers.js';

/** Tasks name a gate; a gated run waits in its step until the test opens that gate. */
const gates = createGates();
const gate = gates.gate;

let concurrent = 0;
let peakConcurrent = 0;

const agents = {
  echo: { name: 'echo', description: 'Repeats the task back.', invoke: (task: unknown) => ({ output: `echo: ${String(task)}` }) },
  researcher: {
    name: 'researcher',
    async invoke(task: string, ctx: AgentContext) {
      const hits = await ctx.callTool('search', { q: task });
      return { output: String(hits) };
    },
  },
  runaway: {
    name: 'runaway',
    invoke: (_task: string, ctx: AgentContext) => ({ output: `step ${ctx.step}` }),
    review: (_result: StepResult) => ({ done: false }),
  },
  gated: {
    name: 'gated',
    description: 'Waits until the test opens its gate.',
    async invoke(task: string, ctx: AgentContext) {
      concurrent++;
      peakConcurrent = Math.max(peakConcurrent, concurrent);
      try {
        ctx.usage({ input: 3, output: 4 });
        await new Promise<void>((resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
          void gate(task).promise.then(resolve);
        });
        return { output: `done: ${task}` };
      } finally {
        concurrent--;
      }
    },
  },
  plain: (task: string) => `plain: ${task}`,
};

const tools = { search: ({ q }: { q: string }) => `3 results for "${q}"` };

const servers: FastifyInstance[] = [];

async function build(options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const app = await createServer({ agents, tools, policy: { maxSteps: 4, timeoutMs: 10_000 }, apiKeys: [], ...options });
  servers.push(app);
  return app;
}

function post(app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url, payload: payload as object, headers });
}

/** Asserts the one error body shape and returns its error. */
function expectError(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = errorBodySchema.parse(response.json());
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeEach(() => {
  gates.clear();
  concurrent = 0;
  peakConcurrent = 0;
});

afterEach(async () => {
  gates.openAll();
  await Promise.all(servers.splice(0).map((app) => app.close()));
  vi.unstubAllEnvs();
});

describe('service endpoints', () => {
  it('GET /health answers 200 with the version', async () => {
    const app = await build();
    const response = await app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok', version: expect.any(String) });
  });

  it('GET /agents lists the registered names with their descriptions', async () => {
    const app = await build();
    const response = await app.inject({ method: 'GET', url: '/agents' });
    expect(response.statusCode).toBe(200);
    expect(response.json().agents).toEqual([
      { name: 'echo', description: 'Repeats the task back.' },
      { name: 'researcher' },
      { name: 'runaway' },
      { name: 'gated', description: 'Waits until the test opens its gate.' },
      { name: 'plain' },
    ]);
  });

  it('an unknown route gets a 404 in the error shape', async () => {
    const app = await build();
    const error = expectError(await app.inject({ method: 'GET', url: '/nowhere' }), 404, 'OAO_ERR_ROUTE_NOT_FOUND');
    expect(error.message).toContain('GET /nowhere');
  });
});

describe('POST /run', () => {
  it('runs a registered agent and answers with its report', async () => {
    const app = await build();
    const response = await post(app, '/run', { agent: 'researcher', task: 'governance' });
    expect(response.statusCode).toBe(200);
    const report = executionReportSchema.parse(response.json());
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: '3 results for "governance"', toolUsage: { total: 1, byTool: { search: 1 } } });
  });

  it('answers 200 for a failed run: the report says why', async () => {
    const app = await build();
    const response = await post(app, '/run', { agent: 'runaway', task: 'x' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ status: 'FAILED', totalSteps: 4, termination: { reason: 'policy_violation', rule: 'max_steps' } });
  });

  it('accepts JSON tasks and bare function agents', async () => {
    const app = await build();
    const json = await post(app, '/run', { agent: 'echo', task: { topic: 'ai', depth: [1, 2] } });
    expect(json.json().finalOutput).toBe('echo: [object Object]');
    const plain = await post(app, '/run', { agent: 'plain', task: 'hi' });
    expect(plain.json()).toMatchObject({ status: 'SUCCESS', finalOutput: 'plain: hi' });
  });

  it('uses the executionId the request gives, and refuses one already taken', async () => {
    const app = await build();
    const first = await post(app, '/run', { agent: 'echo', task: 'a', executionId: 'my-run-1' });
    expect(first.json().executionId).toBe('my-run-1');
    const again = expectError(await post(app, '/run', { agent: 'echo', task: 'b', executionId: 'my-run-1' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(again.details?.field).toBe('body.executionId');
  });
});

describe('policy over HTTP: a request can only narrow the server policy', () => {
  it('a smaller limit applies', async () => {
    const app = await build();
    const report = (await post(app, '/run', { agent: 'runaway', task: 'x', policy: { maxSteps: 2 } })).json();
    expect(report).toMatchObject({ totalSteps: 2, termination: { reason: 'policy_violation', rule: 'max_steps' } });
  });

  it('a larger limit does not widen the server ceiling', async () => {
    const app = await build();
    const report = (await post(app, '/run', { agent: 'runaway', task: 'x', policy: { maxSteps: 99, timeoutMs: 2_000_000 } })).json();
    expect(report.totalSteps).toBe(4);
  });

  it('a request can deny a server tool; it cannot allow one the server denies', async () => {
    const app = await build({ policy: { tools: { allow: ['search'] } } });
    const denied = (await post(app, '/run', { agent: 'researcher', task: 'q', policy: { tools: { deny: ['search'] } } })).json();
    expect(denied.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    const widened = (await post(app, '/run', { agent: 'researcher', task: 'q', policy: { tools: { allow: ['search', 'shell'] } } })).json();
    expect(widened.status).toBe('SUCCESS');

    const strict = await build({ policy: { tools: { deny: ['search'] } } });
    const refused = (await post(strict, '/run', { agent: 'researcher', task: 'q', policy: { tools: { allow: ['search'] } } })).json();
    expect(refused.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
  });

  it('the narrowed limits are what the run records', async () => {
    const store = createMemoryStore();
    const app = await build({ store, policy: { maxSteps: 4, maxTokens: 1_000, timeoutMs: 10_000 } });
    const report = (await post(app, '/run', { agent: 'echo', task: 'e', policy: { maxTokens: 100, maxSteps: 9 } })).json();
    const start = store.events(report.executionId)[0];
    expect(start?.type).toBe('EXECUTION_START');
    expect(start?.payload).toMatchObject({ policy: { maxSteps: 4, maxTokens: 100, timeoutMs: 10_000 } });
  });

  it.each([
    [{ maxSteps: 0 }, 'body.policy.maxSteps'],
    [{ maxSteps: '3' }, 'body.policy.maxSteps'],
    [{ maxTokens: 1.5 }, 'body.policy.maxTokens'],
    [{ timeoutMs: 3_000_000_000 }, 'body.policy.timeoutMs'],
    [{ tools: { allow: 'search' } }, 'body.policy.tools.allow'],
    [{ tools: { maxCalls: { search: -1 } } }, 'body.policy.tools.maxCalls.search'],
    [{ retry: { backoffFactor: 1000 } }, 'body.policy.retry.backoffFactor'],
    [{ maxStep: 3 }, 'body.policy.maxStep'],
    ['strict', 'body.policy'],
  ])('an invalid request policy %j is 400 OAO_ERR_INVALID_POLICY naming %s', async (policy, field) => {
    const app = await build();
    const error = expectError(await post(app, '/run', { agent: 'echo', task: 't', policy }), 400, 'OAO_ERR_INVALID_POLICY');
    expect(error.details?.field).toBe(field);
    expect(error.message).toContain(field);
  });
});

describe('bad input never gets a 500', () => {
  it('an unknown agent is 404 OAO_ERR_UNKNOWN_AGENT', async () => {
    const app = await build();
    const error = expectError(await post(app, '/run', { agent: 'nobody', task: 't' }), 404, 'OAO_ERR_UNKNOWN_AGENT');
    expect(error.details).toMatchObject({ field: 'body.agent', agent: 'nobody' });
    expect(error.message).toContain('echo');
    // Names that exist on every object are not agents either.
    expectError(await post(app, '/run', { agent: 'constructor', task: 't' }), 404, 'OAO_ERR_UNKNOWN_AGENT');
    expectError(await post(app, '/run', { agent: 'toString', task: 't' }), 404, 'OAO_ERR_UNKNOWN_AGENT');
  });

  it('malformed JSON is 400 OAO_ERR_INVALID_JSON', async () => {
    const app = await build();
    for (const raw of ['{"agent": "echo",', '{bad json}', 'undefined']) {
      expectError(await post(app, '/run', raw, { 'content-type': 'application/json' }), 400, 'OAO_ERR_INVALID_JSON');
    }
  });

  it('a body that is JSON but not an object is 400 OAO_ERR_INVALID_JSON', async () => {
    const app = await build();
    for (const raw of ['[]', '42', '"text"', 'null', 'true']) {
      expectError(await post(app, '/run', raw, { 'content-type': 'application/json' }), 400, 'OAO_ERR_INVALID_JSON');
    }
    expectError(await app.inject({ method: 'POST', url: '/run' }), 400, 'OAO_ERR_INVALID_JSON');
    expectError(await post(app, '/run', '', { 'content-type': 'application/json' }), 400, 'OAO_ERR_INVALID_JSON');
  });

  it('a body that is not JSON is refused with 415 OAO_ERR_UNSUPPORTED_MEDIA_TYPE in the same error shape', async () => {
    const app = await build();
    const form = expectError(await post(app, '/run', 'agent=echo&task=t', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE');
    expect(form.details?.field).toBe('headers.content-type');
    expectError(await post(app, '/run', '{"agent":"echo","task":"t"}', { 'content-type': 'text/plain' }), 415, 'OAO_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it.each([
    [{ agent: 5, task: 't' }, 'body.agent'],
    [{ agent: '', task: 't' }, 'body.agent'],
    [{ agent: 'echo' }, 'body.task'],
    [{ agent: 'echo', task: null }, 'body.task'],
    [{ agent: 'echo', task: 't', executionId: 'has space' }, 'body.executionId'],
    [{ agent: 'echo', task: 't', extra: 1 }, 'body.extra'],
  ])('wrong types are 400 OAO_ERR_INVALID_ARGUMENT naming the field: %j', async (payload, field) => {
    const app = await build();
    const error = expectError(await post(app, '/run', payload), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(error.details?.field).toBe(field);
    expect(error.message).toContain(field);
  });

  it('out-of-range numbers are 400 naming the field', async () => {
    const app = await build();
    const multi = expectError(await post(app, '/run-multi', { agents: ['echo'], task: 't', maxConcurrency: 0 }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(multi.details?.field).toBe('body.maxConcurrency');
    const limit = expectError(await app.inject({ method: 'GET', url: '/runs?limit=5000' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(limit.details?.field).toBe('query.limit');
    const offset = expectError(await app.inject({ method: 'GET', url: '/runs?offset=-1' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(offset.details?.field).toBe('query.offset');
    const huge = expectError(await post(app, '/run', '{"agent":"echo","task":"t","policy":{"maxSteps":1e400}}', { 'content-type': 'application/json' }), 400, 'OAO_ERR_INVALID_POLICY');
    expect(huge.details?.field).toBe('body.policy.maxSteps');
  });

  it('a body over the limit is 413 OAO_ERR_PAYLOAD_TOO_LARGE', async () => {
    const app = await build({ limits: { bodyLimit: 1_024 } });
    const error = expectError(await post(app, '/run', { agent: 'echo', task: 'x'.repeat(2_000) }), 413, 'OAO_ERR_PAYLOAD_TOO_LARGE');
    expect(error.details).toEqual({ limit: 1_024 });
  });

  it('a task over maxTaskLength or nested too deep is 400 naming body.task', async () => {
    const app = await build({ limits: { maxTaskLength: 20 } });
    const long = expectError(await post(app, '/run', { agent: 'echo', task: 'x'.repeat(21) }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(long.details).toMatchObject({ field: 'body.task', maxTaskLength: 20 });
    const json = expectError(await post(app, '/run', { agent: 'echo', task: { words: 'x'.repeat(20) } }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(json.details?.field).toBe('body.task');
    expect((await post(app, '/run', { agent: 'echo', task: 'x'.repeat(20) })).statusCode).toBe(200);

    const roomy = await build();
    const deep = '{"agent":"echo","task":' + '['.repeat(10_000) + ']'.repeat(10_000) + '}';
    const nested = expectError(await post(roomy, '/run', deep, { 'content-type': 'application/json' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(nested.message).toContain('deeper');
  });

  it('keeps serving after every kind of bad input', async () => {
    const app = await build({ limits: { bodyLimit: 512 } });
    await post(app, '/run', '{', { 'content-type': 'application/json' });
    await post(app, '/run', { agent: 'echo', task: 'x'.repeat(1_000) });
    await post(app, '/run', { agent: 'nobody', task: 't' });
    await post(app, '/runs', 'x', { 'content-type': 'application/octet-stream' });
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await post(app, '/run', { agent: 'echo', task: 'still here' })).json().status).toBe('SUCCESS');
  });
});

describe('the run resource', () => {
  it('POST /runs starts a run and answers 202 with where to follow it', async () => {
    const app = await build();
    const response = await post(app, '/runs', { agent: 'gated', task: 'r1' });
    expect(response.statusCode).toBe(202);
    const body = response.json();
    expect(body).toEqual({
      executionId: expect.any(String),
      status: 'running',
      statusUrl: `/runs/${body.executionId}`,
      eventsUrl: `/runs/${body.executionId}/events`,
      cancelUrl: `/runs/${body.executionId}/cancel`,
      effectivePolicy: expect.objectContaining({ maxSteps: 4, timeoutMs: 10_000 }),
    });
    expect(response.headers.location).toBe(body.statusUrl);
  });

  it('GET /runs/:id shows live state and counters, then the report', async () => {
    const app = await build();
    const { statusUrl } = (await post(app, '/runs', { agent: 'gated', task: 'live' })).json();
    await waitFor(async () => (await app.inject({ method: 'GET', url: statusUrl })).json().state === 'EXECUTE', 'the step');
    const live = runStateSchema.parse((await app.inject({ method: 'GET', url: statusUrl })).json());
    expect(live).toMatchObject({ status: 'running', agent: 'gated', state: 'EXECUTE', counters: { steps: 1, tokens: 7, toolCalls: 0 }, report: null, finishedAt: null });
    expect(live.events).toBeGreaterThan(3);

    gate('live').resolve();
    await waitFor(async () => (await app.inject({ method: 'GET', url: statusUrl })).json().status === 'SUCCESS', 'the report');
    const done = runStateSchema.parse((await app.inject({ method: 'GET', url: statusUrl })).json());
    expect(done).toMatchObject({ status: 'SUCCESS', state: 'TERMINATE', termination: { reason: 'completed' }, finishedAt: expect.any(String) });
    expect(done.report?.finalOutput).toBe('done: live');
  });

  it('GET /runs/:id is 404 for an unknown run and 400 for an id that cannot be one', async () => {
    const app = await build();
    expectError(await app.inject({ method: 'GET', url: '/runs/unknown-run' }), 404, 'OAO_ERR_RUN_NOT_FOUND');
    const error = expectError(await app.inject({ method: 'GET', url: `/runs/${'x'.repeat(200)}` }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(error.details?.field).toBe('params.id');
  });

  it('GET /runs lists newest first, filters by status and agent, and pages by offset or cursor', async () => {
    const app = await build();
    for (const task of ['a', 'b', 'c']) await post(app, '/run', { agent: 'echo', task, executionId: `echo-${task}` });
    await post(app, '/run', { agent: 'runaway', task: 'x', executionId: 'runaway-1' });
    await post(app, '/runs', { agent: 'gated', task: 'held', executionId: 'gated-1' });

    const all = (await app.inject({ method: 'GET', url: '/runs' })).json();
    expect(all.total).toBe(5);
    expect(all.runs.map((r: { executionId: string }) => r.executionId)).toEqual(['gated-1', 'runaway-1', 'echo-c', 'echo-b', 'echo-a']);
    expect(all.runs[1]).toMatchObject({ agent: 'runaway', status: 'FAILED', termination: { reason: 'policy_violation' }, batchId: null });

    const ids = async (query: string) => (await app.inject({ method: 'GET', url: `/runs?${query}` })).json().runs.map((r: { executionId: string }) => r.executionId);
    expect(await ids('status=running')).toEqual(['gated-1']);
    expect(await ids('status=FAILED')).toEqual(['runaway-1']);
    expect(await ids('agent=echo&status=SUCCESS')).toEqual(['echo-c', 'echo-b', 'echo-a']);
    expect(await ids('limit=2&offset=1')).toEqual(['runaway-1', 'echo-c']);

    const first = (await app.inject({ method: 'GET', url: '/runs?limit=2' })).json();
    expect(first.nextCursor).toEqual(expect.any(String));
    await post(app, '/run', { agent: 'echo', task: 'd', executionId: 'echo-d' }); // a newer run does not shift the pages
    const second = (await app.inject({ method: 'GET', url: `/runs?limit=2&cursor=${first.nextCursor}` })).json();
    expect(second.runs.map((r: { executionId: string }) => r.executionId)).toEqual(['echo-c', 'echo-b']);
    const third = (await app.inject({ method: 'GET', url: `/runs?limit=2&cursor=${second.nextCursor}` })).json();
    expect(third.runs.map((r: { executionId: string }) => r.executionId)).toEqual(['echo-a']);
    expect(third.nextCursor).toBeNull();

    expect(expectError(await app.inject({ method: 'GET', url: '/runs?cursor=bogus' }), 400, 'OAO_ERR_INVALID_ARGUMENT').details?.field).toBe('query.cursor');
    expect(expectError(await app.inject({ method: 'GET', url: `/runs?offset=1&cursor=${first.nextCursor}` }), 400, 'OAO_ERR_INVALID_ARGUMENT').details?.field).toBe(
      'query.cursor',
    );
    expect(expectError(await app.inject({ method: 'GET', url: '/runs?status=done' }), 400, 'OAO_ERR_INVALID_ARGUMENT').details?.field).toBe('query.status');
  });

  it('POST /runs/:id/cancel stops a live run (202) and is a no-op that says so afterwards (200)', async () => {
    const app = await build();
    const { executionId, cancelUrl, statusUrl } = (await post(app, '/runs', { agent: 'gated', task: 'never' })).json();
    await waitFor(async () => (await app.inject({ method: 'GET', url: statusUrl })).json().state === 'EXECUTE', 'the step');

    const cancelled = await post(app, cancelUrl, { reason: 'user left' });
    expect(cancelled.statusCode).toBe(202);
    expect(cancelled.json()).toEqual({
      executionId,
      cancelled: true,
      status: 'FAILED',
      message: expect.stringContaining('cancelled'),
      termination: { reason: 'cancelled', message: 'user left' },
    });
    expect((await app.inject({ method: 'GET', url: statusUrl })).json().report.termination.reason).toBe('cancelled');

    const again = await app.inject({ method: 'POST', url: cancelUrl });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ cancelled: false, status: 'FAILED', message: expect.stringContaining('already finished') });

    expectError(await app.inject({ method: 'POST', url: '/runs/nope/cancel' }), 404, 'OAO_ERR_RUN_NOT_FOUND');
    expectError(await post(app, cancelUrl, { reason: 7 }), 400, 'OAO_ERR_INVALID_ARGUMENT');
  });

  it('evicts the oldest finished runs when the store is full', async () => {
    const app = await build({ store: createMemoryStore({ maxRuns: 2 }) });
    for (const id of ['one', 'two', 'three']) await post(app, '/run', { agent: 'echo', task: id, executionId: id });
    expectError(await app.inject({ method: 'GET', url: '/runs/one' }), 404, 'OAO_ERR_RUN_NOT_FOUND');
    expect((await app.inject({ method: 'GET', url: '/runs/three' })).json().status).toBe('SUCCESS');
    expect((await app.inject({ method: 'GET', url: '/runs' })).json().total).toBe(2);
  });
});

describe('POST /run-multi', () => {
  it('runs the listed agents on one task and answers with a report per agent', async () => {
    const app = await build();
    const response = await post(app, '/run-multi', { agents: ['echo', 'runaway'], task: 'debate', policy: { maxSteps: 2 } });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(Object.keys(body.reports)).toEqual(['echo', 'runaway']);
    expect(body.reports.echo).toMatchObject({ status: 'SUCCESS', finalOutput: 'echo: debate' });
    expect(body.reports.runaway).toMatchObject({ status: 'FAILED', totalSteps: 2, termination: { rule: 'max_steps' } });
    for (const report of Object.values(body.reports)) executionReportSchema.parse(report);

    const listed = (await app.inject({ method: 'GET', url: '/runs' })).json();
    expect(listed.runs.map((r: { agent: string }) => r.agent).sort()).toEqual(['echo', 'runaway']);
    expect(listed.runs.every((r: { batchId: string }) => r.batchId === body.batchId)).toBe(true);
    const child = (await app.inject({ method: 'GET', url: `/runs/${body.reports.echo.executionId}` })).json();
    expect(child).toMatchObject({ status: 'SUCCESS', batchId: body.batchId, events: expect.any(Number) });
    expect(child.events).toBeGreaterThan(5);
  });

  it('accepts a map of job names, to run one agent more than once', async () => {
    const app = await build();
    const body = (await post(app, '/run-multi', { agents: { first: 'echo', second: 'echo' }, task: 'twice' })).json();
    expect(Object.keys(body.reports)).toEqual(['first', 'second']);
    expect(body.reports.first.executionId).not.toBe(body.reports.second.executionId);
  });

  it('a request may lower maxConcurrency but never raise it past the server', async () => {
    const app = await build({ maxConcurrency: 2 });
    const pending = post(app, '/run-multi', { agents: { a: 'gated', b: 'gated', c: 'gated', d: 'gated' }, task: 'batch', maxConcurrency: 10 });
    await waitFor(() => concurrent === 2, 'two runs');
    await flush();
    expect(concurrent).toBe(2);
    gate('batch').resolve();
    const body = (await pending).json();
    expect(body.maxConcurrency).toBe(2);
    expect(peakConcurrent).toBe(2);
    expect(Object.values(body.reports).every((r) => (r as { status: string }).status === 'SUCCESS')).toBe(true);

    peakConcurrent = 0;
    gates.clear();
    const one = post(app, '/run-multi', { agents: { a: 'gated', b: 'gated', c: 'gated' }, task: 'single', maxConcurrency: 1 });
    await waitFor(() => concurrent === 1, 'one run');
    gate('single').resolve();
    expect((await one).json().maxConcurrency).toBe(1);
    expect(peakConcurrent).toBe(1);
  });

  it('names the unknown agent, and refuses an agent listed twice', async () => {
    const app = await build();
    const unknown = expectError(await post(app, '/run-multi', { agents: ['echo', 'ghost'], task: 't' }), 404, 'OAO_ERR_UNKNOWN_AGENT');
    expect(unknown.details).toMatchObject({ field: 'body.agents.1', agent: 'ghost' });
    const mapped = expectError(await post(app, '/run-multi', { agents: { a: 'ghost' }, task: 't' }), 404, 'OAO_ERR_UNKNOWN_AGENT');
    expect(mapped.details?.field).toBe('body.agents.a');
    const twice = expectError(await post(app, '/run-multi', { agents: ['echo', 'echo'], task: 't' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect(twice.details?.field).toBe('body.agents.1');
    expectError(await post(app, '/run-multi', { agents: [], task: 't' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expectError(await post(app, '/run-multi', { agents: {}, task: 't' }), 400, 'OAO_ERR_INVALID_ARGUMENT');
    expect((await app.inject({ method: 'GET', url: '/runs' })).json().total).toBe(0);
  });

  it('a child of a batch can be cancelled on its own', async () => {
    const app = await build();
    const pending = post(app, '/run-multi', { agents: { keep: 'gated', drop: 'gated' }, task: 'pair' });
    await waitFor(() => concurrent === 2, 'both runs');
    const runs = (await app.inject({ method: 'GET', url: '/runs?status=running' })).json().runs;
    expect(runs).toHaveLength(2);
    const cancelled = await app.inject({ method: 'POST', url: `/runs/${runs[0].executionId}/cancel` });
    expect(cancelled.statusCode).toBe(202);
    // Filed at once, while its sibling still runs.
    expect(cancelled.json()).toMatchObject({ cancelled: true, status: 'FAILED', termination: { reason: 'cancelled' } });
    expect((await app.inject({ method: 'GET', url: `/runs/${runs[0].executionId}` })).json().status).toBe('FAILED');
    gate('pair').resolve();
    const body = (await pending).json<{ reports: Record<string, { executionId: string; status: string; termination: { reason: string } }> }>();
    const reports = Object.values(body.reports);
    const dropped = reports.find((r) => r.executionId === runs[0].executionId);
    const kept = reports.find((r) => r.executionId !== runs[0].executionId);
    expect(dropped?.termination.reason).toBe('cancelled');
    expect(kept?.status).toBe('SUCCESS');
  });
});

describe('admission: maxConcurrentRuns', () => {
  it('answers 429 OAO_ERR_TOO_MANY_RUNS past the limit, and admits again once runs end', async () => {
    const app = await build({ limits: { maxConcurrentRuns: 2 } });
    expect((await post(app, '/runs', { agent: 'gated', task: 'hold-1' })).statusCode).toBe(202);
    expect((await post(app, '/runs', { agent: 'gated', task: 'hold-2' })).statusCode).toBe(202);

    const refused = await post(app, '/run', { agent: 'echo', task: 'one more' });
    const error = expectError(refused, 429, 'OAO_ERR_TOO_MANY_RUNS');
    expect(refused.headers['retry-after']).toBe('1');
    expect(error.details).toMatchObject({ active: 2, maxConcurrentRuns: 2 });
    expectError(await post(app, '/runs', { agent: 'echo', task: 'one more' }), 429, 'OAO_ERR_TOO_MANY_RUNS');
    expectError(await post(app, '/run-multi', { agents: ['echo'], task: 'more' }), 429, 'OAO_ERR_TOO_MANY_RUNS');
    // Reading is never refused.
    expect((await app.inject({ method: 'GET', url: '/runs' })).statusCode).toBe(200);

    gate('hold-1').resolve();
    await waitFor(async () => (await app.inject({ method: 'GET', url: '/runs?status=running' })).json().total === 1, 'one run to end');
    expect((await post(app, '/run', { agent: 'echo', task: 'now' })).statusCode).toBe(200);
  });

  it('a batch takes as many slots as it runs at once', async () => {
    const app = await build({ limits: { maxConcurrentRuns: 3 }, maxConcurrency: 2 });
    expect((await post(app, '/runs', { agent: 'gated', task: 'solo' })).statusCode).toBe(202);
    const batch = post(app, '/run-multi', { agents: { a: 'gated', b: 'gated', c: 'gated' }, task: 'trio' });
    await waitFor(() => concurrent === 3, 'three runs');
    expectError(await post(app, '/run', { agent: 'echo', task: 'x' }), 429, 'OAO_ERR_TOO_MANY_RUNS');
    gate('trio').resolve();
    expect((await batch).statusCode).toBe(200);
  });

  it("the store's retention drops finished runs only: a running run is kept and new runs are admitted", async () => {
    const app = await build({ store: createMemoryStore({ maxRuns: 1 }) });
    const { executionId } = (await post(app, '/runs', { agent: 'gated', task: 'kept' })).json();
    expect((await post(app, '/run', { agent: 'echo', task: 'x' })).statusCode).toBe(200);
    expect((await post(app, '/run', { agent: 'echo', task: 'y' })).statusCode).toBe(200);
    const listed = (await app.inject({ method: 'GET', url: '/runs' })).json();
    expect(listed.runs.map((run: { executionId: string; status: string }) => [run.executionId === executionId, run.status])).toEqual([
      [false, 'SUCCESS'],
      [true, 'running'],
    ]);
    gate('kept').resolve();
    await waitFor(async () => (await app.inject({ method: 'GET', url: '/runs?status=running' })).json().total === 0, 'the run to end');
  });
});

describe('API keys', () => {
  it('without keys every route is open', async () => {
    const app = await build();
    expect((await app.inject({ method: 'GET', url: '/agents' })).statusCode).toBe(200);
  });

  it('with keys, routes need Authorization: Bearer <key>; /health and the docs stay open', async () => {
    const app = await build({ apiKeys: ['first-key', 'second-key'] });
    const missing = await app.inject({ method: 'GET', url: '/agents' });
    expectError(missing, 401, 'OAO_ERR_UNAUTHORIZED');
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="oao"');
    expectError(await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'Bearer wrong-key' } }), 401, 'OAO_ERR_UNAUTHORIZED');
    expectError(await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'Bearer first-key-but-longer' } }), 401, 'OAO_ERR_UNAUTHORIZED');
    expectError(await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'Basic Zmlyc3Qta2V5' } }), 401, 'OAO_ERR_UNAUTHORIZED');
    expectError(await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'first-key' } }), 401, 'OAO_ERR_UNAUTHORIZED');

    expect((await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'Bearer first-key' } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'bearer second-key' } })).statusCode).toBe(200);
    const run = await post(app, '/run', { agent: 'echo', task: 't' }, { authorization: 'Bearer second-key' });
    expect(run.statusCode).toBe(200);

    for (const url of ['/runs', '/runs/x', '/runs/x/events']) {
      expectError(await app.inject({ method: 'GET', url }), 401, 'OAO_ERR_UNAUTHORIZED');
    }
    for (const url of ['/run', '/runs', '/run-multi', '/runs/x/cancel']) {
      expectError(await post(app, url, { agent: 'echo', task: 't' }), 401, 'OAO_ERR_UNAUTHORIZED');
    }
    // Checked before the body is even parsed.
    expectError(await post(app, '/run', '{not json', { 'content-type': 'application/json' }), 401, 'OAO_ERR_UNAUTHORIZED');

    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/docs' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200);
  });

  it('reads the keys from env OAO_API_KEYS when the option is absent', async () => {
    vi.stubEnv('OAO_API_KEYS', ' alpha , beta,, ');
    const app = await createServer({ agents });
    servers.push(app);
    expectError(await app.inject({ method: 'GET', url: '/agents' }), 401, 'OAO_ERR_UNAUTHORIZED');
    expect((await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'Bearer beta' } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/agents', headers: { authorization: 'Bearer alpha' } })).statusCode).toBe(200);

    const explicit = await createServer({ agents, apiKeys: [] });
    servers.push(explicit);
    expect((await explicit.inject({ method: 'GET', url: '/agents' })).statusCode).toBe(200);
  });

  it('documents the bearer scheme in the OpenAPI document when keys are set', async () => {
    const app = await build({ apiKeys: ['k'] });
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/health'].get.security).toEqual([]);
  });
});

describe('options and startServer', () => {
  it('validates options eagerly, naming the option', async () => {
    const cases: [unknown, string, string][] = [
      [{ agents: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'agents'],
      [{ agents: { bad: { invoke: 3 } } }, 'OAO_ERR_INVALID_AGENT', 'agents.bad'],
      [{ agents, maxConcurrency: 0 }, 'OAO_ERR_INVALID_ARGUMENT', 'maxConcurrency'],
      [{ agents, limits: { bodyLimit: -1 } }, 'OAO_ERR_INVALID_ARGUMENT', 'limits.bodyLimit'],
      [{ agents, limits: { maxConcurrentRuns: 1.5 } }, 'OAO_ERR_INVALID_ARGUMENT', 'limits.maxConcurrentRuns'],
      [{ agents, apiKeys: ['has space'] }, 'OAO_ERR_INVALID_ARGUMENT', 'apiKeys.0'],
      [{ agents, tools: { t: 'x' } }, 'OAO_ERR_INVALID_ARGUMENT', 'tools.t'],
      [{ agents, store: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'store'],
      [{ agents, policy: { maxSteps: 0 } }, 'OAO_ERR_INVALID_POLICY', 'maxSteps'],
    ];
    for (const [options, code, field] of cases) {
      const error = await createServer(options as ServerOptions).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(OaoError.isInstance(error), JSON.stringify(options)).toBe(true);
      expect((error as OaoError).code).toBe(code);
      expect((error as OaoError).details?.field).toBe(field);
    }
    expect(() => createMemoryRunStore({ maxRuns: 0 })).toThrow(/maxRuns/);
  });

  it('knows which hosts are loopback', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'example.com', '::ffff:10.0.0.1', '128.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it('refuses to listen beyond loopback without API keys', async () => {
    vi.stubEnv('OAO_API_KEYS', '');
    for (const host of ['0.0.0.0', '::']) {
      const error = await startServer({ agents, host, port: 0 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(OaoError.isInstance(error)).toBe(true);
      expect((error as OaoError).code).toBe('OAO_ERR_INSECURE_BIND');
      expect((error as OaoError).message).toContain(`Refusing to listen on ${host} without API keys`);
    }
  });

  it('listens on a free loopback port and closes', async () => {
    const server = await startServer({ agents, port: 0 });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    await server.close();
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });

  it('closing the server cancels the runs still live; they are filed with their report', async () => {
    const store = createMemoryStore();
    const app = await createServer({ agents, store, apiKeys: [] });
    const { executionId } = (await post(app, '/runs', { agent: 'gated', task: 'forever' })).json();
    await waitFor(() => concurrent === 1, 'the run');
    await app.close();
    expect(store.get(executionId)?.status).toBe('FAILED');
    expect(store.report(executionId)?.termination).toEqual({ reason: 'cancelled', message: 'the server is shutting down' });
    expect(store.events(executionId).at(-1)?.type).toBe('EXECUTION_COMPLETE');
  });
});

describe('OpenAPI and Swagger UI', () => {
  it('the OpenAPI document validates as OpenAPI 3 and covers every endpoint', async () => {
    const app = await build();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(['/agents', '/approvals', '/health', '/policy', '/run', '/run-multi', '/runs', '/runs/{id}', '/runs/{id}/approvals/{callId}', '/runs/{id}/budget', '/runs/{id}/cancel', '/runs/{id}/events', '/what-if']);
    expect(doc.servers).toBeUndefined();
    expect(doc.paths['/run'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/RunRequestInput' });
    expect(doc.paths['/runs'].post.responses['202']).toBeDefined();
    expect(doc.paths['/runs/{id}/events'].get.responses['200'].content['text/event-stream']).toBeDefined();
    expect(doc.components.schemas.ExecutionReport).toBeDefined();
    expect((await app.inject({ method: 'GET', url: '/docs/json' })).json()).toEqual(doc);
  });

  it('GET /docs serves Swagger UI whose assets all come from the app itself', async () => {
    const app = await build();
    const page = await app.inject({ method: 'GET', url: '/docs' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    const html = page.body;
    expect(html).not.toMatch(/(?:src|href)\s*=\s*["'](?:https?:)?\/\//i);
    const assets = [...html.matchAll(/(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1] as string);
    expect(assets.length).toBeGreaterThanOrEqual(4);
    expect(assets.some((url) => url.endsWith('swagger-ui-bundle.js'))).toBe(true);
    for (const asset of assets) {
      const url = new URL(asset, 'http://oao.local/docs').pathname;
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
    }
  });
});
