// A run knows its tenant: the `tenant` run option, recorded in EXECUTION_START, shown in the
// server's run view (from the request's API key, never the body) and used as a metrics label.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { OaoError, Orchestrator, createMemoryStore } from '../src/index.js';
import { foldRun } from '../src/log/foldRun.js';
import { verifyReplay } from '../src/log/verifyReplay.js';
import { spender, tools } from './fixtures/spender.js';
import { startOf } from './helpers.js';
import { createMetrics } from '../src/observability/metrics/index.js';
import { createServer, type ServerOptions } from '../src/server/index.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function serve(options: Partial<ServerOptions>): Promise<FastifyInstance> {
  const app = await createServer({ agents: { spender }, tools, dashboard: false, ...options });
  apps.push(app);
  await app.ready();
  return app;
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const keys = { 'acme-key': { tenant: 'acme' }, 'beta-key': { tenant: 'beta' } };

/** `name{labels}` -> value, for every sample line of a Prometheus text exposition. */
function samples(text: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\S+(?:\{.*\})?) (\S+)$/.exec(line);
    if (match !== null && !line.startsWith('#')) result.set(match[1] as string, Number(match[2]));
  }
  return result;
}

describe('the tenant run option', () => {
  it('is recorded in EXECUTION_START, kept by the store and the fold, and leaves executionHash alone', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const handle = orch.start({ agent: spender, task: 'go', tools, tenant: 'acme', executionId: 'with-tenant' });
    await handle.report;
    const start = startOf(handle.events());
    expect(start.payload.tenant).toBe('acme');
    expect(startOf(store.events('with-tenant')).payload.tenant).toBe('acme');
    expect(foldRun(store.events('with-tenant'))?.tenant).toBe('acme');

    const plain = orch.start({ agent: spender, task: 'go', tools, executionId: 'without-tenant' });
    await plain.report;
    const plainStart = startOf(plain.events());
    // Absent, not undefined: logs of runs without a tenant are what they were.
    expect(Object.keys(plainStart.payload)).not.toContain('tenant');
    expect(plainStart.payload.executionHash).toBe(start.payload.executionHash);
  });

  it('replays a run with a tenant without diverging', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const report = await orch.run({ agent: spender, task: 'go', tools, tenant: 'acme', executionId: 'replayed' });
    await expect(verifyReplay(store.events('replayed'), { agent: spender })).resolves.toMatchObject({ executionId: report.executionId, status: 'SUCCESS' });
  });

  it('refuses a tenant that is not a tenant id with a typed error naming the field', () => {
    const orch = new Orchestrator();
    for (const tenant of ['', 'a b', 42, '-lead', 'x'.repeat(101)]) {
      let caught: unknown;
      try {
        orch.start({ agent: spender, task: 'go', tools, tenant: tenant as string });
      } catch (error) {
        caught = error;
      }
      expect(OaoError.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'tenant' } });
    }
  });
});

describe('a server whose API keys map to tenants', () => {
  it("records the key's tenant in the run's EXECUTION_START and shows it in GET /runs/:id and GET /runs", async () => {
    const store = createMemoryStore();
    const app = await serve({ apiKeys: keys, store });
    const started = await app.inject({ method: 'POST', url: '/runs', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go' } });
    expect(started.statusCode).toBe(202);
    const { executionId } = started.json<{ executionId: string }>();
    const waited = await app.inject({ method: 'POST', url: '/run', headers: bearer('beta-key'), payload: { agent: 'spender', task: 'go', executionId: 'beta-run' } });
    expect(waited.statusCode).toBe(200);

    const run = await app.inject({ method: 'GET', url: `/runs/${executionId}`, headers: bearer('acme-key') });
    expect(run.json()).toMatchObject({ executionId, tenant: 'acme' });
    expect((await app.inject({ method: 'GET', url: '/runs/beta-run', headers: bearer('acme-key') })).json()).toMatchObject({ tenant: 'beta', status: 'SUCCESS' });
    const list = (await app.inject({ method: 'GET', url: '/runs', headers: bearer('acme-key') })).json<{ runs: { executionId: string; tenant?: string }[] }>();
    expect(Object.fromEntries(list.runs.map((item) => [item.executionId, item.tenant]))).toEqual({ [executionId]: 'acme', 'beta-run': 'beta' });
    expect(startOf(store.events('beta-run')).payload.tenant).toBe('beta');
  });

  it('reads the tenant of a run another server process started from its log', async () => {
    const store = createMemoryStore();
    const first = await serve({ apiKeys: keys, store });
    expect((await first.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go', executionId: 'earlier' } })).statusCode).toBe(200);
    const second = await serve({ apiKeys: keys, store });
    expect((await second.inject({ method: 'GET', url: '/runs/earlier', headers: bearer('beta-key') })).json()).toMatchObject({ executionId: 'earlier', tenant: 'acme' });
  });

  it('gives every run of a POST /run-multi batch its tenant', async () => {
    const store = createMemoryStore();
    const app = await serve({ apiKeys: keys, store });
    const answer = await app.inject({ method: 'POST', url: '/run-multi', headers: bearer('beta-key'), payload: { agents: { a: 'spender', b: 'spender' }, task: 'go' } });
    expect(answer.statusCode).toBe(200);
    const reports = Object.values(answer.json<{ reports: Record<string, { executionId: string }> }>().reports);
    expect(reports).toHaveLength(2);
    for (const { executionId } of reports) {
      expect(startOf(store.events(executionId)).payload.tenant).toBe('beta');
      expect((await app.inject({ method: 'GET', url: `/runs/${executionId}`, headers: bearer('beta-key') })).json()).toMatchObject({ tenant: 'beta' });
    }
  });

  it("never lets a client choose its tenant: a body's `tenant` is an unknown field (400), and the key decides", async () => {
    const store = createMemoryStore();
    const app = await serve({ apiKeys: keys, store });
    for (const url of ['/run', '/runs']) {
      const refused = await app.inject({ method: 'POST', url, headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go', tenant: 'beta' } });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.code).toBe('OAO_ERR_INVALID_ARGUMENT');
    }
    const multi = await app.inject({ method: 'POST', url: '/run-multi', headers: bearer('acme-key'), payload: { agents: ['spender'], task: 'go', tenant: 'beta' } });
    expect(multi.statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/runs', headers: bearer('acme-key') })).json()).toMatchObject({ total: 0 });
    const run = await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'spender', task: 'go', executionId: 'mine' } });
    expect(run.statusCode).toBe(200);
    expect(startOf(store.events('mine')).payload.tenant).toBe('acme');
  });

  it('gives plain keys the tenant "default", and a server without keys runs without a tenant', async () => {
    const store = createMemoryStore();
    const keyed = await serve({ apiKeys: ['plain-key'], store });
    await keyed.inject({ method: 'POST', url: '/run', headers: bearer('plain-key'), payload: { agent: 'spender', task: 'go', executionId: 'plain' } });
    expect((await keyed.inject({ method: 'GET', url: '/runs/plain', headers: bearer('plain-key') })).json()).toMatchObject({ tenant: 'default' });

    const open = await serve({ store: createMemoryStore() });
    await open.inject({ method: 'POST', url: '/run', payload: { agent: 'spender', task: 'go', executionId: 'open' } });
    const view = (await open.inject({ method: 'GET', url: '/runs/open' })).json<Record<string, unknown>>();
    expect(view.status).toBe('SUCCESS');
    expect(Object.keys(view)).not.toContain('tenant');
  });

  it('counts runs, tokens and tool calls per tenant in GET /metrics', async () => {
    const app = await serve({ apiKeys: keys, metrics: createMetrics() });
    for (const key of ['acme-key', 'acme-key', 'beta-key']) {
      expect((await app.inject({ method: 'POST', url: '/run', headers: bearer(key), payload: { agent: 'spender', task: 'go' } })).statusCode).toBe(200);
    }
    const scraped = samples((await app.inject({ method: 'GET', url: '/metrics', headers: bearer('acme-key') })).body);
    expect(scraped.get('oao_runs_total{status="SUCCESS",agent="spender",reason="completed",tenant="acme"}')).toBe(2);
    expect(scraped.get('oao_runs_total{status="SUCCESS",agent="spender",reason="completed",tenant="beta"}')).toBe(1);
    expect(scraped.get('oao_tokens_total{agent="spender",direction="input",tenant="acme"}')).toBe(10);
    expect(scraped.get('oao_tokens_total{agent="spender",direction="output",tenant="beta"}')).toBe(3);
    expect(scraped.get('oao_tool_calls_total{agent="spender",tool="lookup",tenant="acme"}')).toBe(2);
    expect(scraped.get('oao_tool_calls_total{agent="spender",tool="lookup",tenant="beta"}')).toBe(1);
    expect(scraped.get('oao_active_runs{agent="spender",tenant="acme"}')).toBe(0);
  });

  it('counts the tenants past maxTenantLabels under tenant="other"', async () => {
    const threeKeys = { ...keys, 'gamma-key': { tenant: 'gamma' } };
    const app = await serve({ apiKeys: threeKeys, metrics: createMetrics({ maxTenantLabels: 2 }) });
    for (const key of ['acme-key', 'beta-key', 'gamma-key', 'gamma-key']) {
      expect((await app.inject({ method: 'POST', url: '/run', headers: bearer(key), payload: { agent: 'spender', task: 'go' } })).statusCode).toBe(200);
    }
    const scraped = samples((await app.inject({ method: 'GET', url: '/metrics', headers: bearer('acme-key') })).body);
    const runs = (tenant: string) => scraped.get(`oao_runs_total{status="SUCCESS",agent="spender",reason="completed",tenant="${tenant}"}`);
    expect([runs('acme'), runs('beta'), runs('gamma'), runs('other')]).toEqual([1, 1, undefined, 2]);
  });
});
