import { describe, expect, it } from 'vitest';
import { Orchestrator, type AgentContext, type StepResult } from '../src/index.js';
import { DummyAgent, deferred, runawayAgent } from './helpers.js';

describe('one Orchestrator, many runs', () => {
  it('runs sequentially without stale reports or carried-over counters', async () => {
    const orch = new Orchestrator({ policy: { maxToolCalls: 2 } });
    const agent = { async invoke(input: string, ctx: AgentContext) { await ctx.tools.t!(); return input; } };
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const report = await orch.run({ agent, task: `task ${i}`, tools: { t: () => i } });
      expect(report.finalOutput).toBe(`task ${i}`);
      expect(report.toolUsage.total).toBe(1);
      expect(report.status).toBe('SUCCESS');
      ids.add(report.executionId);
    }
    expect(ids.size).toBe(20);
  });

  it('runs concurrently, each run seeing only its own counters', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 10, maxTokens: 1000 } });
    const gates = Array.from({ length: 8 }, () => deferred());
    const makeAgent = (steps: number, tokens: number) => ({
      async invoke(input: number, ctx: AgentContext) {
        ctx.usage(tokens);
        await gates[input]!.promise;
        return { output: { run: input, step: ctx.step, seenTokens: ctx.budget.tokens.used } };
      },
      review: (r: StepResult) => ({ done: r.step >= steps }),
    });
    const handles = gates.map((_, i) => orch.start({ agent: makeAgent(i + 1, 10 * (i + 1)), task: i }));
    // Release in reverse order so completions interleave.
    for (let round = 0; round < 10; round++) for (const gate of [...gates].reverse()) gate.resolve();
    const reports = await Promise.all(handles.map((h) => h.report));
    reports.forEach((report, i) => {
      expect(report.status).toBe('SUCCESS');
      expect(report.totalSteps).toBe(i + 1);
      expect(report.tokenUsage.total).toBe(10 * (i + 1) * (i + 1));
      expect(report.finalOutput).toEqual({ run: i, step: i + 1, seenTokens: 10 * (i + 1) * (i + 1) });
    });
  });

  it('a failing run does not affect a concurrent one', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 3 } });
    const runaway = orch.run({ agent: runawayAgent({ cap: 10, async: true }), task: 't' });
    const fine = orch.run({ agent: new DummyAgent(), task: 'ok' });
    const crashing = orch.run({ agent: { invoke: async () => { throw new Error('boom'); } }, task: 't' });
    const [a, b, c] = await Promise.all([runaway, fine, crashing]);
    expect(a.termination.rule).toBe('max_steps');
    expect(b.status).toBe('SUCCESS');
    expect(c.termination.reason).toBe('error');
  });

  it('finishes 1,000 concurrent async runs with 1,000 distinct reports', async () => {
    const orch = new Orchestrator();
    const agent = { invoke: async (n: number) => ({ output: n * 2 }) };
    const reports = await Promise.all(Array.from({ length: 1000 }, (_, i) => orch.run({ agent, task: i })));
    expect(reports.map((r) => r.finalOutput)).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2));
    expect(new Set(reports.map((r) => r.executionId)).size).toBe(1000);
  });
});
