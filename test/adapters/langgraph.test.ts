import { Annotation, StateGraph } from '@langchain/langgraph';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { describe, expect, it } from 'vitest';
import { Orchestrator } from '../../src/index.js';
import { fromGraph, governTools } from '../../src/adapters/langgraph/index.js';
import { expectValidEvents, expectValidReport, flush, settlesAtOnce } from '../helpers.js';
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

  it('refuses a tool that was built into the graph without governTools, before its body runs', async () => {
    const bodies = { count: 0 };
    const model = new ScriptedChatModel(searchThenAnswer);
    const graph = createReactAgent({ llm: model, tools: [searchTool(bodies)] });
    const report = await new Orchestrator().run({ agent: fromGraph(graph), task: 't' });
    expect(bodies.count).toBe(0);
    expect(report.status).toBe('FAILED');
    expect(report.error).toMatchObject({ code: 'OAO_ERR_INVALID_AGENT' });
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
    expect(() => fromGraph(graph, { ungovernedTools: 'ignore' as never })).toThrow(/ungovernedTools/);
  });
});
