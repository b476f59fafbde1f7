import { describe, expect, it } from 'vitest';
import { Orchestrator, StrictPolicy, type AgentContext, type StepResult } from '../src/index.js';
import { DummyAgent, expectValidReport, runawayAgent } from './helpers.js';

describe('the governed lifecycle', () => {
  it('runs the seed DummyAgent unchanged: INIT -> PLAN -> EXECUTE -> REVIEW -> TERMINATE', async () => {
    const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 5 }) });
    const report = await orch.run({ agent: new DummyAgent(), task: 'Explain AI orchestration' });
    expectValidReport(report);
    expect(report.status).toBe('SUCCESS');
    expect(report.termination).toEqual({ reason: 'completed' });
    expect(report.agentName).toBe('DummyAgent');
    expect(report.finalOutput).toBe('Processed: Explain AI orchestration');
    expect(report.totalSteps).toBe(1);
    expect(report.stateHistory.map((s) => s.state)).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'TERMINATE']);
    expect(report.error).toBeUndefined();
    expect(Date.parse(report.finishedAt)).toBeGreaterThanOrEqual(Date.parse(report.startedAt));
  });

  it('runSync runs the same machine without the event loop', () => {
    const orch = new Orchestrator();
    const report = orch.runSync({ agent: new DummyAgent(), task: 'now' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('Processed: now');
    expect(report.stateHistory.map((s) => s.state)).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'TERMINATE']);
  });

  it('runSync throws a typed error, with the report, when the agent returns a promise', () => {
    const orch = new Orchestrator();
    const agent = { invoke: async (task: string) => ({ output: task }) };
    let error: any;
    try {
      orch.runSync({ agent, task: 'x' });
    } catch (e) {
      error = e;
    }
    expect(error?.code).toBe('OAO_ERR_ASYNC_IN_SYNC_RUN');
    expect(error.details.report.status).toBe('FAILED');
    expect(error.details.report.termination.reason).toBe('error');
  });

  it('accepts { output }, a string, or any JSON value as output', async () => {
    const orch = new Orchestrator();
    const outputs: [unknown, unknown][] = [
      [{ output: { answer: 42 } }, { answer: 42 }],
      ['plain text', 'plain text'],
      [7, 7],
      [null, null],
      [[1, 'two'], [1, 'two']],
      [{ summary: 'no output key' }, { summary: 'no output key' }],
    ];
    for (const [returned, expected] of outputs) {
      const report = await orch.run({ agent: { invoke: () => returned }, task: 't' });
      expect(report.status).toBe('SUCCESS');
      expect(report.finalOutput).toEqual(expected);
    }
  });

  it('accepts a bare function as an agent', async () => {
    const report = await new Orchestrator().run({ agent: function echo(input: string) { return input.toUpperCase(); }, task: 'hi' });
    expect(report.finalOutput).toBe('HI');
    expect(report.agentName).toBe('echo');
  });

  it('uses plan() for the first input and review() to decide on more steps', async () => {
    const seen: unknown[] = [];
    const agent = {
      name: 'planner',
      plan: (task: string) => ({ goal: task, parts: 3 }),
      invoke(input: { goal: string; part?: number }, ctx: AgentContext) {
        seen.push({ input, step: ctx.step });
        return { output: `part ${ctx.step} of ${input.goal}` };
      },
      review(result: StepResult) {
        return result.step < 3 ? { done: false, input: { goal: 'essay', part: result.step + 1 } } : { done: true };
      },
    };
    const report = await new Orchestrator().run({ agent, task: 'essay' });
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(3);
    expect(report.finalOutput).toBe('part 3 of essay');
    expect(seen).toEqual([
      { input: { goal: 'essay', parts: 3 }, step: 1 },
      { input: { goal: 'essay', part: 2 }, step: 2 },
      { input: { goal: 'essay', part: 3 }, step: 3 },
    ]);
    expect(report.stateHistory.map((s) => s.state)).toEqual([
      'INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'EXECUTE', 'REVIEW', 'EXECUTE', 'REVIEW', 'TERMINATE',
    ]);
  });

  it('reuses the previous input when review asks for another step without one', async () => {
    const inputs: unknown[] = [];
    const agent = {
      invoke(input: string) {
        inputs.push(input);
        return input;
      },
      review: (result: StepResult) => (result.step < 2 ? { done: false } : { done: true }),
    };
    await new Orchestrator().run({ agent, task: 'same' });
    expect(inputs).toEqual(['same', 'same']);
  });

  it('hands the agent a context without any handle on its actor or policy', async () => {
    let ctx!: AgentContext;
    await new Orchestrator({ policy: { maxSteps: 4 } }).run({
      agent: {
        invoke(_input: unknown, c: AgentContext) {
          ctx = c;
          return 'ok';
        },
      },
      task: 't',
    });
    expect(Object.keys(ctx)).toEqual([]);
    expect(ctx.budget.steps).toEqual({ used: 1, limit: 4, remaining: 3 });
    expect(() => {
      (ctx.budget.steps as { limit: number }).limit = 99;
    }).toThrow(TypeError);
    expect(() => {
      (ctx as { step: number }).step = 99;
    }).toThrow(TypeError);
    const reachable = JSON.stringify(Object.getOwnPropertyNames(Object.getPrototypeOf(ctx)));
    expect(reachable).not.toMatch(/session|actor|policy|limits/);
  });

  it('exposes a read-only budget that tracks spend', async () => {
    const budgets: unknown[] = [];
    const report = await new Orchestrator({ policy: { maxTokens: 100, maxToolCalls: 2 } }).run({
      agent: {
        async invoke(_input: unknown, ctx: AgentContext) {
          ctx.usage({ input: 10, output: 5 });
          await ctx.tools.lookup!({ q: 1 });
          budgets.push({ tokens: ctx.budget.tokens, toolCalls: ctx.budget.toolCalls });
          return 'ok';
        },
      },
      task: 't',
      tools: { lookup: () => 'found' },
    });
    expect(report.status).toBe('SUCCESS');
    expect(budgets).toEqual([
      { tokens: { used: 15, limit: 100, remaining: 85 }, toolCalls: { used: 1, limit: 2, remaining: 1 } },
    ]);
    expect(report.tokenUsage).toEqual({ input: 10, output: 5, total: 15 });
    expect(report.toolUsage).toEqual({ total: 1, byTool: { lookup: 1 } });
  });

  it('counts usage from outputs: usage, usage_metadata and numbers', async () => {
    const orch = new Orchestrator();
    let report = await orch.run({ agent: { invoke: () => ({ output: 'a', usage: { input: 3, output: 4 } }) }, task: 't' });
    expect(report.tokenUsage).toEqual({ input: 3, output: 4, total: 7 });
    report = await orch.run({
      agent: { invoke: () => ({ output: 'a', usage_metadata: { input_tokens: 10, output_tokens: 2, total_tokens: 12 } }) },
      task: 't',
    });
    expect(report.tokenUsage).toEqual({ input: 10, output: 2, total: 12 });
    report = await orch.run({ agent: { invoke: () => ({ output: 'a', usage: 9 }) }, task: 't' });
    expect(report.tokenUsage).toEqual({ input: 0, output: 9, total: 9 });
  });

  it('rejects invalid arguments with typed errors, without starting anything', async () => {
    const orch = new Orchestrator();
    await expect(orch.run({ agent: {} as never, task: 't' })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_AGENT' });
    await expect(orch.run({ agent: null as never, task: 't' })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_AGENT' });
    await expect(orch.run({ agent: { invoke: () => 1, review: 5 } as never, task: 't' })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_AGENT',
    });
    await expect(orch.run({ agent: new DummyAgent(), task: undefined })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_ARGUMENT',
      details: { field: 'task' },
    });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(orch.run({ agent: new DummyAgent(), task: cyclic })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
    await expect(orch.run({ agent: new DummyAgent(), task: 't', tools: { a: 'nope' } as never })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_ARGUMENT',
      details: { field: 'tools.a' },
    });
    await expect(orch.run({ agent: new DummyAgent(), task: 't', policy: { maxSteps: 0 } })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_POLICY',
    });
    await expect(orch.run(undefined as never)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
    expect(() => orch.start({ agent: new DummyAgent(), task: 't', signal: 'x' as never })).toThrow(/signal/);
    expect(() => new Orchestrator({ policy: { maxTokens: -1 } })).toThrow(/maxTokens/);
  });

  it('applies a per-run policy only as a narrowing of the orchestrator policy', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 2 } });
    const forever = runawayAgent({ cap: 10 });
    const widened = await orch.run({ agent: forever, task: 't', policy: { maxSteps: 50 } });
    expect(widened.totalSteps).toBe(2);
    expect(widened.termination.rule).toBe('max_steps');
    const narrowed = await orch.run({ agent: forever, task: 't', policy: { maxSteps: 1 } });
    expect(narrowed.totalSteps).toBe(1);
  });
});

describe('agent-supplied tools', () => {
  it('are governed like the request tools, and the request wins on a name clash', async () => {
    const ran: string[] = [];
    const agent = {
      tools: { lookup: () => ran.push('agent lookup'), clock: () => ran.push('agent clock') },
      async invoke(_: unknown, ctx: AgentContext) {
        await ctx.tools.lookup!();
        await ctx.callTool('clock');
        return 'ok';
      },
    };
    const report = await new Orchestrator({ policy: { maxToolCalls: 5 } }).run({
      agent,
      task: 't',
      tools: { clock: () => ran.push('request clock') },
    });
    expect(report.status).toBe('SUCCESS');
    expect(ran).toEqual(['agent lookup', 'request clock']);
    expect(report.toolUsage.byTool).toEqual({ lookup: 1, clock: 1 });
  });

  it('reject an agent whose tools are not functions, naming the field', async () => {
    await expect(new Orchestrator().run({ agent: { invoke: () => 'x', tools: { bad: 1 } } as never, task: 't' })).rejects.toMatchObject({
      code: 'OAO_ERR_INVALID_ARGUMENT',
      details: { field: 'agent.tools.bad' },
    });
  });
});
