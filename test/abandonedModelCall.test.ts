// A model call still running when its step is aborted or its run ends: its request went out and
// may be billed, so it is charged its whole reservation (recorded as its result, flagged
// `abandoned`) before the run's report is made; its late answer is ignored. Budgets above the run
// (a batch's, a tenant's) can then never hand the same tokens to another run.
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { canonicalJson, createMemoryStore, MultiAgentOrchestrator, Orchestrator, type AgentContext, type ModelCall } from '../src/index.js';
import { useTenantBudgets } from '../src/runtime/orchestratorInternals.js';
import { TenantBudgets } from '../src/tenants/TenantBudgets.js';
import { checkTenantBudget } from '../src/tenants/tenantBudget.js';

/** Starts a 100-token call and leaves it running, then asks for a second that cannot fit: the run ends. */
function leavesOneRunning(left: ModelCall[]) {
  return {
    name: 'leaves-one-running',
    async invoke(_task: unknown, ctx: AgentContext) {
      const first = ctx.beginModelCall({ model: 'm', input: 'first', inputTokens: 50, maxOutputTokens: 50 });
      await first.ready;
      left.push(first);
      const second = ctx.beginModelCall({ model: 'm', input: 'second', inputTokens: 30, maxOutputTokens: 30 });
      await second.ready;
      second.end('never', { input: 30, output: 30 });
      return { output: 'never' };
    },
  };
}

/** One 100-token call that spends what it reserved. */
const spender = {
  name: 'spender',
  async invoke(_task: unknown, ctx: AgentContext) {
    const call = ctx.beginModelCall({ model: 'm', input: 'q', inputTokens: 50, maxOutputTokens: 50 });
    await call.ready;
    call.end('answer', { input: 50, output: 50 });
    return { output: 'spent' };
  },
};

/** An orchestrator whose runs of tenant `acme` share a daily window of 150 tokens, kept in a memory store. */
function tenantOrchestrator() {
  const clock = new SimulatedClock();
  clock.set(Date.UTC(2026, 11, 2, 12));
  const store = createMemoryStore();
  const tenants = new TenantBudgets(new Map([['acme', checkTenantBudget({ window: 'day', maxTokens: 150 }, 'budget')]]), store, () => clock.now(), (error) => {
    throw error;
  });
  const orch = new Orchestrator({ clock, store });
  useTenantBudgets(orch, tenants.accountFor);
  return { store, tenants, orch };
}

describe('a model call its run left running', () => {
  it("is charged its reservation before the report is made: the tenant's next run cannot spend the same tokens", { timeout: 5_000 }, async () => {
    const { tenants, orch } = tenantOrchestrator();
    const left: ModelCall[] = [];
    const first = orch.start({ agent: leavesOneRunning(left), task: 't', tenant: 'acme' });
    const report = await first.report;
    // The second call (60 more) did not fit in 150 with 100 held: the run ended with the first still running.
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' });
    expect(report.tokenUsage).toEqual({ input: 50, output: 50, total: 100 });
    const abandoned = first.events().find((event) => event.type === 'MODEL_RESULT');
    expect(abandoned?.payload).toMatchObject({ callId: 'm1', ok: false, abandoned: true, unmetered: true, usage: { input: 50, output: 50, total: 100 } });
    expect(tenants.usage('acme').spent.tokens).toBe(100);
    // Its late answer changes nothing.
    left[0]?.end('late', { input: 50, output: 50 });
    expect(tenants.usage('acme').spent.tokens).toBe(100);

    // The tenant's next run finds 50 left: its 100-token call is refused, never sent.
    const second = await orch.run({ agent: spender, task: 't', tenant: 'acme' });
    expect(second.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' });
    expect(tenants.usage('acme').spent.tokens).toBe(100);
    // The log holds the charge: replay gives the same report, and so does a verifying re-run of the
    // agent, the tenant's refusal of its second call served from the log.
    expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
    const again: ModelCall[] = [];
    expect(canonicalJson(await orch.replay(report.executionId, { verify: true, agent: leavesOneRunning(again) }))).toBe(canonicalJson(report));
    expect(canonicalJson(await orch.replay(second.executionId, { verify: true, agent: spender }))).toBe(canonicalJson(second));
  });

  it("is recorded in the run's log: a verifying re-run of the agent, its calls served from the log, ends the same way", { timeout: 5_000 }, async () => {
    const orch = new Orchestrator({ store: createMemoryStore(), policy: { maxTokens: 150 } });
    const left: ModelCall[] = [];
    const report = await orch.run({ agent: leavesOneRunning(left), task: 't' });
    expect(report).toMatchObject({ status: 'FAILED', tokenUsage: { total: 100 }, termination: { reason: 'policy_violation', rule: 'max_tokens' } });
    const again: ModelCall[] = [];
    expect(canonicalJson(await orch.replay(report.executionId, { verify: true, agent: leavesOneRunning(again) }))).toBe(canonicalJson(report));
    expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
  });

  it("counts against a batch's shared budget the same way", { timeout: 5_000 }, async () => {
    const left: ModelCall[] = [];
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxTokens: 150 } });
    const [first, second] = await multi.runAll([
      { agent: leavesOneRunning(left), task: 't' },
      { agent: spender, task: 't' },
    ]);
    // Without the charge the batch would pay 100 (abandoned, billed) + 100: 200 of its 150.
    expect(first?.tokenUsage.total).toBe(100);
    expect(second?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'shared' });
    expect((first?.tokenUsage.total ?? 0) + (second?.tokenUsage.total ?? 0)).toBeLessThanOrEqual(150);
  });

  it('is charged when a cancel aborts its step, and its late answer is ignored', { timeout: 5_000 }, async () => {
    const orch = new Orchestrator({ store: false });
    const left: ModelCall[] = [];
    const handle = orch.start({
      agent: {
        async invoke(_task: unknown, ctx: AgentContext) {
          const call = ctx.beginModelCall({ model: 'm', input: 'q', inputTokens: 20, maxOutputTokens: 80 });
          await call.ready;
          left.push(call);
          return new Promise(() => {});
        },
      },
      task: 't',
    });
    while (left.length === 0) await new Promise((resolve) => setImmediate(resolve));
    handle.cancel('stop');
    const report = await handle.report;
    expect(report.termination.reason).toBe('cancelled');
    expect(report.tokenUsage.total).toBe(100);
    left[0]?.end('late', { input: 20, output: 5 });
    expect(report.tokenUsage.total).toBe(100);
  });
});

describe('a verifying re-run under a budget above the run', () => {
  it("lets a verifying re-run refuse a call where the batch's budget refused it, though the re-run has no batch", { timeout: 5_000 }, async () => {
    const store = createMemoryStore();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxTokens: 150 }, store });
    const [first, second] = await multi.runAll([
      { agent: spender, task: 't' },
      { agent: spender, task: 't' },
    ]);
    expect(first?.status).toBe('SUCCESS');
    const events = store.events(second?.executionId as string);
    expect(events.find((event) => event.type === 'MODEL_CALL_DENIED')?.payload).toMatchObject({ scope: 'shared', rule: 'max_tokens', remaining: 50 });
    const verified = await new Orchestrator({ store: false }).replay(events, { verify: true, agent: spender });
    expect(canonicalJson(verified)).toBe(canonicalJson(second));
  });

  it('verifies a run its batch refused before it began, with nothing to re-run', { timeout: 5_000 }, async () => {
    const store = createMemoryStore();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxTokens: 150 }, store });
    const left: ModelCall[] = [];
    const [, second] = await multi.runAll([
      { agent: leavesOneRunning(left), task: 't' },
      { agent: spender, task: 't' },
    ]);
    // The first run's refused call stopped the batch: the second never entered its lifecycle.
    const events = store.events(second?.executionId as string);
    expect(events.map((event) => event.type)).toEqual(['EXECUTION_START', 'POLICY_VIOLATION', 'EXECUTION_COMPLETE']);
    let invoked = 0;
    const counted = { ...spender, invoke: (task: unknown, ctx: AgentContext) => ((invoked += 1), spender.invoke(task, ctx)) };
    const verified = await new Orchestrator({ store: false }).replay(events, { verify: true, agent: counted });
    expect(canonicalJson(verified)).toBe(canonicalJson(second));
    expect(invoked).toBe(0);
  });

  it("lowers a fitOutput call as far as the recording's tenant lowered it", { timeout: 5_000 }, async () => {
    const { store, orch } = tenantOrchestrator();
    /** Asks for up to 100 tokens of output, fitted to what is left, and spends what it was given. */
    const fitter = {
      name: 'fitter',
      async invoke(_task: unknown, ctx: AgentContext) {
        const call = ctx.beginModelCall({ model: 'm', input: 'q', inputTokens: 20, maxOutputTokens: 100, fitOutput: true });
        await call.ready;
        const output = call.loweredMaxOutputTokens ?? 100;
        call.end('fitted', { input: 20, output });
        return { output };
      },
    };
    await orch.run({ agent: spender, task: 't', tenant: 'acme' });
    // 50 left: the call is sent with 30 output tokens.
    const fitted = await orch.run({ agent: fitter, task: 't', tenant: 'acme' });
    expect(fitted).toMatchObject({ status: 'SUCCESS', finalOutput: 30, tokenUsage: { total: 50 } });
    const verified = await new Orchestrator({ store: false }).replay(store.events(fitted.executionId), { verify: true, agent: fitter });
    expect(canonicalJson(verified)).toBe(canonicalJson(fitted));
  });
});
