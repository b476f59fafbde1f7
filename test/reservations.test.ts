import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, MultiAgentOrchestrator, Orchestrator, type AgentContext, type OaoEvent } from '../src/index.js';
import { fromChatModel } from '../src/adapters/langchain/index.js';
import { searchTool } from './adapters/fixtures.js';
import { ScriptedChatModel } from './adapters/scriptedChatModel.js';

/** A hand-written agent that makes the given model calls in its one step, each stating its caps. */
function caller(calls: readonly { inputTokens: number; maxOutputTokens: number; used: number }[]) {
  return {
    name: 'caller',
    async invoke(_task: unknown, ctx: AgentContext) {
      for (const c of calls) {
        const call = ctx.beginModelCall({ model: 'm', input: 'x', inputTokens: c.inputTokens, maxOutputTokens: c.maxOutputTokens });
        await call.ready;
        // A model honours its cap: it never answers with more than its reservation.
        call.end('ok', { input: c.inputTokens, output: Math.min(c.used, c.maxOutputTokens) });
      }
      return { output: 'done' };
    },
  };
}

const types = (events: readonly OaoEvent[]) => events.map((e) => e.type);

describe('a model call reserves its worst case before it is sent', () => {
  it('refuses a call whose reservation does not fit, with MODEL_CALL_DENIED then the violation, and never sends it', { timeout: 5_000 }, async () => {
    const sent: number[] = [];
    const agent = {
      name: 'two-calls',
      async invoke(_task: unknown, ctx: AgentContext) {
        for (const max of [300, 300]) {
          const call = ctx.beginModelCall({ model: 'big', input: 'hi', inputTokens: 100, maxOutputTokens: max });
          sent.push(max);
          call.end('ok', { input: 100, output: 150 });
        }
        return { output: 'never' };
      },
    };
    const orch = new Orchestrator({ policy: { maxTokens: 600 } });
    const handle = orch.start({ agent, task: 't' });
    const report = await handle.report;
    // 250 spent, and the second call could spend 400 more: 650 > 600, so it is not sent.
    expect(sent).toEqual([300]);
    expect(report).toMatchObject({ status: 'FAILED', tokenUsage: { total: 250 }, termination: { reason: 'policy_violation', rule: 'max_tokens' } });
    const denied = handle.events().find((e) => e.type === 'MODEL_CALL_DENIED');
    expect(denied?.payload).toEqual({ step: 1, model: 'big', reserved: { input: 100, output: 300, estimated: false }, remaining: 350, rule: 'max_tokens', message: expect.stringContaining('up to 400 tokens') as string });
    const t = types(handle.events());
    expect(t[t.indexOf('MODEL_CALL_DENIED') + 1]).toBe('POLICY_VIOLATION');
    // The log says it all: replay gives the same report without calling anything.
    expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
  });

  it('holds running calls’ reservations: two calls at once cannot together overshoot', { timeout: 5_000 }, async () => {
    const agent = {
      name: 'parallel',
      async invoke(_task: unknown, ctx: AgentContext) {
        const first = ctx.beginModelCall({ input: 'a', inputTokens: 10, maxOutputTokens: 500 });
        let refused: unknown;
        try {
          ctx.beginModelCall({ input: 'b', inputTokens: 10, maxOutputTokens: 500 });
        } catch (error) {
          refused = error;
        }
        first.end('ok', { input: 10, output: 20 });
        return { output: refused === undefined ? 'both sent' : 'second refused' };
      },
    };
    const handle = new Orchestrator({ policy: { maxTokens: 1_000 } }).start({ agent, task: 't' });
    const report = await handle.report;
    // 510 held by the first call and 510 asked by the second: 1,020 > 1,000, so only one is sent.
    expect(report.termination).toMatchObject({ rule: 'max_tokens' });
    expect(types(handle.events()).filter((t) => t === 'MODEL_CALL')).toHaveLength(1);
    expect(handle.events().find((e) => e.type === 'MODEL_CALL_DENIED')?.payload).toMatchObject({ remaining: 490 });
  });

  it('estimates the prompt when the caller does not count it, and uses the policy default for the output', { timeout: 5_000 }, async () => {
    const agent = {
      name: 'estimator',
      invoke(_task: unknown, ctx: AgentContext) {
        ctx.beginModelCall({ input: 'x'.repeat(400) }).end('ok', { input: 90, output: 10 });
        return { output: 'ok' };
      },
    };
    const handle = new Orchestrator({ policy: { reserveOutputTokens: 256 } }).start({ agent, task: 't' });
    await handle.report;
    expect(handle.events().find((e) => e.type === 'MODEL_CALL')?.payload).toMatchObject({ reserved: { input: 100, output: 256, estimated: true } });
  });

  it('charges a response without usage its whole reservation, and flags it', { timeout: 5_000 }, async () => {
    const agent = {
      name: 'unmetered',
      invoke(_task: unknown, ctx: AgentContext) {
        ctx.beginModelCall({ input: 'q', inputTokens: 7, maxOutputTokens: 50 }).end('answer');
        return { output: 'ok' };
      },
    };
    const handle = new Orchestrator().start({ agent, task: 't' });
    const report = await handle.report;
    expect(report.tokenUsage).toEqual({ input: 7, output: 50, total: 57 });
    expect(handle.events().find((e) => e.type === 'MODEL_RESULT')?.payload).toMatchObject({ unmetered: true, usage: { input: 7, output: 50, total: 57 } });
  });

  it('refuses bad sizes with a typed error naming the field', { timeout: 5_000 }, async () => {
    for (const [field, value] of [['maxOutputTokens', -1], ['maxOutputTokens', 1.5], ['inputTokens', '10'], ['inputTokens', Number.MAX_SAFE_INTEGER + 1]] as const) {
      const agent = { name: 'bad', invoke: (_t: unknown, ctx: AgentContext) => (ctx.beginModelCall({ [field]: value }), { output: 'x' }) };
      const report = await new Orchestrator().run({ agent, task: 't' });
      expect(report.error).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field } });
    }
    expect(() => new Orchestrator({ policy: { reserveOutputTokens: -5 } })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_POLICY' }) as Error);
  });

  it('a per-run policy can raise reserveOutputTokens, never lower it', { timeout: 5_000 }, async () => {
    const orch = new Orchestrator({ policy: { reserveOutputTokens: 500 } });
    const seen: unknown[] = [];
    const agent = { name: 'r', invoke: (_t: unknown, ctx: AgentContext) => (ctx.beginModelCall({ input: '', inputTokens: 0 }).end('ok', { input: 0, output: 1 }), { output: 'x' }) };
    for (const reserveOutputTokens of [100, 900]) {
      const handle = orch.start({ agent, task: 't', policy: { reserveOutputTokens } });
      await handle.report;
      seen.push((handle.events().find((e) => e.type === 'MODEL_CALL')?.payload as { reserved: { output: number } }).reserved.output);
    }
    expect(seen).toEqual([500, 900]);
  });

  it('never lets a run end above its token limit (property, hand-written agents)', { timeout: 60_000 }, async () => {
    const callArb = fc.record({ inputTokens: fc.integer({ min: 0, max: 400 }), maxOutputTokens: fc.integer({ min: 0, max: 800 }), used: fc.integer({ min: 0, max: 800 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(callArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 3_000 }), async (calls, maxTokens) => {
        const report = await new Orchestrator({ store: false, policy: { maxTokens } }).run({ agent: caller(calls), task: 't' });
        expect(report.tokenUsage.total).toBeLessThanOrEqual(maxTokens);
      }),
      { numRuns: 300 },
    );
  });

  it('never lets a batch end above its shared token limit (property, several runs at once)', { timeout: 60_000 }, async () => {
    const callArb = fc.record({ inputTokens: fc.integer({ min: 0, max: 200 }), maxOutputTokens: fc.integer({ min: 0, max: 400 }), used: fc.integer({ min: 0, max: 400 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(callArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 2_000 }), async (runs, maxTokens) => {
        const multi = new MultiAgentOrchestrator({ maxConcurrency: 3, budget: { maxTokens }, policy: { maxTokens: 100_000 } });
        const reports = await multi.runAll(runs.map((calls) => ({ agent: caller(calls), task: 't' })));
        const total = reports.reduce((sum, report) => sum + report.tokenUsage.total, 0);
        expect(total).toBeLessThanOrEqual(maxTokens);
      }),
      { numRuns: 150 },
    );
  });

  it('never lets a governed LangChain chat model loop end above its limit (property, fake chat model honouring its cap)', { timeout: 60_000 }, async () => {
    // The fake model's prompt tokens stay within the estimate of its short prompt, and its output
    // within the reserved cap, as a real model's do when the prompt is counted: then no run ends
    // above its limit, however the sizes fall.
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 2_000 }), async (input, output, maxTokens) => {
        // The model asks for a tool every turn: the loop goes on until a limit stops it.
        const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'x' } }], usage: { input, output } }]);
        const agent = fromChatModel(model, { tools: [searchTool({ count: 0 })] });
        const report = await new Orchestrator({ store: false, policy: { maxTokens, maxSteps: 12, maxToolCalls: 12, reserveOutputTokens: output } }).run({
          agent,
          tools: agent.tools,
          task: 't',
        });
        expect(report.tokenUsage.total).toBeLessThanOrEqual(maxTokens);
      }),
      { numRuns: 100 },
    );
  });
});
