import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { canonicalJson, OaoError, Orchestrator, type AgentContext } from '../src/index.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';

/** An agent with a plan, tool calls, a hand-written model call and usage, over two steps. */
function analyst(options: { model: (prompt: string) => string; query?: string; calls?: { model: number } }) {
  return {
    name: 'analyst',
    plan: (task: string) => `question: ${task}`,
    async invoke(input: string, ctx: AgentContext) {
      const hits = await ctx.tools.search!({ q: options.query ?? input, step: ctx.step });
      const call = ctx.beginModelCall({ model: 'fake-1', input: `${input} ${JSON.stringify(hits)}` });
      await call.ready;
      // A re-run against the log serves the recorded answer: nothing is sent to the model.
      let text: string;
      if (call.replayed !== undefined) {
        text = (call.replayed.output as { text: string }).text;
      } else {
        if (options.calls !== undefined) options.calls.model += 1;
        text = options.model(input);
      }
      call.end({ text }, call.replayed?.usage ?? { input: 12, output: 8 });
      ctx.usage(1);
      return { output: `answer ${ctx.step}: ${text}` };
    },
    review: (result: { step: number }) => ({ done: result.step >= 2, input: 'dig deeper' }),
  };
}

async function record(agent: ReturnType<typeof analyst>, tools: Record<string, (args: { q: string; step: number }) => unknown>) {
  const store = createMemoryStore();
  const orch = new Orchestrator({ store });
  const report = await orch.run({ agent, task: 'governance', tools, executionId: 'recorded' });
  return { store, orch, report, events: store.events('recorded') };
}

describe('verify-replay', () => {
  it('re-runs the same code with zero tool bodies and zero model calls, and confirms the report', async () => {
    let bodies = 0;
    const calls = { model: 0 };
    const tools = { search: ({ q }: { q: string }) => (bodies += 1, [`result for ${q}`]) };
    const { orch, report } = await record(analyst({ model: (p) => `says ${p}`, calls }), tools);
    expect(report.status).toBe('SUCCESS');
    expect([bodies, calls.model]).toEqual([2, 2]);

    const verified = await orch.replay('recorded', { verify: true, agent: analyst({ model: () => 'unused', calls }), tools });
    expect(canonicalJson(verified)).toBe(canonicalJson(report));
    expect([bodies, calls.model]).toEqual([2, 2]);
  });

  it('names the first differing event when the agent changed', async () => {
    const { orch } = await record(analyst({ model: (p) => `says ${p}` }), { search: () => ['r'] });
    const changed = analyst({ model: () => 'unused', query: 'another question' });
    const error = await orch.replay('recorded', { verify: true, agent: changed }).catch((e: unknown) => e);
    expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_REPLAY_DIVERGED');
    const details = (error as OaoError).details as { seq: number; expected: { type: string; payload: { args: unknown } }; actual: { type: string; payload: { args: unknown } } };
    expect(details.expected.type).toBe('TOOL_CALL');
    expect(details.actual.type).toBe('TOOL_CALL');
    expect(details.expected.payload.args).toEqual({ q: 'question: governance', step: 1 });
    expect(details.actual.payload.args).toEqual({ q: 'another question', step: 1 });
  });

  it('notices a run that now ends sooner or later than recorded', async () => {
    const { events } = await record(analyst({ model: (p) => `says ${p}` }), { search: () => ['r'] });
    const oneStep = { ...analyst({ model: () => 'unused' }), review: () => ({ done: true }) };
    await expect(new Orchestrator().replay(events, { verify: true, agent: oneStep })).rejects.toMatchObject({ code: 'OAO_ERR_REPLAY_DIVERGED' });
  });

  it('ends a re-run where a cancel or a timeout ended the recording', async () => {
    const clock = new SimulatedClock();
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 1_000 } });
    const hang = (_t: string, ctx: AgentContext) => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
    const timedOut = orch.start({ agent: hang, task: 'x' });
    clock.increment(1_001);
    const timeoutReport = await timedOut.report;
    const cancelled = orch.start({ agent: hang, task: 'y' });
    cancelled.cancel('user left');
    const cancelReport = await cancelled.report;
    for (const [report, events] of [
      [timeoutReport, timedOut.events()],
      [cancelReport, cancelled.events()],
    ] as const) {
      const verified = await new Orchestrator().replay(events, { verify: true, agent: hang });
      expect(canonicalJson(verified)).toBe(canonicalJson(report));
    }
  });

  it('needs the agent, and refuses a log that has not finished', async () => {
    const { events } = await record(analyst({ model: (p) => p }), { search: () => [] });
    const orch = new Orchestrator();
    await expect(orch.replay(events, { verify: true })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'agent' } });
    await expect(orch.replay(events.slice(0, 5), { verify: true, agent: analyst({ model: (p) => p }) })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
  });
});
