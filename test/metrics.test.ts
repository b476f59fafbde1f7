import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, DEFAULT_MAX_TENANT_LABELS, metricsPlugin, OTHER_TENANT, type Metrics } from '../src/observability/metrics/index.js';
import { MultiAgentOrchestrator, OaoError, Orchestrator, type AgentContext } from '../src/index.js';
import { deferred, flush, runawayAgent } from './helpers.js';

/** `name{labels}` -> value, for every sample line of a Prometheus text exposition. */
function samples(text: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(\S+(?:\{.*\})?) (\S+)$/.exec(line);
    if (match === null) throw new Error(`Not a sample line: ${line}`);
    result.set(match[1] as string, Number(match[2]));
  }
  return result;
}

async function read(metrics: Metrics): Promise<Map<string, number>> {
  return samples(await metrics.metricsText());
}

const echo = { name: 'echo', invoke: (task: string) => ({ output: `echo: ${task}` }) };
/** Capped far above any maxSteps used here: a broken step limit fails the test instead of hanging it. */
const looper = runawayAgent({ name: 'looper', cap: 100, output: () => ({ output: 'again' }) });
const spender = {
  name: 'spender',
  invoke: (_task: string, ctx: AgentContext) => {
    ctx.usage({ input: 12, output: 5 });
    ctx.usage({ input: 3, output: 0 });
    return { output: 'spent' };
  },
};
const toolUser = {
  name: 'toolUser',
  invoke: async (_task: string, ctx: AgentContext) => {
    await ctx.callTool('search', { q: 'x' });
    await ctx.callTool('search', { q: 'y' });
    return { output: 'searched' };
  },
};
const forbidden = {
  name: 'forbidden',
  invoke: async (_task: string, ctx: AgentContext) => {
    await ctx.callTool('rm', {});
    return { output: 'unreachable' };
  },
};
const tools = { search: () => 'found', rm: () => 'removed' };

describe('createMetrics with an Orchestrator', () => {
  it('counts runs, tokens, tool calls, denials and violations with exact labels', async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator({ policy: { maxSteps: 2, tools: { deny: ['rm'] } } });
    const stop = metrics.observe(orch);

    expect((await orch.run({ agent: echo, task: 'a' })).status).toBe('SUCCESS');
    expect((await orch.run({ agent: echo, task: 'b' })).status).toBe('SUCCESS');
    expect((await orch.run({ agent: looper, task: 'c' })).termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    await orch.run({ agent: spender, task: 'd' });
    await orch.run({ agent: toolUser, task: 'e', tools });
    expect((await orch.run({ agent: forbidden, task: 'f', tools })).termination).toMatchObject({ rule: 'tool_denied' });
    stop();

    const s = await read(metrics);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBe(2);
    expect(s.get('oao_runs_total{status="FAILED",agent="looper",reason="policy_violation"}')).toBe(1);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="spender",reason="completed"}')).toBe(1);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="toolUser",reason="completed"}')).toBe(1);
    expect(s.get('oao_runs_total{status="FAILED",agent="forbidden",reason="policy_violation"}')).toBe(1);
    expect(s.get('oao_run_duration_seconds_count{agent="echo",status="SUCCESS"}')).toBe(2);
    expect(s.get('oao_run_duration_seconds_bucket{le="+Inf",agent="looper",status="FAILED"}')).toBe(1);
    expect(s.get('oao_tokens_total{agent="spender",direction="input"}')).toBe(15);
    expect(s.get('oao_tokens_total{agent="spender",direction="output"}')).toBe(5);
    expect(s.get('oao_tool_calls_total{agent="toolUser",tool="search"}')).toBe(2);
    expect(s.get('oao_tool_denials_total{agent="forbidden",tool="rm",rule="tool_denied"}')).toBe(1);
    expect(s.get('oao_policy_violations_total{agent="looper",rule="max_steps"}')).toBe(1);
    expect(s.get('oao_policy_violations_total{agent="forbidden",rule="tool_denied"}')).toBe(1);
    for (const agent of ['echo', 'looper', 'spender', 'toolUser', 'forbidden']) {
      expect(s.get(`oao_active_runs{agent="${agent}"}`)).toBe(0);
    }
  });

  it('shows a run as active while it runs, and no longer once it finished', async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator();
    metrics.observe(orch);
    const gate = deferred();
    const handle = orch.start({ agent: { name: 'waiter', invoke: async () => (await gate.promise, 'ok') }, task: 't' });
    await flush();
    expect((await read(metrics)).get('oao_active_runs{agent="waiter"}')).toBe(1);
    gate.resolve();
    await handle.report;
    expect((await read(metrics)).get('oao_active_runs{agent="waiter"}')).toBe(0);
  });

  it('stops counting once unsubscribed, and takes the runs it can no longer follow out of the active gauge', async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator();
    const stop = metrics.observe(orch);
    await orch.run({ agent: echo, task: 'a' });
    const gate = deferred();
    const handle = orch.start({ agent: { name: 'waiter', invoke: async () => (await gate.promise, 'ok') }, task: 't' });
    await flush();
    stop();
    stop(); // idempotent
    expect((await read(metrics)).get('oao_active_runs{agent="waiter"}')).toBe(0);
    gate.resolve();
    await handle.report;
    await orch.run({ agent: echo, task: 'b' });
    const s = await read(metrics);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBe(1);
    expect(s.has('oao_runs_total{status="SUCCESS",agent="waiter",reason="completed"}')).toBe(false);
    expect(s.get('oao_active_runs{agent="waiter"}')).toBe(0);
  });

  it('keeps two instances with their own registries apart, and never touches the global registry', async () => {
    const first = createMetrics();
    const registry = new Registry();
    const second = createMetrics({ registry, prefix: 'agents_' });
    expect(second.registry).toBe(registry);
    const orch = new Orchestrator();
    first.observe(orch);
    await orch.run({ agent: echo, task: 'a' });
    second.observe(orch);
    await orch.run({ agent: echo, task: 'b' });
    expect((await read(first)).get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBe(2);
    const s = await read(second);
    expect(s.get('agents_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBe(1);
    expect([...s.keys()].every((key) => key.startsWith('agents_'))).toBe(true);
    // Another instance on the same default-less setup does not clash either.
    expect(() => createMetrics()).not.toThrow();
    const { register } = await import('prom-client');
    expect(register.getSingleMetric('oao_runs_total')).toBeUndefined();
  });

  it('writes valid Prometheus exposition text', async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator();
    metrics.observe(orch);
    await orch.run({ agent: echo, task: 'a' });
    const text = await metrics.metricsText();
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const names = [
      'oao_runs_total', 'oao_run_duration_seconds', 'oao_active_runs', 'oao_tokens_total', 'oao_tool_calls_total',
      'oao_tool_denials_total', 'oao_policy_violations_total', 'oao_supervisor_queue_depth', 'oao_supervisor_running',
    ];
    for (const name of names) {
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S.*$`, 'm'));
      expect(text).toMatch(new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'));
    }
    for (const line of text.split('\n')) {
      if (line === '') continue;
      expect(line).toMatch(/^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.e+-]+|.* \+Inf.*)$/);
    }
    expect(() => samples(text)).not.toThrow();
  });

  it('rejects invalid options with a typed error', () => {
    expect(() => createMetrics({ prefix: 'bad-prefix' })).toThrow(/prefix/);
    expect(() => createMetrics({ registry: {} as Registry })).toThrow(/Registry/);
    expect(() => createMetrics().observe({} as Orchestrator)).toThrow(/events\$/);
  });
});

describe('the tenant label', () => {
  /** Two model calls of one token each way, priced at 1 micro-dollar a call. */
  const costed = {
    name: 'costed',
    async invoke(_task: string, ctx: AgentContext) {
      for (let call = 0; call < 2; call++) {
        const model = ctx.beginModelCall({ model: 'm', input: 'x', inputTokens: 1, maxOutputTokens: 1 });
        await model.ready;
        model.end('ok', { input: 1, output: 1 });
      }
      await ctx.callTool('search', {});
      return { output: 'done' };
    },
  };
  const pricing = { m: { inputPerMTok: 0.5, outputPerMTok: 0.5 } };

  it("puts the run's tenant on runs, active runs, tokens, tool calls and cost; a run without one has no tenant label", async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator({ policy: { maxCostUsd: 1, pricing } });
    metrics.observe(orch);
    const gate = deferred();
    const waiting = orch.start({ agent: { name: 'waiter', invoke: async () => (await gate.promise, 'ok') }, task: 't', tenant: 'acme' });
    await flush();
    expect((await read(metrics)).get('oao_active_runs{agent="waiter",tenant="acme"}')).toBe(1);
    gate.resolve();
    await waiting.report;
    await orch.run({ agent: costed, task: 't', tools, tenant: 'acme' });
    await orch.run({ agent: costed, task: 't', tools, tenant: 'beta' });
    await orch.run({ agent: costed, task: 't', tools });

    const s = await read(metrics);
    expect(s.get('oao_active_runs{agent="waiter",tenant="acme"}')).toBe(0);
    for (const [tenant, labels] of [['acme', ',tenant="acme"'], ['beta', ',tenant="beta"'], ['none', '']] as const) {
      expect([tenant, s.get(`oao_runs_total{status="SUCCESS",agent="costed",reason="completed"${labels}}`)]).toEqual([tenant, 1]);
      expect([tenant, s.get(`oao_tokens_total{agent="costed",direction="input"${labels}}`)]).toEqual([tenant, 2]);
      expect([tenant, s.get(`oao_tool_calls_total{agent="costed",tool="search"${labels}}`)]).toEqual([tenant, 1]);
      expect([tenant, s.get(`oao_cost_usd_total{agent="costed",model="m"${labels}}`)]).toEqual([tenant, 0.000002]);
    }
    // The duration histogram and the denial and violation counters stay without it.
    expect(s.get('oao_run_duration_seconds_count{agent="costed",status="SUCCESS"}')).toBe(3);
  });

  it('gives the first maxTenantLabels tenants their own value and counts every later one under tenant="other"', async () => {
    const metrics = createMetrics({ maxTenantLabels: 2 });
    const orch = new Orchestrator();
    metrics.observe(orch);
    for (const tenant of ['acme', 'beta', 'gamma', 'acme', 'delta']) await orch.run({ agent: echo, task: 't', tenant });
    await orch.run({ agent: echo, task: 't' });
    const s = await read(metrics);
    const runs = (labels: string) => s.get(`oao_runs_total{status="SUCCESS",agent="echo",reason="completed"${labels}}`);
    expect(runs(',tenant="acme"')).toBe(2);
    expect(runs(',tenant="beta"')).toBe(1);
    expect(runs(`,tenant="${OTHER_TENANT}"`)).toBe(2);
    expect(runs(',tenant="gamma"')).toBeUndefined();
    expect(runs(',tenant="delta"')).toBeUndefined();
    // A run without a tenant takes no place.
    expect(runs('')).toBe(1);
    expect(OTHER_TENANT).toBe('other');
    expect(DEFAULT_MAX_TENANT_LABELS).toBe(100);
  });

  it('shares the cap over every orchestrator and supervisor a metrics object observes', async () => {
    const metrics = createMetrics({ maxTenantLabels: 1 });
    const orch = new Orchestrator();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 2 });
    metrics.observe(orch);
    metrics.observeSupervisor(multi);
    await orch.run({ agent: echo, task: 't', tenant: 'acme' });
    await multi.submit([
      { agent: echo, task: 't', tenant: 'acme' },
      { agent: echo, task: 't', tenant: 'beta' },
    ]).reports;
    const s = await read(metrics);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed",tenant="acme"}')).toBe(2);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed",tenant="other"}')).toBe(1);
  });

  it('refuses a maxTenantLabels that is not an integer from 1 up with a typed error', () => {
    for (const value of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3', null]) {
      let caught: unknown;
      try {
        createMetrics({ maxTenantLabels: value as number });
      } catch (error) {
        caught = error;
      }
      expect(OaoError.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'maxTenantLabels' } });
    }
    expect(() => createMetrics({ maxTenantLabels: 1 })).not.toThrow();
  });
});

describe('createMetrics with a supervisor', () => {
  it('follows queue depth and running jobs mid-batch, and counts the child runs', async () => {
    const metrics = createMetrics();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, policy: { maxSteps: 2 } });
    const stop = metrics.observeSupervisor(multi);
    const gates = [deferred(), deferred(), deferred()];
    const jobs = gates.map((gate, index) => ({
      name: `job${index}`,
      task: index,
      agent: {
        name: 'worker',
        invoke: async (_task: number, ctx: AgentContext) => {
          await gate.promise;
          ctx.usage({ input: 2, output: 1 });
          return 'done';
        },
      },
    }));
    const handle = multi.submit(jobs);
    await flush();
    let s = await read(metrics);
    expect(s.get('oao_supervisor_queue_depth')).toBe(2);
    expect(s.get('oao_supervisor_running')).toBe(1);
    expect(s.get('oao_active_runs{agent="worker"}')).toBe(1);

    gates[0]?.resolve();
    await flush();
    s = await read(metrics);
    expect(s.get('oao_supervisor_queue_depth')).toBe(1);
    expect(s.get('oao_supervisor_running')).toBe(1);

    for (const gate of gates) gate.resolve();
    const reports = await handle.reports;
    expect(reports.map((r) => r.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    s = await read(metrics);
    expect(s.get('oao_supervisor_queue_depth')).toBe(0);
    expect(s.get('oao_supervisor_running')).toBe(0);
    expect(s.get('oao_active_runs{agent="worker"}')).toBe(0);
    expect(s.get('oao_runs_total{status="SUCCESS",agent="worker",reason="completed"}')).toBe(3);
    expect(s.get('oao_tokens_total{agent="worker",direction="input"}')).toBe(6);
    expect(s.get('oao_tokens_total{agent="worker",direction="output"}')).toBe(3);

    stop();
    await multi.runMulti({ agents: { echo }, task: 'x' });
    expect((await read(metrics)).get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBeUndefined();
  });

  it('sums the gauges over concurrent batches and drops a batch from them when the observer stops', async () => {
    const metrics = createMetrics();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1 });
    const stop = metrics.observeSupervisor(multi);
    const gate = deferred();
    const waiter = { name: 'waiter', invoke: async () => (await gate.promise, 'ok') };
    const a = multi.submit([{ agent: waiter, task: 1 }, { agent: waiter, task: 2 }]);
    const b = multi.submit([{ agent: waiter, task: 3 }, { agent: waiter, task: 4 }, { agent: waiter, task: 5 }]);
    await flush();
    let s = await read(metrics);
    expect(s.get('oao_supervisor_queue_depth')).toBe(3);
    expect(s.get('oao_supervisor_running')).toBe(2);
    stop();
    s = await read(metrics);
    expect(s.get('oao_supervisor_queue_depth')).toBe(0);
    expect(s.get('oao_supervisor_running')).toBe(0);
    expect(s.get('oao_active_runs{agent="waiter"}')).toBe(0);
    gate.resolve();
    await Promise.all([a.reports, b.reports]);
  });
});

describe('metricsPlugin', () => {
  it('answers GET /metrics with the exposition text and its content type', async () => {
    const metrics = createMetrics();
    const orch = new Orchestrator();
    metrics.observe(orch);
    await orch.run({ agent: echo, task: 'a' });
    const app = Fastify();
    await app.register(metricsPlugin(metrics));
    try {
      const answer = await app.inject({ method: 'GET', url: '/metrics' });
      expect(answer.statusCode).toBe(200);
      expect(answer.headers['content-type']).toBe(metrics.contentType);
      expect(samples(answer.body).get('oao_runs_total{status="SUCCESS",agent="echo",reason="completed"}')).toBe(1);
      expect((await app.inject({ method: 'POST', url: '/metrics' })).statusCode).toBe(404);
    } finally {
      await app.close();
    }
  });
});
