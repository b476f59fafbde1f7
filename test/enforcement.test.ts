import { describe, expect, it } from 'vitest';
import { Orchestrator, PolicyViolationError, type AgentContext, type OaoEvent } from '../src/index.js';
import { deferred, expectValidReport, flush, runawayAgent, types } from './helpers.js';

function collect(orch: Orchestrator): OaoEvent[] {
  const events: OaoEvent[] = [];
  orch.events$.subscribe((e) => events.push(e));
  return events;
}

describe('enforcement before the spend', () => {
  it('never starts a step beyond maxSteps', async () => {
    const runaway = runawayAgent({ cap: 10 });
    const orch = new Orchestrator({ policy: { maxSteps: 3 } });
    const events = collect(orch);
    const report = await orch.run({ agent: runaway, task: 'loop' });
    expectValidReport(report);
    expect(runaway.calls).toBe(3);
    expect(report.status).toBe('FAILED');
    expect(report.totalSteps).toBe(3);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.error?.code).toBe('OAO_ERR_POLICY_VIOLATION');
    expect(report.finalOutput).toBe('step 3');
    expect(events.filter((e) => e.type === 'STEP_START')).toHaveLength(3);
    const violation = events.find((e) => e.type === 'POLICY_VIOLATION');
    expect(violation?.payload).toMatchObject({ rule: 'max_steps', limit: 3, attempted: 4 });
    expect(report.stateHistory.at(-1)?.state).toBe('FAILED');
  });

  it('never starts a step beyond maxSteps in runSync either, nor for an async agent', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 4 } });
    const sync = runawayAgent({ cap: 10 });
    const syncReport = orch.runSync({ agent: sync, task: 'loop' });
    expect(syncReport.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(sync.calls).toBe(4);
    const later = runawayAgent({ cap: 10, async: true });
    const asyncReport = await orch.run({ agent: later, task: 'loop' });
    expect(asyncReport.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(asyncReport.totalSteps).toBe(4);
    expect(later.calls).toBe(4);
  });

  it('reaching maxSteps exactly is allowed', async () => {
    const agent = { invoke: () => 'x', review: (r: { step: number }) => ({ done: r.step === 2 }) };
    const report = await new Orchestrator({ policy: { maxSteps: 2 } }).run({ agent, task: 't' });
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(2);
  });

  it('never runs a tool body beyond maxToolCalls, even when the agent swallows the error', async () => {
    let bodyRuns = 0;
    const errors: unknown[] = [];
    const toolHappy = {
      async invoke(_input: unknown, ctx: AgentContext) {
        for (let i = 0; i < 10; i++) {
          try {
            await ctx.tools.search!({ q: i });
          } catch (error) {
            errors.push(error);
          }
        }
        return 'finished anyway';
      },
    };
    const orch = new Orchestrator({ policy: { maxToolCalls: 3 } });
    const events = collect(orch);
    const report = await orch.run({ agent: toolHappy, task: 't', tools: { search: () => { bodyRuns += 1; return 'hit'; } } });
    await flush();
    expect(bodyRuns).toBe(3);
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(report.toolUsage).toEqual({ total: 3, byTool: { search: 3 } });
    // The agent swallowed all seven refusals: the denial itself, then the calls made after the run ended.
    expect(errors).toHaveLength(7);
    expect(errors[0]).toBeInstanceOf(PolicyViolationError);
    expect((errors[0] as PolicyViolationError).code).toBe('OAO_ERR_TOOL_DENIED');
    const kinds = types(events);
    expect(kinds.filter((t) => t === 'TOOL_CALL')).toHaveLength(3);
    const denied = kinds.indexOf('TOOL_DENIED');
    expect(denied).toBeGreaterThan(-1);
    expect(kinds[denied + 1]).toBe('POLICY_VIOLATION');
    expect(kinds.filter((t) => t === 'POLICY_VIOLATION')).toHaveLength(1);
    expect(report.finalOutput).toBe(null);
  });

  it('a sync agent that ignores the rejected tool promise still ends in a violation, with no unhandled rejection', async () => {
    let bodyRuns = 0;
    const agent = {
      invoke(_input: unknown, ctx: AgentContext) {
        void ctx.tools.blocked!();
        return 'pretending all is well';
      },
    };
    const report = await new Orchestrator({ policy: { tools: { deny: ['blocked'] } } }).run({
      agent,
      task: 't',
      tools: { blocked: () => { bodyRuns += 1; } },
    });
    expect(bodyRuns).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
  });

  it.each([
    [{ tools: { deny: ['shell'] } }, 'shell', 'tool_denied'],
    [{ tools: { allow: ['search'] } }, 'shell', 'tool_not_allowed'],
    [{ tools: { maxCalls: { shell: 0 } } }, 'shell', 'tool_max_calls'],
  ] as const)('policy %j refuses %s with rule %s', async (policy, tool, rule) => {
    let bodyRuns = 0;
    const agent = { invoke: async (_: unknown, ctx: AgentContext) => ctx.callTool(tool, {}) };
    const orch = new Orchestrator({ policy });
    const events = collect(orch);
    const report = await orch.run({ agent, task: 't', tools: { [tool]: () => { bodyRuns += 1; } } });
    expect(bodyRuns).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule });
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool, rule });
  });

  it('per-tool limits count each tool separately', async () => {
    const runs: string[] = [];
    const agent = {
      async invoke(_: unknown, ctx: AgentContext) {
        await ctx.tools.a!();
        await ctx.tools.b!();
        await ctx.tools.b!();
        await ctx.tools.a!();
        return 'done';
      },
    };
    const report = await new Orchestrator({ policy: { maxToolCalls: 10, tools: { maxCalls: { a: 1 } } } }).run({
      agent,
      task: 't',
      tools: { a: () => runs.push('a'), b: () => runs.push('b') },
    });
    expect(runs).toEqual(['a', 'b', 'b']);
    expect(report.termination.rule).toBe('tool_max_calls');
    expect(report.toolUsage.byTool).toEqual({ a: 1, b: 2 });
  });

  it('usage that crosses maxTokens mid-step aborts the step signal at once', async () => {
    let abortedAt: string | undefined;
    let continued = false;
    const gate = deferred();
    const agent = {
      async invoke(_: unknown, ctx: AgentContext) {
        ctx.signal.addEventListener('abort', () => {
          abortedAt = `after ${ctx.budget.tokens.used} tokens`;
        });
        ctx.usage({ input: 60, output: 0 });
        ctx.usage({ input: 0, output: 50 });
        expect(ctx.signal.aborted).toBe(true);
        await gate.promise;
        continued = true;
        return 'late';
      },
    };
    const report = await new Orchestrator({ policy: { maxTokens: 100 } }).run({ agent, task: 't' });
    expect(abortedAt).toBe('after 110 tokens');
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(110);
    gate.resolve();
    await gate.promise;
    expect(continued).toBe(true);
  });

  it('reaching maxTokens exactly is allowed; output usage over it fails the run', async () => {
    const orch = new Orchestrator({ policy: { maxTokens: 10 } });
    const exact = await orch.run({ agent: { invoke: () => ({ output: 'x', usage: 10 }) }, task: 't' });
    expect(exact.status).toBe('SUCCESS');
    const over = await orch.run({ agent: { invoke: () => ({ output: 'x', usage: 11 }) }, task: 't' });
    expect(over.status).toBe('FAILED');
    expect(over.termination.rule).toBe('max_tokens');
    expect(over.stateHistory.map((s) => s.state)).not.toContain('REVIEW');
  });

  it('refuses further tool calls once a run is stopping, without running the body', async () => {
    let bodyRuns = 0;
    let secondError: any;
    const agent = {
      async invoke(_: unknown, ctx: AgentContext) {
        ctx.usage(1000);
        try {
          await ctx.tools.t!();
        } catch (e) {
          secondError = e;
        }
        return 'x';
      },
    };
    await new Orchestrator({ policy: { maxTokens: 5 } }).run({ agent, task: 't', tools: { t: () => { bodyRuns += 1; } } });
    expect(bodyRuns).toBe(0);
    expect(secondError?.code).toBe('OAO_ERR_POLICY_VIOLATION');
  });

  it('rejects calls to a tool the run does not have, with a typed error', async () => {
    let error: any;
    await new Orchestrator().run({
      agent: {
        async invoke(_: unknown, ctx: AgentContext) {
          try {
            await ctx.callTool('missing');
          } catch (e) {
            error = e;
          }
          return 'ok';
        },
      },
      task: 't',
    });
    expect(error?.code).toBe('OAO_ERR_UNKNOWN_TOOL');
  });

  it('records tool arguments and results, and tool errors reach the agent', async () => {
    const orch = new Orchestrator();
    const events = collect(orch);
    const report = await orch.run({
      agent: {
        async invoke(_: unknown, ctx: AgentContext) {
          const sum = await ctx.tools.add!({ a: 2, b: 3 });
          try {
            await ctx.tools.fail!();
          } catch (e) {
            return { output: { sum, caught: (e as Error).message } };
          }
          return 'unreachable';
        },
      },
      task: 't',
      tools: {
        add: async ({ a, b }: { a: number; b: number }) => a + b,
        fail: () => {
          throw new Error('tool broke');
        },
      },
    });
    expect(report.finalOutput).toEqual({ sum: 5, caught: 'tool broke' });
    const calls = events.filter((e) => e.type === 'TOOL_CALL' || e.type === 'TOOL_RESULT').map((e) => e.payload);
    expect(calls).toMatchObject([
      { tool: 'add', args: { a: 2, b: 3 } },
      { tool: 'add', ok: true, result: 5 },
      { tool: 'fail' },
      { tool: 'fail', ok: false, error: { message: 'tool broke' } },
    ]);
  });
});
