import { describe, expect, it } from 'vitest';
import { Orchestrator, type AgentContext, type OaoEvent } from '../src/index.js';

describe('governed model calls', () => {
  it('records the call and its response, and meters its usage', async () => {
    const orch = new Orchestrator({ policy: { maxTokens: 100, reserveOutputTokens: 0 } });
    const events: OaoEvent[] = [];
    orch.events$.subscribe((e) => events.push(e));
    const report = await orch.run({
      agent: {
        async invoke(input: string, ctx: AgentContext) {
          const call = ctx.beginModelCall({ model: 'fake-model', input });
          const answer = await Promise.resolve(`echo ${input}`);
          call.end(answer, { input_tokens: 12, output_tokens: 8 });
          return answer;
        },
      },
      task: 'hello',
    });
    expect(report.status).toBe('SUCCESS');
    expect(report.tokenUsage).toEqual({ input: 12, output: 8, total: 20 });
    const model = events.filter((e) => e.type.startsWith('MODEL_') || e.type === 'TOKEN_USAGE');
    expect(model.map((e) => [e.type, e.payload])).toMatchObject([
      ['MODEL_CALL', { model: 'fake-model', input: 'hello', callId: 'm1', step: 1 }],
      ['MODEL_RESULT', { ok: true, output: 'echo hello', usage: { input: 12, output: 8, total: 20 } }],
      ['TOKEN_USAGE', { source: 'model', total: 20 }],
    ]);
  });

  it('refuses a model call once the budget is spent, before it starts', async () => {
    let modelCalls = 0;
    const report = await new Orchestrator({ policy: { maxTokens: 10, reserveOutputTokens: 0 } }).run({
      agent: {
        async invoke(_: unknown, ctx: AgentContext) {
          ctx.usage(10); // reaching the budget is allowed
          try {
            ctx.beginModelCall({ model: 'm' });
            modelCalls += 1;
          } catch {
            // swallowing the refusal does not help the agent
          }
          return 'x';
        },
      },
      task: 't',
    });
    expect(modelCalls).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(10);
  });

  it('a response whose usage crosses the budget aborts the step', async () => {
    let signal: AbortSignal | undefined;
    const report = await new Orchestrator({ policy: { maxTokens: 10, reserveOutputTokens: 0 } }).run({
      agent: {
        async invoke(_: unknown, ctx: AgentContext) {
          const call = ctx.beginModelCall();
          signal = call.signal;
          call.end('long answer', 50);
          await new Promise(() => {});
          return 'never';
        },
      },
      task: 't',
    });
    expect(signal?.aborted).toBe(true);
    expect(report.termination.rule).toBe('max_tokens');
  });
});
