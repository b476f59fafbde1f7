import { InMemoryCache } from '@langchain/core/caches';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { RunnableLambda, RunnableParallel, type RunnableConfig } from '@langchain/core/runnables';
import { tool } from '@langchain/core/tools';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from 'xstate';
import { z } from 'zod';
import { createMemoryStore, Orchestrator, type AgentContext } from '../../src/index.js';
import { fromChatModel, fromRunnable, governedConfig, governTools } from '../../src/adapters/langchain/index.js';
import { callCap, deferred, expectValidEvents, expectValidReport, settlesAtOnce } from '../helpers.js';
import { ScriptedChatModel } from './scriptedChatModel.js';
import { asyncStore, hangingCrawlTool, recording, searchTool } from './fixtures.js';


const prompt = ChatPromptTemplate.fromTemplate('Tell me about {topic}');

describe('fromRunnable: a chain as a governed agent', () => {
  it('runs a prompt | model | parser chain with exact token totals, every model call metered', async () => {
    const model = new ScriptedChatModel([
      { content: 'Governance is control.', usage: { input: 12, output: 8 } },
      { content: 'In short: control.', usage: { input: 30, output: 10 }, usageIn: 'llmOutput' },
    ]);
    const summarize = ChatPromptTemplate.fromTemplate('Summarize: {text}');
    const chain = prompt
      .pipe(model)
      .pipe(new StringOutputParser())
      .pipe((text: string) => ({ text }))
      .pipe(summarize)
      .pipe(model)
      .pipe(new StringOutputParser());
    const orch = new Orchestrator({ policy: { maxTokens: 10_000 } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromRunnable(chain, { name: 'summarizer' }), task: { topic: 'governance' } });

    expectValidReport(report);
    expectValidEvents(events);
    expect(report.status).toBe('SUCCESS');
    expect(report.agentName).toBe('summarizer');
    expect(report.finalOutput).toBe('In short: control.');
    expect(report.totalSteps).toBe(1);
    // usage_metadata from the first call, the older llmOutput.tokenUsage from the second
    expect(report.tokenUsage).toEqual({ input: 42, output: 18, total: 60 });
    const modelEvents = events.filter((e) => e.type === 'MODEL_CALL' || e.type === 'MODEL_RESULT' || e.type === 'TOKEN_USAGE');
    expect(modelEvents.map((e) => e.type)).toEqual(['MODEL_CALL', 'MODEL_RESULT', 'TOKEN_USAGE', 'MODEL_CALL', 'MODEL_RESULT', 'TOKEN_USAGE']);
    expect(modelEvents[0]?.payload).toMatchObject({ model: 'ScriptedChatModel', input: [{ role: 'human', content: 'Tell me about governance' }] });
    expect(modelEvents[1]?.payload).toMatchObject({ ok: true, output: { role: 'ai', content: 'Governance is control.' }, usage: { total: 20 } });
    expect(modelEvents[5]?.payload).toMatchObject({ source: 'model', total: 40 });
  });

  it('a response served from LangChain’s cache costs no tokens', async () => {
    const model = new ScriptedChatModel([{ content: 'cached answer', usage: { input: 9, output: 3 } }]);
    model.cache = new InMemoryCache();
    const orch = new Orchestrator();
    const first = await orch.run({ agent: fromRunnable(model), task: 'same question' });
    const second = await orch.run({ agent: fromRunnable(model), task: 'same question' });
    expect(model.calls).toBe(1);
    expect(first).toMatchObject({ finalOutput: 'cached answer', tokenUsage: { total: 12 } });
    expect(second).toMatchObject({ finalOutput: 'cached answer', tokenUsage: { total: 0 } });
  });

  it("a chain's message output becomes its text, and a model without usage is charged its whole reservation, flagged", async () => {
    const chain = prompt.pipe(new FakeListChatModel({ responses: ['Hello there'] }));
    const handle = new Orchestrator().start({ agent: fromRunnable(chain), task: { topic: 'x' } });
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.agentName).toBe('RunnableSequence');
    expect(report.finalOutput).toBe('Hello there');
    // An unmetered call never costs 0: its prompt (estimated) and the default 1024 output tokens.
    const call = handle.events().find((e) => e.type === 'MODEL_CALL')?.payload as { reserved: { input: number; output: number } };
    expect(call.reserved.output).toBe(1024);
    expect(report.tokenUsage.total).toBe(call.reserved.input + 1024);
    expect(handle.events().find((e) => e.type === 'MODEL_RESULT')?.payload).toMatchObject({ unmetered: true, usage: { output: 1024 } });
  });

  it("threads the run's signal, the caller's callbacks, metadata and recursionLimit through RunnableConfig", async () => {
    let seen: RunnableConfig | undefined;
    const ended: string[] = [];
    const probe = RunnableLambda.from((input: string, config?: RunnableConfig) => {
      seen = config;
      return input.toUpperCase();
    });
    const agent = fromRunnable(probe, {
      config: {
        recursionLimit: 7,
        tags: ['mine'],
        callbacks: [{ handleChainEnd: () => void ended.push('chain') }],
      },
    });
    const report = await new Orchestrator().run({ agent, task: 'shout' });
    expect(report.finalOutput).toBe('SHOUT');
    expect(seen?.signal).toBeInstanceOf(AbortSignal);
    expect(seen?.recursionLimit).toBe(6); // LangChain counts the lambda's own level
    expect(seen?.tags).toContain('mine');
    expect(seen?.metadata).toMatchObject({ oao_execution_id: report.executionId });
    expect(ended.length).toBeGreaterThan(0);
  });

  it('each invocation is given its own UUID v7 run id; a base config keeps its own, and governedConfig sets none', async () => {
    const ids: unknown[] = [];
    const runnable = { invoke: async (_input: unknown, config?: RunnableConfig) => (ids.push(config?.runId), 'ok') };
    const orch = new Orchestrator();
    const before = Date.now();
    await orch.run({ agent: fromRunnable(runnable), task: 'x' });
    await orch.run({ agent: fromRunnable(runnable), task: 'y' });
    await orch.run({ agent: fromRunnable(runnable, { steps: 'modelCall' }), task: 'z' });
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const ms = Number.parseInt(String(id).replace('-', '').slice(0, 12), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(Date.now());
    }
    // LangChain's own runs start under it.
    const started: string[] = [];
    const handler = { handleChainStart: (_chain: unknown, _inputs: unknown, runId: string, parentRunId?: string) => void (parentRunId === undefined && started.push(runId)) };
    const chain = prompt.pipe(new FakeListChatModel({ responses: ['a'] })).pipe(new StringOutputParser());
    await orch.run({ agent: fromRunnable(chain, { config: { callbacks: [handler] } }), task: { topic: 'x' } });
    expect(started).toHaveLength(1);
    expect(started[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    const own = '0190a5b2-0000-7000-8000-000000000001';
    ids.length = 0;
    await orch.run({ agent: fromRunnable(runnable, { config: { runId: own } }), task: 'x' });
    expect(ids).toEqual([own]);
    let config: RunnableConfig | undefined;
    await orch.run({ agent: { invoke: (_task: unknown, ctx: AgentContext) => ((config = governedConfig(ctx)), { output: 'ok' }) }, task: 'x' });
    expect(config).toBeDefined();
    expect(config?.runId).toBeUndefined();
  });

  it('cancelling the run aborts the Runnable through its config signal', async () => {
    let aborted = false;
    const running = deferred();
    // Never answers on its own: only its signal could end it.
    const hanging = RunnableLambda.from(
      (_: string, config?: RunnableConfig) =>
        new Promise<string>(() => {
          config?.signal?.addEventListener('abort', () => (aborted = true), { once: true });
          running.resolve();
        }),
    );
    const handle = new Orchestrator().start({ agent: fromRunnable(hanging), task: 'wait' });
    await running.promise;
    handle.cancel('user left');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'user left' });
    expect(aborted).toBe(true);
  });

  it('a usage report that crosses the budget mid-call aborts the calls still running', async () => {
    const fast = new ScriptedChatModel([{ content: 'fast', usage: { input: 60, output: 40 } }]);
    // The slow model never answers: the run can only end because the fast one crossed the budget.
    const slow = new ScriptedChatModel([{ content: 'slow', usage: { input: 1, output: 1 }, hang: true }]);
    const both = RunnableParallel.from({ fast, slow });
    const handle = new Orchestrator({ policy: { maxTokens: 50, reserveOutputTokens: 0 } }).start({
      agent: fromRunnable(both, { output: () => 'never' }),
      task: 'race',
    });
    const report = await handle.report;
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(slow.aborted).toBe(1);
    // The fast call's 100, and the slow call's reservation: it was still running, so it was charged that.
    const abandoned = handle.events().flatMap((event) => (event.type === 'MODEL_RESULT' && event.payload.abandoned === true ? [event.payload] : []));
    expect(abandoned).toHaveLength(1);
    const charged = abandoned[0]?.usage?.total ?? 0;
    expect(charged).toBeGreaterThan(0);
    expect(report.tokenUsage.total).toBe(100 + charged);
  });

  it('refuses a model call when the budget is already spent: the model never runs', async () => {
    const model = new ScriptedChatModel([{ content: 'x', usage: { input: 1, output: 1 } }]);
    const agent = {
      name: 'spender',
      async invoke(_: unknown, ctx: AgentContext) {
        ctx.usage(10); // the whole budget
        return (await model.invoke('hi', governedConfig(ctx))).text;
      },
    };
    const report = await new Orchestrator({ policy: { maxTokens: 10 } }).run({ agent, task: 't' });
    expect(model.calls).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
  });

  it('governedConfig meters model calls an agent makes itself', async () => {
    const model = new ScriptedChatModel([{ content: 'answer', usage: { input: 5, output: 7 } }]);
    const agent = {
      async invoke(question: string, ctx: AgentContext) {
        const message = await model.invoke(question, governedConfig(ctx));
        return message.text;
      },
    };
    const report = await new Orchestrator().run({ agent, task: 'why?' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'answer', tokenUsage: { input: 5, output: 7, total: 12 } });
  });

  it('governs the tools a Runnable calls: stand-ins through the run, plain tools from the handler, as configured', { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const raw = searchTool(bodies);
    const [governed] = governTools([raw]);
    const viaGoverned = RunnableLambda.from((q: string, config?: RunnableConfig) => governed!.invoke({ q }, config));
    const agent = fromRunnable(viaGoverned, { tools: [governed!] });
    const orch = new Orchestrator();
    const ok = await orch.run({ agent, tools: agent.tools, task: 'oao' });
    expect(ok).toMatchObject({ status: 'SUCCESS', finalOutput: '3 results for "oao"', toolUsage: { total: 1, byTool: { search: 1 } } });
    expect(bodies.count).toBe(1);

    const viaRaw = RunnableLambda.from((q: string, config?: RunnableConfig) => raw.invoke({ q }, config));
    const governedPlain = await orch.run({ agent: fromRunnable(viaRaw), task: 'oao' });
    expect(governedPlain).toMatchObject({ status: 'SUCCESS', finalOutput: '3 results for "oao"', toolUsage: { total: 1, byTool: { search: 1 } } });
    expect(bodies.count).toBe(2);

    const denied = await orch.run({ agent: fromRunnable(viaRaw), task: 'oao', policy: { tools: { deny: ['search'] } } });
    expect(denied.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(bodies.count).toBe(2);

    const refused = await orch.run({ agent: fromRunnable(viaRaw, { ungovernedTools: 'refuse' }), task: 'oao' });
    expect(bodies.count).toBe(2);
    expect(refused.status).toBe('FAILED');
    expect(refused.error).toMatchObject({ code: 'OAO_ERR_INVALID_AGENT' });
    expect(refused.error?.message).toMatch(/Tool "search" ran outside OAO's governance/);

    const allowed = await orch.run({ agent: fromRunnable(viaRaw, { ungovernedTools: 'allow' }), task: 'oao' });
    expect(allowed.status).toBe('SUCCESS');
    expect(bodies.count).toBe(3);
    expect(allowed.toolUsage.total).toBe(0);
  });

  it('a plain tool past toolTimeoutMs in a one-step Runnable: recorded as timed out, its body aborted, the step failed', { timeout: 10_000 }, async () => {
    const clock = new SimulatedClock();
    const started = deferred();
    let reason: unknown;
    const slow = tool(
      (_: { q: string }, config) =>
        new Promise<string>((_resolve, reject) => {
          config?.signal?.addEventListener('abort', () => {
            reason = config.signal?.reason;
            reject(new Error('stopped'));
          });
          started.resolve();
        }),
      { name: 'slow', description: 'Takes its time', schema: z.object({ q: z.string() }) },
    );
    const outer = new AbortController();
    const chain = RunnableLambda.from((q: string, config?: RunnableConfig) => slow.invoke({ q }, config));
    const orch = new Orchestrator({ clock, policy: { retry: { maxRetries: 0 } } });
    const events = recording(orch);
    const handle = orch.start({ agent: fromRunnable(chain, { toolTimeoutMs: 500, clock, config: { signal: outer.signal } }), task: 'x' });
    await started.promise;
    clock.increment(500);
    const report = await handle.report;
    expect(reason).toMatchObject({ code: 'OAO_ERR_TOOL_TIMEOUT', details: { tool: 'slow', timeoutMs: 500 } });
    expect(report).toMatchObject({ status: 'FAILED', error: { code: 'OAO_ERR_TOOL_TIMEOUT' }, toolUsage: { total: 1 } });
    expect(events.find((e) => e.type === 'TOOL_RESULT')?.payload).toMatchObject({ tool: 'slow', ok: false, error: { code: 'OAO_ERR_TOOL_TIMEOUT' } });
    expect(outer.signal.aborted).toBe(false);
  });

  it('a plain tool that needs approval waits for it before its body runs', { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const search = searchTool(bodies);
    const chain = RunnableLambda.from((q: string, config?: RunnableConfig) => search.invoke({ q }, config));
    const handle = new Orchestrator({ policy: { tools: { approve: ['search'] } } }).start({ agent: fromRunnable(chain), task: 'oao' });
    await vi.waitFor(() => expect(handle.pendingApprovals()).toHaveLength(1), { timeout: 2_000 });
    expect(handle.pendingApprovals()[0]).toMatchObject({ callId: 't1', tool: 'search', args: { q: 'oao' } });
    expect(bodies.count).toBe(0);
    handle.approve('t1', { by: 'alice' });
    const report = await handle.report;
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: '3 results for "oao"', toolUsage: { total: 1 } });
    expect(bodies.count).toBe(1);
  });

  it('governedConfig governs the plain tools an agent calls itself, write-ahead with an asynchronous store', { timeout: 10_000 }, async () => {
    const store = asyncStore(createMemoryStore());
    const orch = new Orchestrator({ store });
    let durableAtBody: string[] = [];
    let executionId = '';
    const search = tool(
      ({ q }: { q: string }) => {
        durableAtBody = store.durable(executionId).map((e) => e.type);
        return `found ${q}`;
      },
      { name: 'search', description: 'Searches', schema: z.object({ q: z.string() }) },
    );
    const agent = {
      async invoke(q: string, ctx: AgentContext) {
        executionId = ctx.executionId;
        return search.invoke({ q }, governedConfig(ctx));
      },
    };
    const report = await orch.run({ agent, task: 'oao' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'found oao', toolUsage: { total: 1 } });
    // The body ran only once its TOOL_CALL was durable.
    expect(durableAtBody).toContain('TOOL_CALL');
    expect(durableAtBody).not.toContain('TOOL_RESULT');
  });

  it("steps: 'modelCall' spreads one Runnable run over steps, one model call each", async () => {
    const model = new ScriptedChatModel([
      { content: 'draft', usage: { input: 4, output: 4 } },
      { content: 'critique', usage: { input: 5, output: 5 } },
      { content: 'final', usage: { input: 6, output: 6 } },
    ]);
    const writer = RunnableLambda.from(async (topic: string, config?: RunnableConfig) => {
      const draft = await model.invoke(`Write about ${topic}`, config);
      const critique = await model.invoke(`Critique: ${draft.text}`, config);
      return model.invoke(`Rewrite ${draft.text} after ${critique.text}`, config);
    });
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromRunnable(writer, { steps: 'modelCall', name: 'writer' }), task: 'OAO' });
    expect(report).toMatchObject({ status: 'SUCCESS', totalSteps: 3, finalOutput: 'final', tokenUsage: { total: 30 } });
    const outputs = events.filter((e) => e.type === 'STEP_COMPLETE').map((e) => (e.payload as { output: unknown }).output);
    expect(outputs).toEqual(['draft', 'critique', 'final']);

    const model2 = new ScriptedChatModel([{ content: 'again', usage: { input: 1, output: 1 } }]);
    const loop = callCap(20, 'The endless chain');
    const endless = RunnableLambda.from(async (_: string, config?: RunnableConfig) => {
      for (;;) {
        loop.tick();
        await model2.invoke('more', config);
      }
    });
    const bounded = await orch.run({ agent: fromRunnable(endless, { steps: 'modelCall' }), task: 'x', policy: { maxSteps: 4 } });
    expect(bounded.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(model2.calls).toBe(4);
  });

  it('a governed tool outside any run behaves like its original', async () => {
    const bodies = { count: 0 };
    const [governed] = governTools([searchTool(bodies)]);
    await expect(governed!.invoke({ q: 'plain' })).resolves.toBe('3 results for "plain"');
    const message = await governed!.invoke({ type: 'tool_call', id: 'c1', name: 'search', args: { q: 'call' } });
    expect(message).toMatchObject({ content: '3 results for "call"', tool_call_id: 'c1' });
    expect(bodies.count).toBe(2);
  });

  it('rejects invalid options with typed errors', () => {
    expect(() => fromRunnable({} as never)).toThrow(/Expected a LangChain Runnable/);
    expect(() => fromRunnable(prompt, { steps: 'turns' as never })).toThrow(/Expected steps to be "run" or "modelCall", got "turns"/);
    expect(() => fromRunnable(prompt, { tools: [{ name: 'x' } as never] })).toThrow(/Expected tools\[0\] to be a LangChain tool/);
    const bodies = { count: 0 };
    expect(() => governTools([searchTool(bodies), searchTool(bodies)])).toThrow(/Two tools are named "search"/);
    expect(() => fromChatModel(new FakeListChatModel({ responses: [] }), { toolErrors: 'ignore' as never })).toThrow(/toolErrors/);
  });

  it('a Runnable passed directly is detected: one step, the run signal threaded through its config', async () => {
    const chain = prompt.pipe(new FakeListChatModel({ responses: ['direct'] })).pipe(new StringOutputParser());
    const report = await new Orchestrator().run({ agent: chain as never, task: { topic: 'x' } });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'direct', agentName: 'RunnableSequence', totalSteps: 1 });

    let seen: RunnableConfig | undefined;
    const running = deferred();
    const slow = RunnableLambda.from(async (_input: string, config?: RunnableConfig) => {
      seen = config;
      const aborted = new Promise((_resolve, reject) => config?.signal?.addEventListener('abort', () => reject(config.signal?.reason)));
      running.resolve();
      await aborted;
      return 'never';
    });
    const handle = new Orchestrator().start({ agent: slow as never, task: 'wait' });
    await running.promise;
    handle.cancel('stop the chain');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const cancelled = await handle.report;
    expect(cancelled.termination).toEqual({ reason: 'cancelled', message: 'stop the chain' });
    expect(seen?.signal?.aborted).toBe(true);
    expect(seen?.metadata).toMatchObject({ oao_execution_id: handle.executionId, oao_step: 1 });
  });

  it('a Runnable passed directly is metered live like fromRunnable: a chain ending in a parser reports its tokens', { timeout: 10_000 }, async () => {
    const model = new ScriptedChatModel([{ content: 'parsed answer', usage: { input: 9, output: 6 } }]);
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: prompt.pipe(model).pipe(new StringOutputParser()) as never, task: { topic: 'x' } });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'parsed answer', tokenUsage: { input: 9, output: 6, total: 15 } });
    expect(events.filter((e) => e.type === 'MODEL_CALL')).toHaveLength(1);

    // Gated too: a model call that cannot fit is refused before the model runs.
    const refused = new ScriptedChatModel([{ content: 'never', usage: { input: 1, output: 1 } }]);
    const spent = await orch.run({ agent: prompt.pipe(refused).pipe(new StringOutputParser()) as never, task: { topic: 'x' }, policy: { maxTokens: 10 } });
    expect(spent.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(refused.calls).toBe(0);
  });

  it('a chat model passed directly: its message content is the output, its usage_metadata is counted', async () => {
    const model = new ScriptedChatModel([{ content: 'Hello from the model.', usage: { input: 7, output: 4 } }]);
    const report = await new Orchestrator().run({ agent: model as never, task: 'hi' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'Hello from the model.', tokenUsage: { input: 7, output: 4, total: 11 } });
  });
});

describe('fromChatModel: a governed tool-calling loop', () => {
  it('each model turn is one step; tool results flow back to the model', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([
      { toolCalls: [{ name: 'search', args: { q: 'oao' } }], usage: { input: 10, output: 5 } },
      { content: 'OAO governs agents.', usage: { input: 20, output: 6 } },
    ]);
    const agent = fromChatModel(model, { tools: [searchTool(bodies)], systemPrompt: 'Be brief.' });
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent, tools: agent.tools, task: 'What is OAO?' });

    expectValidReport(report);
    expectValidEvents(events);
    expect(model.boundTools).toEqual(['search']);
    expect(report).toMatchObject({
      status: 'SUCCESS',
      totalSteps: 2,
      finalOutput: 'OAO governs agents.',
      tokenUsage: { input: 30, output: 11, total: 41 },
      toolUsage: { total: 1, byTool: { search: 1 } },
    });
    expect(bodies.count).toBe(1);
    const second = model.received[1]?.map((m) => [m.getType(), m.content]);
    expect(second).toEqual([
      ['system', 'Be brief.'],
      ['human', 'What is OAO?'],
      ['ai', ''],
      ['tool', '3 results for "oao"'],
    ]);
    const toolCall = events.find((e) => e.type === 'TOOL_CALL');
    const toolResult = events.find((e) => e.type === 'TOOL_RESULT');
    expect(toolCall?.payload).toMatchObject({ step: 1, tool: 'search', args: { q: 'oao' } });
    expect(toolResult?.payload).toMatchObject({ step: 1, ok: true, result: '3 results for "oao"' });
    const decisions = events.filter((e) => e.type === 'REVIEW_DECISION').map((e) => (e.payload as { done: boolean }).done);
    expect(decisions).toEqual([false, true]);
  });

  it('maxSteps stops a model that keeps calling tools, before the next model turn starts', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'again' } }], usage: { input: 1, output: 1 } }]);
    const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
    const report = await new Orchestrator({ policy: { maxSteps: 3, maxToolCalls: 10 } }).run({ agent, tools: agent.tools, task: 'loop' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(3);
    expect(model.calls).toBe(3);
    expect(bodies.count).toBe(3);
  });

  it('a denied tool never runs its body, and ends the run even though the loop would go on', async () => {
    let shellRuns = 0;
    const shell = tool(
      async ({ cmd }: { cmd: string }) => {
        shellRuns += 1;
        return cmd;
      },
      { name: 'shell', description: 'Runs a command', schema: z.object({ cmd: z.string() }) },
    );
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'shell', args: { cmd: 'rm -rf /' } }] }, { content: 'done' }]);
    const agent = fromChatModel(model, { tools: [shell] });
    const orch = new Orchestrator({ policy: { tools: { deny: ['shell'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent, tools: agent.tools, task: 'clean up' });
    expect(shellRuns).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(report.toolUsage.total).toBe(0);
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool: 'shell', args: { cmd: 'rm -rf /' }, rule: 'tool_denied' });
    expect(model.calls).toBe(1);
  });

  it('a per-tool limit lets the allowed calls run and refuses the rest before their body', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([
      { toolCalls: [{ name: 'search', args: { q: 'a' } }, { name: 'search', args: { q: 'b' } }, { name: 'search', args: { q: 'c' } }] },
    ]);
    // One after another: with parallel calls the refused third call would abort its running siblings.
    const agent = fromChatModel(model, { tools: [searchTool(bodies)], parallelToolCalls: false });
    const report = await new Orchestrator({ policy: { tools: { maxCalls: { search: 2 } } } }).run({ agent, tools: agent.tools, task: 't' });
    expect(bodies.count).toBe(2);
    expect(report.toolUsage).toEqual({ total: 2, byTool: { search: 2 } });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_max_calls' });
  });

  it('maxToolCalls counts tool bodies across turns', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'x' } }] }]);
    const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
    const report = await new Orchestrator({ policy: { maxToolCalls: 2 } }).run({ agent, tools: agent.tools, task: 't' });
    expect(bodies.count).toBe(2);
    expect(report.totalSteps).toBe(3);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
  });

  it('token budget: usage crossing it (a model that answers past its reservation) ends the run; the turn’s tool calls never run', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'x' } }], usage: { input: 5, output: 60 } }]);
    const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
    const report = await new Orchestrator({ policy: { maxTokens: 50, maxToolCalls: 10, reserveOutputTokens: 0 } }).run({ agent, tools: agent.tools, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(model.calls).toBe(1);
    expect(report.tokenUsage.total).toBe(65);
    expect(bodies.count).toBe(0); // the turn crossed the budget: its tool call was refused
  });

  it('token budget: a turn with no room left after its prompt is refused before the model runs (MODEL_CALL_DENIED)', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'x' } }], usage: { input: 15, output: 1_000 } }]);
    const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
    const handle = new Orchestrator({ policy: { maxTokens: 1_050, maxToolCalls: 10 } }).start({ agent, tools: agent.tools, task: 't' });
    const report = await handle.report;
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.termination.message).toMatch(/Model call refused: it may use up to \d+ tokens/);
    // Each turn reserves its prompt and the default 1024 output tokens: the first fits, the second
    // (1,015 tokens spent, a longer prompt) has no room left even for its prompt, so it is not sent
    // with a lower cap either: the model is called once and the limit holds.
    expect(model.calls).toBe(1);
    expect(report.tokenUsage.total).toBe(1_015);
    const denied = handle.events().find((e) => e.type === 'MODEL_CALL_DENIED');
    expect(denied?.payload).toMatchObject({ rule: 'max_tokens', reserved: { output: 1024, estimated: true } });
    const types = handle.events().map((e) => e.type);
    expect(types.slice(types.indexOf('MODEL_CALL_DENIED'), types.indexOf('MODEL_CALL_DENIED') + 2)).toEqual(['MODEL_CALL_DENIED', 'POLICY_VIOLATION']);
    expect(types.filter((t) => t === 'MODEL_CALL')).toHaveLength(1);
  });

  it('cancelling while a slow tool runs aborts the tool through its signal and ends the run at once', async () => {
    const { crawl, seen } = hangingCrawlTool();
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'crawl', args: { q: 'everything' } }] }, { content: 'never' }]);
    const agent = fromChatModel(model, { tools: [crawl] });
    const orch = new Orchestrator();
    const handle = orch.start({ agent, tools: agent.tools, task: 't' });
    await seen.started;
    handle.cancel('stop crawling');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'stop crawling' });
    expect(seen.aborted).toBe(true);
    expect(model.calls).toBe(1);
  });

  it('tool errors become error messages for the model, or fail the run, as configured', async () => {
    const failing = tool(
      async (): Promise<string> => {
        throw new Error('service down');
      },
      { name: 'lookup', description: 'Looks up', schema: z.object({ id: z.number() }) },
    );
    const script = () =>
      new ScriptedChatModel([
        {
          toolCalls: [
            { name: 'lookup', args: { id: 1 } },
            { name: 'lookup', args: { id: 'not a number' } },
            { name: 'teleport', args: {} },
          ],
        },
        { content: 'Sorry, the lookup failed.' },
      ]);
    const orch = new Orchestrator();
    const asMessages = script();
    const agent = fromChatModel(asMessages, { tools: [failing] });
    const report = await orch.run({ agent, tools: agent.tools, task: 't' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'Sorry, the lookup failed.', totalSteps: 2 });
    const toolMessages = asMessages.received[1]?.filter((m) => m.getType() === 'tool') ?? [];
    expect(toolMessages.map((m) => [m.text.split('\n')[0], (m as { status?: string }).status])).toEqual([
      ['Error: service down', 'error'],
      ['Error: Received tool input did not match expected schema', 'error'], // zod v4 schema, checked by LangChain
      ['Error: The run has no tool named "teleport"', 'error'],
    ]);

    const failAgent = fromChatModel(script(), { tools: [failing], toolErrors: 'fail' });
    const failed = await orch.run({ agent: failAgent, tools: failAgent.tools, task: 't' });
    expect(failed.termination).toMatchObject({ reason: 'error', message: 'service down' });
  });

  it('keeps the artifact of a content-and-artifact tool', async () => {
    const fetchDoc = tool(async ({ id }: { id: string }) => [`summary of ${id}`, { id, bytes: 1234 }], {
      name: 'fetch_doc',
      description: 'Fetches a document',
      schema: z.object({ id: z.string() }),
      responseFormat: 'content_and_artifact',
    });
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'fetch_doc', args: { id: 'd1' } }] }, { content: 'ok' }]);
    const agent = fromChatModel(model, { tools: [fetchDoc] });
    const orch = new Orchestrator();
    const events = recording(orch);
    expect((await orch.run({ agent, tools: agent.tools, task: 't' })).status).toBe('SUCCESS');
    const toolMessage = model.received[1]?.find((m) => m.getType() === 'tool') as { content: unknown; artifact?: unknown } | undefined;
    expect(toolMessage).toMatchObject({ content: 'summary of d1', artifact: { id: 'd1', bytes: 1234 } });
    expect(events.find((e) => e.type === 'TOOL_RESULT')?.payload).toMatchObject({ result: ['summary of d1', { id: 'd1', bytes: 1234 }] });
    const [governed] = governTools([fetchDoc]);
    const outside = await governed!.invoke({ type: 'tool_call', id: 'c9', name: 'fetch_doc', args: { id: 'd2' } });
    expect(outside).toMatchObject({ content: 'summary of d2', artifact: { id: 'd2', bytes: 1234 }, tool_call_id: 'c9' });
  });

  it('brings its tools along: a request without them still runs them governed', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'oao' } }] }, { content: 'done' }]);
    const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
    const report = await new Orchestrator().run({ agent, task: 't' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'done', toolUsage: { total: 1, byTool: { search: 1 } } });
    expect(bodies.count).toBe(1);
  });

  it('accepts a conversation as the task and records it in the plan', async () => {
    const model = new ScriptedChatModel([{ content: 'Hi Ada.' }]);
    const agent = fromChatModel(model);
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({
      agent,
      task: [
        { role: 'system', content: 'You are polite.' },
        { role: 'user', content: 'I am Ada.' },
      ],
    });
    expect(report.finalOutput).toBe('Hi Ada.');
    expect(model.received[0]?.map((m) => m.getType())).toEqual(['system', 'human']);
    expect(events.find((e) => e.type === 'PLAN_COMPLETE')?.payload).toEqual({
      input: { messages: [{ role: 'system', content: 'You are polite.' }, { role: 'human', content: 'I am Ada.' }] },
    });
  });
});
