import { describe, expect, it } from 'vitest';
import { Orchestrator, type AgentContext, type OaoEvent } from '../src/index.js';
import { fitOutputTokens } from '../src/policy/checks.js';

describe('fitOutputTokens', () => {
  it('keeps a cap that fits, lowers one that does not to what is left after the prompt, and keeps it when nothing is left', () => {
    expect(fitOutputTokens(10, 100, 200)).toBe(100);
    expect(fitOutputTokens(10, 100, 110)).toBe(100);
    expect(fitOutputTokens(10, 100, 109)).toBe(99);
    expect(fitOutputTokens(10, 100, 11)).toBe(1);
    expect(fitOutputTokens(10, 100, 10)).toBe(100);
    expect(fitOutputTokens(10, 100, -5)).toBe(100);
  });
});

/** An agent that makes the given model calls (prompt 100 counted, cap 400), each sent with the cap it is granted. */
function writer(calls: number, fitOutput: boolean, sent: (number | undefined)[]) {
  return {
    name: 'writer',
    async invoke(_task: unknown, ctx: AgentContext) {
      for (let i = 0; i < calls; i += 1) {
        const call = ctx.beginModelCall({ model: 'm', input: 'go on', inputTokens: 100, maxOutputTokens: 400, fitOutput });
        await call.ready;
        const cap = call.loweredMaxOutputTokens ?? 400;
        sent.push(call.loweredMaxOutputTokens);
        call.end('text', { input: 100, output: Math.min(380, cap) });
      }
      return { output: 'done' };
    },
  };
}

const reserved = (events: readonly OaoEvent[]) => events.flatMap((e) => (e.type === 'MODEL_CALL' ? [e.payload.reserved?.output] : []));

describe('ctx.beginModelCall({ fitOutput: true })', () => {
  it('lowers a cap that does not fit to what is left, and refuses a call with no room after its prompt', { timeout: 5_000 }, async () => {
    const sent: (number | undefined)[] = [];
    const handle = new Orchestrator({ policy: { maxTokens: 1_500 } }).start({ agent: writer(10, true, sent), task: 't' });
    const report = await handle.report;
    // 3 × 480 spent; the fourth has 60 left: 100 of prompt do not fit, so it is refused.
    expect(sent).toEqual([undefined, undefined, undefined]);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });

    const lowered: (number | undefined)[] = [];
    const second = new Orchestrator({ policy: { maxTokens: 1_600 } }).start({ agent: writer(10, true, lowered), task: 't' });
    const ended = await second.report;
    // 1,440 spent, 160 left: the fourth call is sent with 60 output tokens and the run ends at 1,600.
    expect(lowered).toEqual([undefined, undefined, undefined, 60]);
    expect(reserved(second.events())).toEqual([400, 400, 400, 60]);
    expect(ended.tokenUsage.total).toBe(1_600);
    expect(ended.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
  });

  it('leaves a call that does not ask for it unchanged: refused when its cap does not fit', { timeout: 5_000 }, async () => {
    const sent: (number | undefined)[] = [];
    const report = await new Orchestrator({ policy: { maxTokens: 1_600 } }).run({ agent: writer(10, false, sent), task: 't' });
    expect(sent).toEqual([undefined, undefined, undefined]);
    expect(report.tokenUsage.total).toBe(1_440);
  });
});
