import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import type { AgentContext } from '../src/index.js';
import { createMetrics } from '../src/observability/metrics/index.js';
import { createServer, type ServerOptions } from '../src/server/index.js';

const agents = {
  echo: { name: 'echo', invoke: (task: unknown) => ({ output: `echo: ${String(task)}`, usage: { input: 4, output: 6 } }) },
  searcher: {
    name: 'searcher',
    async invoke(task: string, ctx: AgentContext) {
      return { output: String(await ctx.callTool('search', { q: task })) };
    },
  },
  looper: { name: 'looper', invoke: () => ({ output: 'again' }), review: () => ({ done: false }) },
};
const tools = { search: ({ q }: { q: string }) => `results for ${q}` };

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(options: Partial<ServerOptions>): Promise<FastifyInstance> {
  // The dashboard has its own tests; it is off here unless a test asks for it.
  app = await createServer({ agents, tools, policy: { maxSteps: 3 }, dashboard: false, ...options });
  return app;
}

function sampleValue(text: string, line: string): number | undefined {
  const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('createServer({ metrics }): GET /metrics', () => {
  it('counts runs, tokens, tool calls and violations of /run, /runs and /run-multi', async () => {
    const registry = new Registry();
    const server = await serve({ metrics: createMetrics({ registry }) });
    expect((await server.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'a' } })).statusCode).toBe(200);
    expect((await server.inject({ method: 'POST', url: '/run', payload: { agent: 'searcher', task: 'b' } })).statusCode).toBe(200);
    expect((await server.inject({ method: 'POST', url: '/run', payload: { agent: 'looper', task: 'c' } })).statusCode).toBe(200);
    const multi = await server.inject({ method: 'POST', url: '/run-multi', payload: { agents: { one: 'echo', two: 'echo' }, task: 'd' } });
    expect(multi.statusCode).toBe(200);

    const response = await server.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    const text = response.body;
    expect(sampleValue(text, 'oao_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBe(3);
    expect(sampleValue(text, 'oao_runs_total{status="SUCCESS",agent="searcher",reason="completed"}')).toBe(1);
    expect(sampleValue(text, 'oao_runs_total{status="FAILED",agent="looper",reason="policy_violation"}')).toBe(1);
    expect(sampleValue(text, 'oao_policy_violations_total{agent="looper",rule="max_steps"}')).toBe(1);
    expect(sampleValue(text, 'oao_tokens_total{agent="echo",direction="output"}')).toBe(18);
    expect(sampleValue(text, 'oao_tool_calls_total{agent="searcher",tool="search"}')).toBe(1);
    expect(sampleValue(text, 'oao_run_duration_seconds_count{agent="echo",status="SUCCESS"}')).toBe(3);
    expect(sampleValue(text, 'oao_active_runs{agent="echo"}')).toBe(0);
    // The batch is over: nothing queued or running is left in the supervisor gauges.
    expect(sampleValue(text, 'oao_supervisor_queue_depth')).toBe(0);
    expect(sampleValue(text, 'oao_supervisor_running')).toBe(0);
    // The metrics live on the registry the caller passed.
    expect(await registry.metrics()).toBe(text);
  });

  it('is behind the API keys when the server has them', async () => {
    const server = await serve({ metrics: createMetrics(), apiKeys: ['key-1'] });
    const refused = await server.inject({ method: 'GET', url: '/metrics' });
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ error: { code: 'OAO_ERR_UNAUTHORIZED' } });
    const allowed = await server.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer key-1' } });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.body).toContain('# TYPE oao_runs_total counter');
  });

  it('has no /metrics route without the option, and stays out of the OpenAPI document', async () => {
    const without = await serve({});
    expect((await without.inject({ method: 'GET', url: '/metrics' })).json()).toMatchObject({ error: { code: 'OAO_ERR_ROUTE_NOT_FOUND' } });
    await without.close();
    const withMetrics = await serve({ metrics: createMetrics() });
    const document = (await withMetrics.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(document.paths)).not.toContain('/metrics');
  });

  it('refuses something that is not a metrics object, naming the option', async () => {
    await expect(createServer({ agents, metrics: { registry: new Registry() } as never })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_ARGUMENT',
      details: { field: 'metrics' },
    });
  });
});

describe('createServer({ inspect })', () => {
  it('passes the inspector to every run actor and to each batch\'s supervisor and its children', async () => {
    const seen: InspectionEvent[] = [];
    const server = await serve({ inspect: (event) => seen.push(event) });
    const single = (await server.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'a' } })).json<{ executionId: string }>();
    const multi = (
      await server.inject({ method: 'POST', url: '/run-multi', payload: { agents: ['echo', 'searcher'], task: 'b' } })
    ).json<{ reports: Record<string, { executionId: string }> }>();
    const actorIds = seen.filter((event) => event.type === '@xstate.actor').map((event) => (event.actorRef as unknown as { id: string }).id);
    expect(actorIds).toContain(single.executionId);
    for (const report of Object.values(multi.reports)) expect(actorIds).toContain(report.executionId);
    const supervisors = seen.filter(
      (event) => event.type === '@xstate.actor' && (event.actorRef as { logic?: { id?: string } }).logic?.id === 'supervisor',
    );
    expect(supervisors).toHaveLength(1);
  });

  it('refuses an inspector that is neither a function nor an observer', async () => {
    await expect(createServer({ agents, inspect: 'ws://localhost:8080' as never })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_ARGUMENT',
      details: { field: 'inspect' },
    });
  });
});

describe('createServer({ dashboard })', () => {
  it('serves /dashboard/ by default and not when turned off', async () => {
    const on = await serve({ dashboard: undefined });
    expect((await on.inject({ method: 'GET', url: '/dashboard/' })).statusCode).toBe(200);
    await on.close();
    const off = await serve({ dashboard: false });
    expect((await off.inject({ method: 'GET', url: '/dashboard/' })).statusCode).toBe(404);
  });

  it('refuses a dashboard flag that is not a boolean', async () => {
    await expect(createServer({ agents, dashboard: 'yes' as never })).rejects.toMatchObject({ details: { field: 'dashboard' } });
  });
});
