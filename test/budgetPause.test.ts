// A run that reaches a limit its policy pauses at waits for a raise instead of failing.
import { SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import { canonicalJson, Orchestrator, StrictPolicy, type AgentContext, type StepResult } from '../src/index.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { waitFor } from './helpers.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Runs until its review sees step 4; each step calls one tool. */
function fourSteps() {
  return {
    name: 'four',
    async invoke(input: { n: number }, ctx: AgentContext) {
      await ctx.callTool('work', { n: input.n });
      return { output: input.n };
    },
    review(result: StepResult) {
      return result.step >= 4 ? { done: true as const } : { done: false as const, input: { n: result.step + 1 } };
    },
  };
}

const work = { work: (args: unknown) => args };

describe('onLimit: pause', () => {
  it('maxSteps: the run waits in REVIEW.AWAITING_BUDGET; raise() lets it go on', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store, policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const handle = orch.start({ agent: fourSteps(), task: { n: 1 }, tools: work, policy: { maxSteps: 2 } });
    await waitFor(() => handle.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    const exhausted = handle.events().find((e) => e.type === 'BUDGET_EXHAUSTED');
    expect(exhausted?.payload).toMatchObject({ rule: 'max_steps', limit: 2, attempted: 3 });
    expect(() => handle.raise({ maxSteps: 11 })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: expect.objectContaining({ ceiling: 10 }) }));
    expect(() => handle.raise({ maxSteps: 2 })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    expect(() => handle.raise({ maxTokens: 10 })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    handle.raise({ maxSteps: 4 }, { by: 'ops', reason: 'worth it' });
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(4);
    expect(handle.events().find((e) => e.type === 'BUDGET_RAISED')?.payload).toEqual({ limits: { maxSteps: 4 }, by: 'ops', reason: 'worth it' });
    expect(canonicalJson(await orch.replay(handle.executionId))).toBe(canonicalJson(report));
    // Verify-replay pauses where the recording did and serves the recorded raise.
    const verified = await orch.replay(handle.executionId, { agent: fourSteps(), verify: true });
    expect(canonicalJson(verified)).toBe(canonicalJson(report));
    expect(() => handle.raise({ maxSteps: 5 })).toThrow(expect.objectContaining({ code: 'OAO_ERR_ALREADY_DECIDED' }));
  });

  it('maxToolCalls: the call waits in EXECUTE.running.AWAITING_BUDGET; the body runs after the raise', async () => {
    const calls: unknown[] = [];
    const orch = new Orchestrator({ policy: { maxToolCalls: 10, onLimit: { maxToolCalls: 'pause' } } });
    const handle = orch.start({ agent: fourSteps(), task: { n: 1 }, tools: { work: (args: unknown) => calls.push(args) }, policy: { maxToolCalls: 2 } });
    await waitFor(() => handle.actor.getSnapshot().matches({ EXECUTE: { running: 'AWAITING_BUDGET' } }));
    expect(calls).toHaveLength(2);
    await orch.raise(handle.executionId, { maxToolCalls: 10 });
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(calls).toHaveLength(4);
  });

  it('cancel ends a paused run; budgetDecisionTimeoutMs ends it policy_violation with the limit rule; waiting is not live time', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const cancelled = orch.start({ agent: fourSteps(), task: { n: 1 }, tools: work, policy: { maxSteps: 1 } });
    await waitFor(() => cancelled.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    cancelled.cancel('no more');
    expect((await cancelled.report).termination.reason).toBe('cancelled');

    const clock = new SimulatedClock();
    const timed = new Orchestrator({ clock, policy: { maxSteps: 10, timeoutMs: 1_000, onLimit: { maxSteps: 'pause' }, budgetDecisionTimeoutMs: 60_000 } });
    const handle = timed.start({ agent: fourSteps(), task: { n: 1 }, tools: work, policy: { maxSteps: 1 } });
    await waitFor(() => handle.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    clock.increment(59_999);
    await tick();
    expect(handle.actor.getSnapshot().status).toBe('active');
    clock.increment(1);
    const report = await handle.report;
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.executionTimeMs).toBe(0);
    expect(report.wallTimeMs).toBe(60_000);
  });

  it('a request can turn a pause into a failure, never the reverse', async () => {
    const paused = new StrictPolicy({ onLimit: { maxSteps: 'pause' } });
    expect(paused.narrow({ onLimit: { maxSteps: 'fail' } }).limits.onLimit).toBeUndefined();
    expect(new StrictPolicy().narrow({ onLimit: { maxSteps: 'pause' } }).limits.onLimit).toBeUndefined();
    expect(paused.narrow({ maxSteps: 3 }).limits.onLimit).toEqual({ maxSteps: 'pause' });
    expect('onLimit' in new StrictPolicy().limits).toBe(false);
    const orch = new Orchestrator({ policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const report = await orch.run({ agent: fourSteps(), task: { n: 1 }, tools: work, policy: { maxSteps: 1, onLimit: { maxSteps: 'fail' } } });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
  });

  it('a paused run resumed from its log waits again at the same place', async () => {
    const first = createMemoryStore();
    const orch = new Orchestrator({ store: first, owner: 'first', policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const handle = orch.start({ agent: fourSteps(), task: { n: 1 }, tools: work, policy: { maxSteps: 2 }, executionId: 'p' });
    await waitFor(() => handle.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    await tick();
    const store = createMemoryStore();
    store.append('p', first.events('p'));
    handle.cancel('moved');
    const heir = new Orchestrator({ store, owner: 'heir', policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const resumed = await heir.startResumed('p', { agent: fourSteps(), tools: work });
    await waitFor(() => resumed.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    resumed.raise({ maxSteps: 4 });
    const report = await resumed.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(4);
  });

  it('maxTokens: spend that crossed the limit is not a failure; the run waits before its next step until raised', async () => {
    const orch = new Orchestrator({ policy: { maxTokens: 1_000, onLimit: { maxTokens: 'pause' } } });
    const agent = {
      name: 'spender',
      invoke: (input: number, ctx: AgentContext) => {
        ctx.usage({ input: 40, output: 20 });
        return { output: input };
      },
      review: (result: StepResult) => (result.step >= 3 ? { done: true as const } : { done: false as const, input: result.step + 1 }),
    };
    const handle = orch.start({ agent, task: 1, policy: { maxTokens: 50 } });
    await waitFor(() => handle.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    expect(handle.events().find((e) => e.type === 'BUDGET_EXHAUSTED')?.payload).toMatchObject({ rule: 'max_tokens', limit: 50, attempted: 60 });
    expect(() => handle.raise({ maxTokens: 1_001 })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    handle.raise({ maxTokens: 100 });
    // Step 2 spends up to 120: past the raised limit again, so the run waits once more.
    await waitFor(() => handle.events().filter((e) => e.type === 'BUDGET_EXHAUSTED').length === 2);
    handle.raise({ maxTokens: 500 });
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(3);
    expect(report.tokenUsage.total).toBe(180);
  });

  it('maxTokens: a model call with the budget spent waits (call.ready) in EXECUTE.running.AWAITING_BUDGET until raised', async () => {
    const orch = new Orchestrator({ policy: { maxTokens: 1_000, onLimit: { maxTokens: 'pause' } } });
    let sent = 0;
    const agent = async (_task: unknown, ctx: AgentContext) => {
      ctx.usage({ input: 50, output: 0 });
      const call = ctx.beginModelCall({ model: 'm', input: 'hello' });
      await call.ready;
      sent += 1;
      call.end('hi', { input: 5, output: 5 });
      return 'done';
    };
    const handle = orch.start({ agent, task: 't', policy: { maxTokens: 50 } });
    await waitFor(() => handle.actor.getSnapshot().matches({ EXECUTE: { running: 'AWAITING_BUDGET' } }));
    expect(sent).toBe(0);
    expect(handle.events().some((e) => e.type === 'MODEL_CALL')).toBe(false);
    handle.raise({ maxTokens: 100 }, { by: 'ops' });
    const report = await handle.report;
    expect(sent).toBe(1);
    expect(report.status).toBe('SUCCESS');
    expect(report.tokenUsage.total).toBe(60);
    const types = handle.events().map((e) => e.type);
    expect(types.indexOf('BUDGET_RAISED')).toBeLessThan(types.indexOf('MODEL_CALL'));
  });

  it('a paused run no process holds: orch.raise() records the raise in its log, and resume() goes on from it', async () => {
    const first = createMemoryStore();
    const orch = new Orchestrator({ store: first, owner: 'first', policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const handle = orch.start({ agent: fourSteps(), task: { n: 1 }, tools: work, policy: { maxSteps: 2 }, executionId: 's' });
    await waitFor(() => handle.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    await tick();
    const store = createMemoryStore();
    store.append('s', first.events('s'));
    handle.cancel('moved');

    const other = new Orchestrator({ store, owner: 'ops', policy: { maxSteps: 10 } });
    await expect(other.raise('s', { maxSteps: 11 })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { ceiling: 10 } });
    await expect(other.raise('nope', { maxSteps: 4 })).rejects.toMatchObject({ code: 'OAO_ERR_RUN_NOT_FOUND' });
    await other.raise('s', { maxSteps: 4 }, { by: 'ops' });
    expect(store.events('s').at(-1)).toMatchObject({ type: 'BUDGET_RAISED', payload: { limits: { maxSteps: 4 }, by: 'ops' } });
    await expect(other.raise('s', { maxSteps: 5 })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'state' } });

    const heir = new Orchestrator({ store, owner: 'heir', policy: { maxSteps: 10, onLimit: { maxSteps: 'pause' } } });
    const report = await heir.resume('s', { agent: fourSteps(), tools: work });
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(4);
    expect(canonicalJson(await heir.replay('s'))).toBe(canonicalJson(report));
  });
});
