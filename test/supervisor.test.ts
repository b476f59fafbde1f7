import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import {
  MultiAgentOrchestrator,
  PolicyViolationError,
  batchEventSchema,
  type AgentContext,
  type BatchEvent,
  type ExecutionReport,
  type OaoEvent,
} from '../src/index.js';
import { DummyAgent, deferred, expectValidReport, flush, runawayAgent } from './helpers.js';

/** Agents that wait on the test, counting how many are in flight at once. */
function gauge() {
  let inFlight = 0;
  let peak = 0;
  const waiting: (() => void)[] = [];
  const agent = {
    name: 'waiter',
    async invoke(task: unknown) {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await new Promise<void>((resolve) => waiting.push(resolve));
      inFlight -= 1;
      return { output: task };
    },
  };
  return {
    agent,
    get peak() {
      return peak;
    },
    get inFlight() {
      return inFlight;
    },
    releaseAll() {
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}

describe('MultiAgentOrchestrator', () => {
  it('runs the seed multi-agent example: a report per named agent', async () => {
    const researcher = { name: 'researcher', invoke: async (task: string) => ({ output: `Research on ${task}` }) };
    const critic = { name: 'critic', invoke: (task: string) => ({ output: `Critique of ${task}` }) };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 2, policy: { maxSteps: 5 } });
    const results = await multi.runMulti({ agents: { researcher, critic }, task: 'Discuss AI governance' });
    expect(Object.keys(results)).toEqual(['researcher', 'critic']);
    expect(results.researcher?.finalOutput).toBe('Research on Discuss AI governance');
    expect(results.critic?.status).toBe('SUCCESS');
    for (const report of Object.values(results)) expectValidReport(report);
  });

  it('never runs more than maxConcurrency children at once', async () => {
    const g = gauge();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 3 });
    const handle = multi.submit(Array.from({ length: 20 }, (_, i) => ({ agent: g.agent, task: i })));
    const progressSeen: number[] = [];
    const done = handle.reports;
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      await flush();
      progressSeen.push(handle.progress().running);
      g.releaseAll();
    }
    const reports = await done;
    expect(g.peak).toBe(3);
    expect(Math.max(...progressSeen)).toBeLessThanOrEqual(3);
    expect(reports.map((r) => r.finalOutput)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('with maxConcurrency = N, N slow agents really overlap', async () => {
    const g = gauge();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 5 });
    const handle = multi.submit(Array.from({ length: 5 }, (_, i) => ({ agent: g.agent, task: i })));
    await flush();
    // None may finish until the test releases them: all five running now means they overlap.
    expect(g.inFlight).toBe(5);
    expect(handle.progress()).toMatchObject({ running: 5, queued: 0, finished: 0 });
    g.releaseAll();
    const reports = await handle.reports;
    expect(reports.map((r) => r.status)).toEqual(Array.from({ length: 5 }, () => 'SUCCESS'));
    expect(g.peak).toBe(5);
  });

  it('contains failing, throwing, hanging and cancelled children', async () => {
    const clock = new SimulatedClock();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 10, clock, policy: { timeoutMs: 1_000, maxSteps: 2 } });
    const hung = { name: 'hung', invoke: () => new Promise(() => {}) };
    const cancelled = { name: 'self-cancelling', invoke: async (_: unknown, ctx: AgentContext) => { await new Promise(() => {}); return ctx.step; } };
    const handle = multi.submit([
      { name: 'fine', agent: new DummyAgent(), task: 'a' },
      { name: 'throws', agent: { invoke: () => { throw new Error('kaboom'); } }, task: 'b' },
      { name: 'rejects', agent: { invoke: () => Promise.reject('not an error') }, task: 'c' },
      { name: 'runaway', agent: runawayAgent({ cap: 10 }), task: 'd' },
      { name: 'hung', agent: hung, task: 'e' },
      { name: 'cancelled', agent: cancelled, task: 'f', signal: AbortSignal.abort('job-level cancel') },
      { name: 'also-fine', agent: new DummyAgent(), task: 'g' },
    ]);
    await flush();
    clock.increment(1_000);
    const reports = await handle.reports;
    const byName = Object.fromEntries(reports.map((r, i) => [['fine', 'throws', 'rejects', 'runaway', 'hung', 'cancelled', 'also-fine'][i], r]));
    expect(byName.fine?.status).toBe('SUCCESS');
    expect(byName['also-fine']?.status).toBe('SUCCESS');
    expect(byName.throws?.termination).toMatchObject({ reason: 'error', message: 'kaboom' });
    expect(byName.rejects?.termination.reason).toBe('error');
    expect(byName.runaway?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(byName.hung?.termination.reason).toBe('timeout');
    expect(byName.cancelled?.termination).toMatchObject({ reason: 'cancelled' });
    expect(reports).toHaveLength(7);
  });

  it('fail-fast cancels the rest on the first failure', async () => {
    const g = gauge();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 2, failFast: true });
    const handle = multi.submit([
      { name: 'slow-1', agent: g.agent, task: 1 },
      { name: 'broken', agent: { invoke: async () => { throw new Error('first failure'); } }, task: 2 },
      { name: 'queued', agent: g.agent, task: 3 },
    ]);
    const reports = await handle.reports;
    expect(reports[1]?.termination).toMatchObject({ reason: 'error', message: 'first failure' });
    expect(reports[0]?.termination).toMatchObject({ reason: 'cancelled' });
    expect(reports[0]?.termination.message).toMatch(/Fail-fast: job "broken" failed/);
    expect(reports[2]?.termination.reason).toBe('cancelled');
    expect(reports[2]?.stateHistory).toEqual([]);
    expect(g.peak).toBe(1);
  });

  it('cancelling the batch aborts every running child and still returns a report for each', async () => {
    const signals: AbortSignal[] = [];
    const agent = { invoke: (_: unknown, ctx: AgentContext) => { signals.push(ctx.signal); return new Promise(() => {}); } };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 3 });
    const controller = new AbortController();
    const handle = multi.submit(Array.from({ length: 5 }, (_, i) => ({ agent, task: i })), { signal: controller.signal });
    await flush();
    expect(handle.progress()).toMatchObject({ running: 3, queued: 2 });
    controller.abort('shutting down');
    const reports = await handle.reports;
    expect(reports).toHaveLength(5);
    expect(reports.every((r) => r.termination.reason === 'cancelled' && r.termination.message === 'shutting down')).toBe(true);
    expect(signals).toHaveLength(3);
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(reports.filter((r) => r.totalSteps === 0)).toHaveLength(2);
  });

  it('a shared token budget spent by one child stops the others; queued ones never start', async () => {
    let started = 0;
    const gate = deferred();
    const steady = {
      name: 'steady',
      async invoke(_: unknown, ctx: AgentContext) {
        started += 1;
        ctx.usage(10);
        await gate.promise;
        return 'steady';
      },
    };
    const hungry = {
      name: 'hungry',
      async invoke(_: unknown, ctx: AgentContext) {
        started += 1;
        await Promise.resolve();
        ctx.usage(500);
        return 'hungry';
      },
    };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 3, budget: { maxTokens: 100 } });
    const reports = await multi.runAll([
      { agent: steady, task: 1 },
      { agent: steady, task: 2 },
      { agent: hungry, task: 3 },
      { agent: steady, task: 4 },
    ]);
    expect(started).toBe(3);
    expect(reports[2]?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'shared' });
    for (const i of [0, 1, 3]) {
      expect(reports[i]?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'shared' });
    }
    expect(reports[3]?.totalSteps).toBe(0);
    expect(reports[3]?.termination.message).toMatch(/shared max_tokens budget/);
  });

  it('a spent shared token budget refuses the next model call before the model runs', async () => {
    // Reaching the shared budget exactly is allowed: this run succeeds and leaves nothing to spend.
    const spender = { name: 'spender', invoke: (_: unknown, ctx: AgentContext) => (ctx.usage(100), 'spent it all') };
    let modelRuns = 0;
    let refusal: unknown;
    const caller = {
      name: 'caller',
      invoke(_: unknown, ctx: AgentContext) {
        try {
          const call = ctx.beginModelCall({ model: 'fake-model', input: 'one more question' });
          modelRuns += 1;
          call.end('an answer', 1);
        } catch (error) {
          refusal = error;
        }
        return 'carried on regardless';
      },
    };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxTokens: 100 } });
    const handle = multi.submit([
      { name: 'spender', agent: spender, task: 1 },
      { name: 'caller', agent: caller, task: 2 },
      { name: 'queued', agent: new DummyAgent(), task: 3 },
    ]);
    const runEvents: OaoEvent[] = [];
    handle.events$.subscribe((e) => {
      if (e.type === 'RUN_EVENT' && e.payload.job.name === 'caller') runEvents.push(e.payload.event);
    });
    const reports = await handle.reports;

    expect(reports[0]).toMatchObject({ status: 'SUCCESS', tokenUsage: { total: 100 } });
    expect(modelRuns).toBe(0);
    expect(refusal).toBeInstanceOf(PolicyViolationError);
    expect(refusal).toMatchObject({ code: 'OAO_ERR_POLICY_VIOLATION' });
    expect(reports[1]?.termination).toMatchObject({
      reason: 'policy_violation',
      rule: 'max_tokens',
      scope: 'shared',
      message: expect.stringMatching(/Model call refused/),
    });
    expect(reports[1]?.tokenUsage.total).toBe(0);
    expect(reports[1]?.finalOutput).toBeNull();
    const kinds = runEvents.map((e) => e.type);
    expect(kinds).not.toContain('MODEL_CALL');
    expect(runEvents.find((e) => e.type === 'POLICY_VIOLATION')?.payload).toMatchObject({ rule: 'max_tokens', scope: 'shared', limit: 100 });
    // The refusal trips the batch: the queued job never starts.
    expect(reports[2]?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'shared' });
    expect(reports[2]?.totalSteps).toBe(0);
  });

  it('shared step and tool-call totals hold across children', async () => {
    let bodies = 0;
    const agent = { async invoke(_: unknown, ctx: AgentContext) { await ctx.tools.t!(); await ctx.tools.t!(); return 'x'; } };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxToolCalls: 3 } });
    const reports = await multi.runAll([0, 1, 2].map((i) => ({ agent, task: i, tools: { t: () => (bodies += 1) } })));
    expect(bodies).toBe(3);
    expect(reports[0]?.status).toBe('SUCCESS');
    expect(reports[1]?.termination).toMatchObject({ rule: 'max_tool_calls', scope: 'shared' });
    expect(reports[2]?.totalSteps).toBe(0);
  });

  it('a shared wall-time budget times out the batch', async () => {
    const clock = new SimulatedClock();
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, clock, budget: { timeoutMs: 500 } });
    const handle = multi.submit([
      { agent: { invoke: () => new Promise(() => {}) }, task: 1 },
      { agent: new DummyAgent(), task: 2 },
    ]);
    await flush();
    clock.increment(500);
    const reports = await handle.reports;
    expect(reports.map((r) => r.termination.reason)).toEqual(['timeout', 'timeout']);
    expect(reports[0]?.termination.message).toMatch(/batch exceeded its time limit of 500 ms/);
  });

  it('a child policy can only narrow the supervisor policy', async () => {
    const runaway = runawayAgent({ cap: 20 });
    const multi = new MultiAgentOrchestrator({ policy: { maxSteps: 2 } });
    const reports = await multi.runAll([
      { agent: runaway, task: 1, policy: { maxSteps: 50 } },
      { agent: runaway, task: 2, policy: { maxSteps: 1 } },
    ]);
    expect(reports.map((r) => r.totalSteps)).toEqual([2, 1]);
    expect(reports.map((r) => r.termination.rule)).toEqual(['max_steps', 'max_steps']);
    expect(runaway.calls).toBe(3);
  });

  it('starts higher priorities first, FIFO within a priority', async () => {
    const order: string[] = [];
    const agent = { invoke: (task: string) => { order.push(task); return task; } };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1 });
    await multi.runAll([
      { agent, task: 'low-1', priority: -1 },
      { agent, task: 'normal-1' },
      { agent, task: 'high-1', priority: 5 },
      { agent, task: 'normal-2' },
      { agent, task: 'high-2', priority: 5 },
      { agent, task: 'low-2', priority: -1 },
    ]);
    expect(order).toEqual(['high-1', 'high-2', 'normal-1', 'normal-2', 'low-1', 'low-2']);
  });

  it('tags every child event with the job and adds batch events', async () => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 2 });
    const handle = multi.submit([
      { name: 'alpha', agent: new DummyAgent(), task: 'a' },
      { name: 'beta', agent: { invoke: async () => 'b' }, task: 'b' },
    ]);
    const events: BatchEvent[] = [];
    const completed = new Promise<void>((resolve) => handle.events$.subscribe({ next: (e) => events.push(e), complete: resolve }));
    await handle.reports;
    await completed;
    for (const event of events) batchEventSchema.parse(JSON.parse(JSON.stringify(event)));
    expect(events[0]?.type).toBe('BATCH_START');
    expect(events.at(-1)?.type).toBe('BATCH_COMPLETE');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
    const runEvents = events.filter((e): e is Extract<BatchEvent, { type: 'RUN_EVENT' }> => e.type === 'RUN_EVENT');
    expect(new Set(runEvents.map((e) => e.payload.job.name))).toEqual(new Set(['alpha', 'beta']));
    const alpha = runEvents.filter((e) => e.payload.job.name === 'alpha').map((e) => e.payload.event);
    expect(alpha[0]?.type).toBe('EXECUTION_START');
    expect(alpha.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t === 'JOB_QUEUED')).toHaveLength(2);
    expect(types.filter((t) => t === 'JOB_STARTED')).toHaveLength(2);
    expect(types.filter((t) => t === 'JOB_FINISHED')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'BATCH_PROGRESS').at(-1)?.payload).toEqual({
      total: 2, queued: 0, running: 0, finished: 2, succeeded: 2, failed: 0,
    });
  });

  it('10,000 trivial jobs give exactly 10,000 reports', async () => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 100 });
    const agent = { invoke: (n: number) => n };
    const reports: ExecutionReport[] = await multi.map(agent, Array.from({ length: 10_000 }, (_, i) => i));
    expect(reports).toHaveLength(10_000);
    expect(reports.every((r, i) => r.status === 'SUCCESS' && r.finalOutput === i)).toBe(true);
    expect(new Set(reports.map((r) => r.executionId)).size).toBe(10_000);
  });

  it('validates its options and jobs eagerly with typed errors', () => {
    for (const maxConcurrency of [0, -1, 1.5, Number.NaN, '2']) {
      expect(() => new MultiAgentOrchestrator({ maxConcurrency: maxConcurrency as number })).toThrow(
        expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', message: expect.stringContaining('maxConcurrency') }),
      );
    }
    expect(() => new MultiAgentOrchestrator({ budget: { maxTokens: -5 } })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_POLICY' }));
    const multi = new MultiAgentOrchestrator();
    expect(() => multi.submit([{ agent: new DummyAgent(), task: 1 }, { agent: {} as never, task: 2 }])).toThrow(
      expect.objectContaining({ code: 'OAO_ERR_INVALID_AGENT', message: expect.stringContaining('Job 1') }),
    );
    expect(() => multi.submit([{ name: 'x', agent: new DummyAgent(), task: 1 }, { name: 'x', agent: new DummyAgent(), task: 2 }])).toThrow(/already used/);
    expect(() => multi.submit('nope' as never)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
  });

  it('an empty batch resolves with no reports', async () => {
    await expect(new MultiAgentOrchestrator().runAll([])).resolves.toEqual([]);
  });
});
