import { describe, expect, it } from 'vitest';
import { Orchestrator, type AgentContext } from '../src/index.js';

describe('ctx.runSignal', () => {
  it('spans the run: alive across steps, aborted once the run has ended (OAO_ERR_RUN_FINISHED)', async () => {
    const seen: { step: number; aborted: boolean }[] = [];
    let runSignal: AbortSignal | undefined;
    const agent = {
      invoke(input: number, ctx: AgentContext) {
        runSignal ??= ctx.runSignal;
        expect(ctx.runSignal).toBe(runSignal);
        seen.push({ step: ctx.step, aborted: ctx.runSignal.aborted });
        return { output: input + 1 };
      },
      review: (result: { output: unknown }) => (result.output === 3 ? { done: true as const } : { done: false as const, input: result.output }),
    };
    const report = await new Orchestrator().run({ agent, task: 1 });
    expect(report.status).toBe('SUCCESS');
    expect(seen).toEqual([
      { step: 1, aborted: false },
      { step: 2, aborted: false },
    ]);
    expect(runSignal?.aborted).toBe(true);
    expect(runSignal?.reason).toMatchObject({ code: 'OAO_ERR_RUN_FINISHED' });
  });

  it('aborts when a run is cancelled between steps, where no step signal is live', async () => {
    let runSignal: AbortSignal | undefined;
    const ended: unknown[] = [];
    const controller = new AbortController();
    const agent = {
      invoke(_input: unknown, ctx: AgentContext) {
        runSignal = ctx.runSignal;
        runSignal.addEventListener('abort', () => ended.push((runSignal?.reason as { code?: unknown }).code), { once: true });
        return { output: 'step' };
      },
      review() {
        controller.abort('enough');
        return { done: false as const };
      },
    };
    const report = await new Orchestrator().run({ agent, task: 't', signal: controller.signal });
    expect(report.termination.reason).toBe('cancelled');
    expect(ended).toEqual(['OAO_ERR_RUN_FINISHED']);
  });
});
