import type { RunnableConfig } from '@langchain/core/runnables';
import { tool } from '@langchain/core/tools';
import { Annotation, MessagesAnnotation, StateGraph } from '@langchain/langgraph';
import { createReactAgent, ToolNode, toolsCondition } from '@langchain/langgraph/prebuilt';
import { describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from 'xstate';
import { z } from 'zod';
import { Orchestrator } from '../../src/index.js';
import type { LangChainTool } from '../../src/adapters/langchain/index.js';
import { fromGraph, governTools, type GraphAgentOptions } from '../../src/adapters/langgraph/index.js';
import { deferred, expectValidEvents, expectValidReport, flush, settlesAtOnce } from '../helpers.js';
import { ScriptedChatModel, type ScriptedTurn } from './scriptedChatModel.js';
import { hangingCrawlTool, recording, searchTool } from './fixtures.js';


/** The prebuilt ReAct agent on a scripted model, with governed tools. */
function reactAgent(turns: readonly ScriptedTurn[], rawTools: Parameters<typeof governTools>[0]) {
  const model = new ScriptedChatModel(turns);
  const tools = governTools(rawTools);
  const graph = createReactAgent({ llm: model, tools });
  return { model, graph, agent: fromGraph(graph, { tools }) };
}

const searchThenAnswer: ScriptedTurn[] = [
  { toolCalls: [{ name: 'search', args: { q: 'oao' } }], usage: { input: 10, output: 5 } },
  { content: 'OAO governs agents.', usage: { input: 25, output: 7 } },
];

describe('fromGraph: the prebuilt ReAct agent, governed', () => {
  it('runs one model turn per step, with exact tokens, tool calls and output', async () => {
    const bodies = { count: 0 };
    const { model, agent } = reactAgent(searchThenAnswer, [searchTool(bodies)]);
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent, tools: agent.tools, task: 'What is OAO?' });

    expectValidReport(report);
    expectValidEvents(events);
    expect(report).toMatchObject({
      status: 'SUCCESS',
      agentName: 'LangGraph',
      totalSteps: 2,
      finalOutput: 'OAO governs agents.',
      tokenUsage: { input: 35, output: 12, total: 47 },
      toolUsage: { total: 1, byTool: { search: 1 } },
    });
    expect(model.calls).toBe(2);
    expect(bodies.count).toBe(1);
    const byStep = events
      .filter((e) => e.type === 'MODEL_CALL' || e.type === 'TOOL_CALL' || e.type === 'STEP_COMPLETE')
      .map((e) => `${e.type}@${(e.payload as { step: number }).step}`);
    expect(byStep).toEqual(['MODEL_CALL@1', 'TOOL_CALL@1', 'STEP_COMPLETE@1', 'MODEL_CALL@2', 'STEP_COMPLETE@2']);
    // The tool's result reached the model through the graph's state.
    expect(model.received[1]?.map((m) => m.getType())).toEqual(['human', 'ai', 'tool']);
    expect(model.received[1]?.[2]?.content).toBe('3 results for "oao"');
  });

  it('maxSteps bounds the graph’s loop: the next model call never starts', async () => {
    const bodies = { count: 0 };
    const { model, agent } = reactAgent([{ toolCalls: [{ name: 'search', args: { q: 'more' } }], usage: { input: 1, output: 1 } }], [searchTool(bodies)]);
    const report = await new Orchestrator({ policy: { maxSteps: 3, maxToolCalls: 10 } }).run({ agent, tools: agent.tools, task: 'loop' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(3);
    expect(model.calls).toBe(3);
    expect(bodies.count).toBe(3);
  });

  it('a denied tool never runs its body, even though the graph’s ToolNode catches the error', async () => {
    const bodies = { count: 0 };
    const { model, agent } = reactAgent(searchThenAnswer, [searchTool(bodies)]);
    const orch = new Orchestrator({ policy: { tools: { deny: ['search'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent, tools: agent.tools, task: 'What is OAO?' });
    expect(bodies.count).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(events.filter((e) => e.type === 'TOOL_DENIED')).toHaveLength(1);
    expect(model.calls).toBe(1);
  });

  it('a tool limit: calls within it run, the call beyond it is refused before its body', async () => {
    const bodies = { count: 0 };
    const { agent } = reactAgent([{ toolCalls: [{ name: 'search', args: { q: 'x' } }] }], [searchTool(bodies)]);
    const report = await new Orchestrator({ policy: { maxToolCalls: 2 } }).run({ agent, tools: agent.tools, task: 't' });
    expect(bodies.count).toBe(2);
    expect(report.toolUsage.total).toBe(2);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
  });

  it('token budget: usage crossing it (a model that answers past its reservation) ends the run at that model call', async () => {
    const bodies = { count: 0 };
    const { model, agent } = reactAgent([{ toolCalls: [{ name: 'search', args: { q: 'x' } }], usage: { input: 5, output: 60 } }], [searchTool(bodies)]);
    const report = await new Orchestrator({ policy: { maxTokens: 50, maxToolCalls: 10, reserveOutputTokens: 0 } }).run({ agent, tools: agent.tools, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(model.calls).toBe(1);
    expect(report.tokenUsage.total).toBe(65);
    expect(bodies.count).toBe(0);
  });

  it('token budget: a model call whose reservation does not fit is refused before it is sent', async () => {
    const bodies = { count: 0 };
    const { model, agent } = reactAgent([{ toolCalls: [{ name: 'search', args: { q: 'x' } }], usage: { input: 15, output: 5 } }], [searchTool(bodies)]);
    const report = await new Orchestrator({ policy: { maxTokens: 100, maxToolCalls: 10, reserveOutputTokens: 60 } }).run({ agent, tools: agent.tools, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.termination.message).toMatch(/Model call refused/);
    // Never above the limit: what was spent plus what the refused call could have spent did not fit.
    expect(report.tokenUsage.total).toBeLessThanOrEqual(100);
    expect(model.calls).toBeGreaterThanOrEqual(1);
  });

  it('cancellation reaches a slow tool running inside the graph', async () => {
    const { crawl, seen } = hangingCrawlTool();
    const { model, agent } = reactAgent([{ toolCalls: [{ name: 'crawl', args: { q: 'web' } }] }, { content: 'never' }], [crawl]);
    const handle = new Orchestrator().start({ agent, tools: agent.tools, task: 't' });
    await seen.started;
    handle.cancel('enough');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'enough' });
    expect(seen.aborted).toBe(true);
    expect(model.calls).toBe(1);
  });

  it('cancellation reaches a model call in flight', async () => {
    const { model, agent } = reactAgent([{ content: 'an answer that never comes', hang: true }], []);
    const handle = new Orchestrator().start({ agent, tools: agent.tools, task: 't' });
    await model.whenCalled(1);
    handle.cancel('too slow');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'too slow' });
    await flush();
    expect(model.aborted).toBe(1);
  });

  it("ungovernedTools: 'refuse' refuses a tool built into the graph without governTools, before its body runs", { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel(searchThenAnswer);
    const graph = createReactAgent({ llm: model, tools: [searchTool(bodies)] });
    const report = await new Orchestrator().run({ agent: fromGraph(graph, { ungovernedTools: 'refuse' }), task: 't' });
    expect(bodies.count).toBe(0);
    expect(report.status).toBe('FAILED');
    expect(report.error).toMatchObject({ code: 'OAO_ERR_INVALID_AGENT' });
    expect(report.error?.message).toMatch(/Tool "search" ran outside OAO's governance/);
  });

  it("steps: 'run' runs the whole graph in one step, every model call still metered", async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel(searchThenAnswer);
    const tools = governTools([searchTool(bodies)]);
    const agent = fromGraph(createReactAgent({ llm: model, tools }), { tools, steps: 'run', name: 'react' });
    const report = await new Orchestrator().run({ agent, tools: agent.tools, task: 'What is OAO?' });
    expect(report).toMatchObject({
      status: 'SUCCESS',
      agentName: 'react',
      totalSteps: 1,
      finalOutput: 'OAO governs agents.',
      tokenUsage: { total: 47 },
      toolUsage: { total: 1 },
    });
  });

  it('recursionLimit is a backstop derived from maxSteps, for loops without model calls', async () => {
    const State = Annotation.Root({ n: Annotation<number>({ reducer: (_, b) => b, default: () => 0 }) });
    const spinning = new StateGraph(State)
      .addNode('spin', (s: typeof State.State) => ({ n: s.n + 1 }))
      .addEdge('__start__', 'spin')
      .addConditionalEdges('spin', () => 'spin')
      .compile();
    const report = await new Orchestrator({ policy: { maxSteps: 2, retry: { maxRetries: 2, initialDelayMs: 1 } } }).run({
      agent: fromGraph(spinning, { superstepsPerTurn: 3 }),
      task: { n: 0 },
    });
    expect(report.termination.reason).toBe('error');
    expect(report.error).toMatchObject({ code: 'OAO_ERR_AGENT_FAILED', details: { graphError: 'GraphRecursionError' } });
    expect(report.error?.message).toMatch(/Recursion limit of 9/);
    expect(report.totalSteps).toBe(1); // not retried
  });

  it('rejects invalid options with typed errors', () => {
    const { graph } = reactAgent(searchThenAnswer, []);
    expect(() => fromGraph(graph, { superstepsPerTurn: 0 })).toThrow(/superstepsPerTurn/);
    expect(() => fromGraph(graph, { ungovernedTools: 'ignore' as never })).toThrow(/Expected ungovernedTools to be "govern", "refuse" or "allow"/);
    expect(() => fromGraph(graph, { toolTimeoutMs: 0 })).toThrow(/toolTimeoutMs/);
  });
});

/** A LangChain tool that answers only when its signal aborts; `seen` says when it started and why it stopped. */
function slowFetchTool() {
  const started = deferred<void>();
  const seen: { started: Promise<void>; reason: unknown } = { started: started.promise, reason: undefined };
  const fetchTool = tool(
    (_: { url: string }, config) =>
      new Promise<string>((_resolve, reject) => {
        const signal = config?.signal;
        signal?.addEventListener(
          'abort',
          () => {
            seen.reason = signal.reason;
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          },
          { once: true },
        );
        started.resolve();
      }),
    { name: 'fetch', description: 'Fetches a page', schema: z.object({ url: z.string() }) },
  );
  return { fetchTool, seen };
}

/** The two ways a graph's tools are governed: plain tools (zero-config) and governTools stand-ins. */
const toolPaths = [
  {
    path: 'plain tools (zero-config)',
    // OAO does not run a plain tool's body: a call past its limit stops the step's LangChain work.
    timedOut: 'the step fails',
    agent: (model: ScriptedChatModel, tools: LangChainTool[], options: GraphAgentOptions = {}) => fromGraph(createReactAgent({ llm: model, tools }), options),
  },
  {
    path: 'governTools stand-ins',
    // OAO runs a stand-in's body: the call alone fails and the model sees the error.
    timedOut: 'the model answers',
    agent: (model: ScriptedChatModel, tools: LangChainTool[], options: GraphAgentOptions = {}) => {
      const governed = governTools(tools);
      return fromGraph(createReactAgent({ llm: model, tools: governed }), { ...options, tools: governed });
    },
  },
] as const;

describe.each(toolPaths)('tool governance in a ReAct graph: $path', ({ agent: build, timedOut }) => {
  it('usage: each call is counted and recorded, TOOL_CALL before the body runs, TOOL_RESULT after', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator();
    const events = recording(orch);
    const toolCallsSeenByBody: number[] = [];
    const search = tool(
      ({ q }: { q: string }) => {
        toolCallsSeenByBody.push(events.filter((e) => e.type === 'TOOL_CALL').length);
        return `3 results for "${q}"`;
      },
      { name: 'search', description: 'Searches the web', schema: z.object({ q: z.string() }) },
    );
    const model = new ScriptedChatModel(searchThenAnswer);
    const report = await orch.run({ agent: build(model, [search]), task: 'What is OAO?' });
    expectValidReport(report);
    expectValidEvents(events);
    expect(report).toMatchObject({
      status: 'SUCCESS',
      totalSteps: 2,
      finalOutput: 'OAO governs agents.',
      tokenUsage: { input: 35, output: 12, total: 47 },
      toolUsage: { total: 1, byTool: { search: 1 } },
    });
    expect(toolCallsSeenByBody).toEqual([1]);
    const toolEvents = events.filter((e) => e.type === 'TOOL_CALL' || e.type === 'TOOL_RESULT');
    expect(toolEvents.map((e) => [e.type, e.payload])).toEqual([
      ['TOOL_CALL', { step: 1, callId: 't1', tool: 'search', args: { q: 'oao' } }],
      ['TOOL_RESULT', expect.objectContaining({ step: 1, callId: 't1', tool: 'search', ok: true, result: '3 results for "oao"' })],
    ]);
    expect(model.received[1]?.[2]?.content).toBe('3 results for "oao"');
  });

  it('maxToolCalls: the calls within it run; the body of the call over it never runs', { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'again' } }], usage: { input: 1, output: 1 } }]);
    const orch = new Orchestrator({ policy: { maxToolCalls: 2, maxSteps: 10 } });
    const events = recording(orch);
    const report = await orch.run({ agent: build(model, [searchTool(bodies)]), task: 'loop' });
    expect(bodies.count).toBe(2);
    expect(report.toolUsage).toEqual({ total: 2, byTool: { search: 2 } });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(events.filter((e) => e.type === 'TOOL_DENIED')).toHaveLength(1);
    expect(model.calls).toBe(3);
  });

  it('deny list: the body never runs and the run ends policy_violation, though ToolNode catches the error', { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel(searchThenAnswer);
    const orch = new Orchestrator({ policy: { tools: { deny: ['search'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent: build(model, [searchTool(bodies)]), task: 'What is OAO?' });
    expect(bodies.count).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool: 'search', args: { q: 'oao' } });
    expect(events.filter((e) => e.type === 'TOOL_CALL')).toHaveLength(0);
    expect(model.calls).toBe(1);
  });

  it('allow list: a tool left out of it is refused before its body', { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel(searchThenAnswer);
    const report = await new Orchestrator({ policy: { tools: { allow: ['calculator'] } } }).run({ agent: build(model, [searchTool(bodies)]), task: 't' });
    expect(bodies.count).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_not_allowed' });
  });

  it('timeout: a call past toolTimeoutMs fails with OAO_ERR_TOOL_TIMEOUT and its body sees its signal abort', { timeout: 10_000 }, async () => {
    const clock = new SimulatedClock();
    const { fetchTool, seen } = slowFetchTool();
    const model = new ScriptedChatModel([{ toolCalls: [{ name: 'fetch', args: { url: 'https://example.com' } }] }, { content: 'The page timed out.' }]);
    const orch = new Orchestrator({ clock, policy: { retry: { maxRetries: 0 } } });
    const events = recording(orch);
    const handle = orch.start({ agent: build(model, [fetchTool], { toolTimeoutMs: { fetch: 2_000 }, clock }), task: 't' });
    await seen.started;
    clock.increment(1_999);
    await flush();
    expect(seen.reason).toBeUndefined();
    clock.increment(1);
    const report = await handle.report;
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_TOOL_TIMEOUT', details: { tool: 'fetch', timeoutMs: 2_000 } });
    expect(events.find((e) => e.type === 'TOOL_RESULT')?.payload).toMatchObject({ tool: 'fetch', ok: false, error: { code: 'OAO_ERR_TOOL_TIMEOUT' } });
    expect(report.toolUsage.total).toBe(1);
    if (timedOut === 'the model answers') {
      expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'The page timed out.' });
      expect(model.calls).toBe(2);
    } else {
      expect(report).toMatchObject({ status: 'FAILED', termination: { reason: 'error' }, error: { code: 'OAO_ERR_TOOL_TIMEOUT' } });
      expect(model.calls).toBe(1);
    }
  });
});

describe('zero-config tool governance: how LangChain runs the handler', () => {
  it('with LANGCHAIN_CALLBACKS_BACKGROUND=true a refusal still stops the body and a limit still holds', { timeout: 10_000 }, async () => {
    const before = process.env.LANGCHAIN_CALLBACKS_BACKGROUND;
    process.env.LANGCHAIN_CALLBACKS_BACKGROUND = 'true';
    try {
      const bodies = { count: 0 };
      const denied = await new Orchestrator({ policy: { tools: { deny: ['search'] } } }).run({
        agent: fromGraph(createReactAgent({ llm: new ScriptedChatModel(searchThenAnswer), tools: [searchTool(bodies)] })),
        task: 't',
      });
      expect(denied.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
      expect(bodies.count).toBe(0);

      const looping = new ScriptedChatModel([{ toolCalls: [{ name: 'search', args: { q: 'x' } }] }]);
      const limited = await new Orchestrator({ policy: { maxToolCalls: 1 } }).run({
        agent: fromGraph(createReactAgent({ llm: looping, tools: [searchTool(bodies)] })),
        task: 't',
      });
      expect(limited.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
      expect(bodies.count).toBe(1);
    } finally {
      if (before === undefined) delete process.env.LANGCHAIN_CALLBACKS_BACKGROUND;
      else process.env.LANGCHAIN_CALLBACKS_BACKGROUND = before;
    }
  });

  it('a ToolNode with handleToolErrors turns the refusal into a message, yet the run ends policy_violation', { timeout: 10_000 }, async () => {
    const bodies = { count: 0 };
    const tools = [searchTool(bodies)];
    const model = new ScriptedChatModel(searchThenAnswer);
    const toolNode = new ToolNode(tools, { handleToolErrors: true });
    const toolMessages: unknown[] = [];
    const graph = new StateGraph(MessagesAnnotation)
      .addNode('agent', async (state: typeof MessagesAnnotation.State, config?: RunnableConfig) => ({ messages: [await model.invoke(state.messages, config)] }))
      .addNode('tools', async (state: typeof MessagesAnnotation.State, config?: RunnableConfig) => {
        const out = (await toolNode.invoke(state, config)) as { messages: unknown[] };
        toolMessages.push(...out.messages);
        return out;
      })
      .addEdge('__start__', 'agent')
      .addConditionalEdges('agent', toolsCondition)
      .addEdge('tools', 'agent')
      .compile();
    const orch = new Orchestrator({ policy: { tools: { deny: ['search'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromGraph(graph), task: 'What is OAO?' });
    expect(bodies.count).toBe(0);
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(events.filter((e) => e.type === 'TOOL_DENIED')).toHaveLength(1);
    expect(model.calls).toBe(1);
    // The graph did swallow the refusal as an error message (after the run had ended): governance
    // did not need the error to reach OAO.
    await vi.waitFor(() => expect(toolMessages).toHaveLength(1), { timeout: 2_000 });
    expect(toolMessages[0]).toMatchObject({ status: 'error' });
  });

  it('verify-replay of a run with plain tools gives the same report', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator();
    const events = recording(orch);
    const bodies = { count: 0 };
    const report = await orch.run({ agent: fromGraph(createReactAgent({ llm: new ScriptedChatModel(searchThenAnswer), tools: [searchTool(bodies)] })), task: 'What is OAO?' });
    expect(report.toolUsage.total).toBe(1);
    const verified = await new Orchestrator().replay([...events], {
      verify: true,
      agent: fromGraph(createReactAgent({ llm: new ScriptedChatModel(searchThenAnswer), tools: [searchTool(bodies)] })),
    });
    expect(verified).toEqual(report);
  });
});
