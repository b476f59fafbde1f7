// The tenant level of the budget scope tree: every step, tool call and model call of a run with a
// tenant is checked against what its tenant's window has left (the store's counters and what the
// tenant's other live runs in this process spent or hold), and refused with scope 'tenant'.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { MultiAgentOrchestrator, Orchestrator, PolicyViolationError, createMemoryStore, type AgentContext, type ExecutionReport, type OaoEvent, type StepResult } from '../src/index.js';
import { useTenantBudgets } from '../src/runtime/orchestratorInternals.js';
import { createServer, type ServerOptions } from '../src/server/index.js';
import { TenantBudgets } from '../src/tenants/TenantBudgets.js';
import { TenantLedger } from '../src/tenants/TenantLedger.js';
import { TenantLevel } from '../src/tenants/TenantLevel.js';
import { checkTenantBudget, type TenantBudgetOptions } from '../src/tenants/tenantBudget.js';

/** 2026-12-01T12:00:00Z */
const NOON = Date.UTC(2026, 11, 1, 12);

function clockAt(ms: number): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(ms);
  return clock;
}

/**
 * Runs `count` steps; each step makes one model call that reserves 30 tokens (10 in, 20 out) and
 * spends all of them. With `pause`, other runs' calls come in between a call's reserve and spend.
 */
function steps(count: number, pause = false) {
  const refusals: unknown[] = [];
  const agent = {
    name: 'caller',
    async invoke(input: number, ctx: AgentContext) {
      let call;
      try {
        call = ctx.beginModelCall({ model: 'fake-model', input: 'question', inputTokens: 10, maxOutputTokens: 20 });
      } catch (error) {
        refusals.push(error);
        throw error;
      }
      if (pause) await new Promise((resolve) => setImmediate(resolve));
      call.end('answer', { input: 10, output: 20 });
      return { output: input };
    },
    review: (result: StepResult) => (result.step >= count ? { done: true as const } : { done: false as const, input: result.step + 1 }),
  };
  return { agent, refusals };
}

/** An orchestrator whose runs of `acme` are under `budget`, kept in a memory store. */
function tenantOrchestrator(budget: TenantBudgetOptions, options: { pricing?: Record<string, { inputPerMTok: number; outputPerMTok: number }> } = {}) {
  const clock = clockAt(NOON);
  const store = createMemoryStore();
  const tenants = new TenantBudgets(new Map([['acme', checkTenantBudget(budget, 'budget')]]), store, () => clock.now(), (error) => {
    throw error;
  });
  const orch = new Orchestrator({
    clock,
    store,
    policy: { maxSteps: 10, maxTokens: 10_000, maxToolCalls: 20, ...(options.pricing === undefined ? {} : { pricing: options.pricing }) },
  });
  useTenantBudgets(orch, tenants.accountFor);
  return { orch, tenants, clock, store };
}

describe('a run of a tenant with a budget', () => {
  it('is stopped at the step whose model call would cross the daily maxTokens, with scope tenant, and never ends above it', async () => {
    const { orch, tenants } = tenantOrchestrator({ window: 'day', maxTokens: 100 });
    const { agent, refusals } = steps(10);
    const handle = orch.start({ agent, task: 1, tenant: 'acme', executionId: 'acme-1' });
    const report = await handle.report;
    // 3 steps spend 90; the 4th step's call would reserve 30 with 10 left.
    expect(report.totalSteps).toBe(4);
    expect(report.tokenUsage.total).toBe(90);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' });
    expect(refusals[0]).toBeInstanceOf(PolicyViolationError);
    expect(refusals[0]).toMatchObject({ code: 'OAO_ERR_POLICY_VIOLATION', details: { scope: 'tenant', rule: 'max_tokens', limit: 100 } });
    const violation = handle.events().find((event) => event.type === 'POLICY_VIOLATION');
    expect(violation?.payload).toMatchObject({ rule: 'max_tokens', scope: 'tenant', limit: 100 });
    // The window is charged with the report's spend when the run ends.
    expect(tenants.usage('acme').spent.tokens).toBe(90);
  });

  it('refuses a model call whose reservation does not fit what the tenant has left: MODEL_CALL_DENIED with scope tenant', async () => {
    const { orch, tenants } = tenantOrchestrator({ window: 'day', maxTokens: 50 });
    const first = await orch.run({ agent: steps(1).agent, task: 1, tenant: 'acme' });
    expect(first.status).toBe('SUCCESS');
    expect(tenants.usage('acme').spent.tokens).toBe(30);
    // 20 left: the next call reserves 30, and is refused before it is sent.
    const second = orch.start({ agent: steps(1).agent, task: 1, tenant: 'acme' });
    const report = await second.report;
    const denied = second.events().find((event): event is Extract<OaoEvent, { type: 'MODEL_CALL_DENIED' }> => event.type === 'MODEL_CALL_DENIED');
    expect(denied?.payload).toMatchObject({ rule: 'max_tokens', scope: 'tenant', remaining: 20, reserved: { input: 10, output: 20 } });
    expect(second.events().some((event) => event.type === 'MODEL_CALL')).toBe(false);
    expect(report).toMatchObject({ status: 'FAILED', termination: { reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' }, tokenUsage: { total: 0 } });
    expect(tenants.usage('acme').spent.tokens).toBe(30);
  });

  it('lowers a fitOutput call to what the tenant has left, and reserves that', async () => {
    const { orch, tenants } = tenantOrchestrator({ window: 'day', maxTokens: 100 });
    expect((await orch.run({ agent: steps(3).agent, task: 1, tenant: 'acme' })).tokenUsage.total).toBe(90);
    let lowered: number | undefined;
    const fitter = {
      name: 'fitter',
      invoke(_: unknown, ctx: AgentContext) {
        const call = ctx.beginModelCall({ model: 'fake-model', input: 'q', inputTokens: 4, maxOutputTokens: 20, fitOutput: true });
        lowered = call.loweredMaxOutputTokens;
        call.end('short answer', { input: 4, output: 6 });
        return 'done';
      },
    };
    const handle = orch.start({ agent: fitter, task: 1, tenant: 'acme' });
    expect((await handle.report).status).toBe('SUCCESS');
    // 10 tokens left in the window: 4 for the prompt, 6 for the output.
    expect(lowered).toBe(6);
    expect(handle.events().find((event) => event.type === 'MODEL_CALL')?.payload).toMatchObject({ reserved: { input: 4, output: 6 } });
    expect(tenants.usage('acme').spent.tokens).toBe(100);
  });

  it('shares one level between concurrent runs of the tenant: together they never exceed the limit', async () => {
    const { orch, tenants } = tenantOrchestrator({ window: 'day', maxTokens: 100 });
    // Each run alone would spend 150; they interleave reservations and spend.
    const handles = [0, 1, 2].map(() => orch.start({ agent: steps(5, true).agent, task: 1, tenant: 'acme' }));
    const reports = await Promise.all(handles.map((handle) => handle.report));
    const total = reports.reduce((sum, report) => sum + report.tokenUsage.total, 0);
    expect(total).toBeLessThanOrEqual(100);
    expect(total).toBe(90);
    for (const report of reports) expect(report.termination).toMatchObject({ reason: 'policy_violation', scope: 'tenant' });
    expect(tenants.usage('acme').spent.tokens).toBe(total);
  });

  it("holds a tenant's maxCostUsd: the call that could cost more than is left is refused with rule max_cost, scope tenant", async () => {
    // $0.10 a token: a call reserving 30 tokens may cost $3.
    const pricing = { 'fake-model': { inputPerMTok: 100_000, outputPerMTok: 100_000 } };
    const { orch, tenants } = tenantOrchestrator({ window: 'month', maxCostUsd: 10 }, { pricing });
    const handle = orch.start({ agent: steps(10).agent, task: 1, tenant: 'acme' });
    const report = await handle.report;
    expect(report.totalSteps).toBe(4);
    expect(report.cost?.micros).toBe(9_000_000);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_cost', scope: 'tenant' });
    const denied = handle.events().find((event): event is Extract<OaoEvent, { type: 'MODEL_CALL_DENIED' }> => event.type === 'MODEL_CALL_DENIED');
    expect(denied?.payload).toMatchObject({ rule: 'max_cost', scope: 'tenant', remainingCostMicros: 1_000_000 });
    expect(tenants.usage('acme').spent.costUsd).toBe(9);
  });

  it('holds the tenant maxSteps and maxToolCalls across its runs', async () => {
    const { orch } = tenantOrchestrator({ window: 'day', maxSteps: 5, maxToolCalls: 4 });
    const stepper = { name: 'stepper', invoke: (input: number) => ({ output: input }), review: (result: StepResult) => ({ done: result.step >= 3, input: result.step + 1 }) };
    expect((await orch.run({ agent: stepper, task: 1, tenant: 'acme' })).totalSteps).toBe(3);
    const second = await orch.run({ agent: stepper, task: 1, tenant: 'acme' });
    // 2 steps left: the third is never started.
    expect(second).toMatchObject({ totalSteps: 2, termination: { reason: 'policy_violation', rule: 'max_steps', scope: 'tenant' } });

    const { orch: tools } = tenantOrchestrator({ window: 'day', maxToolCalls: 3 });
    let bodies = 0;
    const caller = { name: 'tooler', invoke: async (_: unknown, ctx: AgentContext) => { await ctx.callTool('t', {}); await ctx.callTool('t', {}); return 'x'; } };
    const toolSet = { t: () => (bodies += 1) };
    expect((await tools.run({ agent: caller, task: 1, tools: toolSet, tenant: 'acme' })).status).toBe('SUCCESS');
    const refused = await tools.run({ agent: caller, task: 1, tools: toolSet, tenant: 'acme' });
    expect(bodies).toBe(3);
    expect(refused.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls', scope: 'tenant' });
  });

  it('leaves a run without a tenant (and one of a tenant without a budget) unaffected', async () => {
    const { orch } = tenantOrchestrator({ window: 'day', maxTokens: 60 });
    const stopped = await orch.run({ agent: steps(4).agent, task: 1, tenant: 'acme' });
    expect(stopped.termination).toMatchObject({ scope: 'tenant' });
    // The tenant's window is spent; runs that are not its own do not see it.
    const plain = await orch.run({ agent: steps(4).agent, task: 1 });
    expect(plain).toMatchObject({ status: 'SUCCESS', totalSteps: 4, tokenUsage: { total: 120 } });
    const other = await orch.run({ agent: steps(4).agent, task: 1, tenant: 'beta' });
    expect(other).toMatchObject({ status: 'SUCCESS', totalSteps: 4 });
  });

  it('counts the tenant level in a batch of runs too', async () => {
    const clock = clockAt(NOON);
    const tenants = new TenantBudgets(new Map([['acme', checkTenantBudget({ window: 'day', maxTokens: 100 }, 'budget')]]), undefined, () => clock.now(), () => undefined);
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 3, clock, policy: { maxSteps: 10, maxTokens: 10_000 } });
    useTenantBudgets(multi, tenants.accountFor);
    const reports = await multi.runAll([0, 1, 2].map(() => ({ agent: steps(5, true).agent, task: 1, tenant: 'acme' })));
    expect(reports.reduce((sum, report) => sum + report.tokenUsage.total, 0)).toBe(90);
    for (const report of reports) expect(report.termination).toMatchObject({ scope: 'tenant' });
  });

  it('keeps covering a run continued from its log, and charges its window what the run spent once', async () => {
    const clock = clockAt(NOON);
    const store = createMemoryStore();
    const tenants = new TenantBudgets(new Map([['acme', checkTenantBudget({ window: 'day', maxToolCalls: 4 }, 'budget')]]), store, () => clock.now(), (error) => {
      throw error;
    });
    const orch = new Orchestrator({ clock, store, policy: { maxToolCalls: 20, tools: { approve: ['sendEmail'] } } });
    useTenantBudgets(orch, tenants.accountFor);
    const agent = {
      async invoke(_task: unknown, ctx: AgentContext) {
        await ctx.callTool('search', { q: 1 });
        await ctx.callTool('search', { q: 2 });
        await ctx.callTool('sendEmail', { to: 'ceo@example.com' });
        // Two calls before, one approved: the tenant's fourth and fifth calls, the fifth past its limit.
        await ctx.callTool('search', { q: 3 });
        await ctx.callTool('search', { q: 4 });
        return { output: 'done' };
      },
    };
    const tools = { search: () => 'found', sendEmail: () => 'sent' };
    const handle = orch.start({ agent, task: 't', tools, tenant: 'acme', executionId: 'continued' });
    while (handle.pendingApprovals().length === 0) await new Promise((resolve) => setImmediate(resolve));
    await handle.unload();
    await expect(handle.report).rejects.toMatchObject({ code: 'OAO_ERR_RUN_UNLOADED' });
    // Leaving its process, the run charged its window what it had spent.
    const before = tenants.usage('acme').spent.toolCalls;
    expect(before).toBeGreaterThanOrEqual(2);

    await orch.approve('continued', 't3');
    const report = await orch.resume('continued', { agent, tools });
    // What it spent before it was unloaded counts in the checks after: the fifth call is refused.
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls', scope: 'tenant' });
    expect(report.toolUsage.total).toBe(4);
    // Charged once: the window holds the run's spend, not the part before the unload twice.
    expect(tenants.usage('acme').spent.toolCalls).toBe(4);
  });
});

describe('a server with tenant budgets', () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  async function serve(options: Partial<ServerOptions>): Promise<FastifyInstance> {
    const app = await createServer({
      agents: { caller: steps(3).agent, stepper: { name: 'stepper', invoke: (input: number) => ({ output: input }), review: (result: StepResult) => ({ done: result.step >= 4, input: result.step + 1 }) } },
      dashboard: false,
      clock: clockAt(NOON),
      ...options,
    });
    apps.push(app);
    await app.ready();
    return app;
  }
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  it('stops the second run inside the run, not at admission, when the first used most of the window', { timeout: 20_000 }, async () => {
    const app = await serve({ apiKeys: { 'acme-key': { tenant: 'acme', budget: { window: 'day', maxTokens: 100 } } } });
    const first = await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'caller', task: 1 } });
    expect(first.json<ExecutionReport>()).toMatchObject({ status: 'SUCCESS', tokenUsage: { total: 90 } });
    // 10 tokens left: admitted, then refused at its first model call.
    const second = await app.inject({ method: 'POST', url: '/run', headers: bearer('acme-key'), payload: { agent: 'caller', task: 1 } });
    expect(second.statusCode).toBe(200);
    expect(second.json<ExecutionReport>()).toMatchObject({
      status: 'FAILED',
      totalSteps: 1,
      tokenUsage: { total: 0 },
      termination: { reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' },
      error: { details: { scope: 'tenant' } },
    });
    // Charged once each: the run's account charged the window, the route did not again.
    const usage = await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('acme-key') });
    expect(usage.json()).toMatchObject({ spent: { runs: 2, tokens: 90, steps: 4 } });
  });

  it('holds a POST /run-multi batch to what the tenant has left', { timeout: 20_000 }, async () => {
    const app = await serve({ apiKeys: { 'acme-key': { tenant: 'acme', budget: { window: 'day', maxTokens: 100 } } } });
    const answer = await app.inject({ method: 'POST', url: '/run-multi', headers: bearer('acme-key'), payload: { agents: { a: 'caller', b: 'caller' }, task: 1 } });
    expect(answer.statusCode, answer.body).toBe(200);
    const reports = Object.values(answer.json<{ reports: Record<string, ExecutionReport> }>().reports);
    expect(reports.reduce((sum, report) => sum + report.tokenUsage.total, 0)).toBeLessThanOrEqual(100);
    expect(reports.some((report) => report.termination.scope === 'tenant')).toBe(true);
    const usage = await app.inject({ method: 'GET', url: '/tenants/acme/usage', headers: bearer('acme-key') });
    expect(usage.json<{ spent: { tokens: number } }>().spent.tokens).toBeLessThanOrEqual(100);
  });

  it("lets a key raise a paused run of its own tenant only (an admin key any): another tenant's key gets 403", { timeout: 20_000 }, async () => {
    const app = await serve({
      apiKeys: { 'acme-key': { tenant: 'acme' }, 'beta-key': { tenant: 'beta' }, 'ops-key': { tenant: 'ops', name: 'ops' } },
      adminKeys: ['ops'],
      policy: { maxSteps: 6, onLimit: { maxSteps: 'pause' } },
    });
    const started = await app.inject({ method: 'POST', url: '/runs', headers: bearer('acme-key'), payload: { agent: 'stepper', task: 1, executionId: 'p1', policy: { maxSteps: 1 } } });
    expect(started.statusCode, started.body).toBe(202);
    for (;;) {
      const run = (await app.inject({ method: 'GET', url: '/runs/p1', headers: bearer('acme-key') })).json<{ state: string | null; counters: { steps: number } }>();
      if (run.state === 'REVIEW' && run.counters.steps === 1) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const foreign = await app.inject({ method: 'POST', url: '/runs/p1/budget', headers: bearer('beta-key'), payload: { limits: { maxSteps: 2 } } });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json()).toMatchObject({ error: { code: 'OAO_ERR_FORBIDDEN' } });
    const own = await app.inject({ method: 'POST', url: '/runs/p1/budget', headers: bearer('acme-key'), payload: { limits: { maxSteps: 2 } } });
    expect(own.statusCode, own.body).toBe(200);
    for (;;) {
      const run = (await app.inject({ method: 'GET', url: '/runs/p1', headers: bearer('acme-key') })).json<{ state: string | null; counters: { steps: number } }>();
      if (run.state === 'REVIEW' && run.counters.steps === 2) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const admin = await app.inject({ method: 'POST', url: '/runs/p1/budget', headers: bearer('ops-key'), payload: { limits: { maxSteps: 4 } } });
    expect(admin.statusCode, admin.body).toBe(200);
  });
});

describe('TenantLevel bookkeeping', () => {
  it('remembers at most 10,000 settled runs that no route asked about', () => {
    const ledger = new TenantLedger('acme', checkTenantBudget({ window: 'day', maxTokens: 1_000_000 }, 'budget'), undefined, () => Date.UTC(2026, 0, 1), () => {});
    const level = new TenantLevel(ledger);
    for (let i = 0; i < 10_005; i++) level.open().settle(`run-${i}`, { steps: 0, tokens: 0, toolCalls: 0, costMicros: 0 });
    expect(level.takeSettled('run-0')).toBe(false);
    expect(level.takeSettled('run-4')).toBe(false);
    expect(level.takeSettled('run-5')).toBe(true);
    expect(level.takeSettled('run-10004')).toBe(true);
  });
});
