import { generateText, stepCountIs, tool, ToolLoopAgent } from 'ai';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { z } from 'zod';
import { Orchestrator, createMemoryStore, type AgentContext } from '../../src/index.js';
import { fromAiSdk, governedModel } from '../../src/adapters/ai-sdk/index.js';
import { scriptedAiSdkModel } from '../../examples/support/scriptedAiSdkModel.js';
import { deferred, expectValidEvents, expectValidReport, settlesAtOnce } from '../helpers.js';
import { asyncStore, recording } from './fixtures.js';

const TEST_TIMEOUT_MS = 15_000;

/** An AI SDK tool whose body counts its runs and keeps what the SDK passed it. */
function searchTool() {
  const seen = { runs: 0, signals: [] as AbortSignal[], toolCallIds: [] as string[] };
  const search = tool({
    description: 'Searches the web',
    inputSchema: z.object({ q: z.string() }),
    execute: async ({ q }, { abortSignal, toolCallId }) => {
      seen.runs += 1;
      if (abortSignal !== undefined) seen.signals.push(abortSignal);
      seen.toolCallIds.push(toolCallId);
      return `3 results for "${q}"`;
    },
  });
  return { search, seen };
}

/** A tool that never answers on its own: only its abortSignal ends it. */
function hangingTool() {
  const started = deferred();
  const seen = { aborted: false, reason: undefined as unknown, started: started.promise };
  const crawl = tool({
    description: 'Crawls until it is stopped',
    inputSchema: z.object({ site: z.string() }),
    execute: (_input, { abortSignal }) =>
      new Promise<string>((_resolve, reject) => {
        abortSignal?.addEventListener(
          'abort',
          () => {
            seen.aborted = true;
            seen.reason = abortSignal.reason;
            reject(abortSignal.reason as Error);
          },
          { once: true },
        );
        started.resolve();
      }),
  });
  return { crawl, seen };
}

const searchTurn = { toolCalls: [{ name: 'search', args: { q: 'oao' } }], tokens: [20, 5] as [number, number] };

describe('fromAiSdk: generateText settings as a governed agent', () => {
  it('each model call is one step; tokens, model calls and tool calls are recorded', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn, { text: 'OAO governs agents.', tokens: [40, 8] }]);
    const { search, seen } = searchTool();
    const agent = fromAiSdk({ model, tools: { search }, system: 'Be brief.', stopWhen: stepCountIs(5) });
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent, task: 'What is OAO?' });
    expectValidReport(report);
    expectValidEvents(events);
    expect(report.status).toBe('SUCCESS');
    expect(report.agentName).toBe('scripted-model');
    expect(report.finalOutput).toBe('OAO governs agents.');
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage).toEqual({ input: 60, output: 13, total: 73 });
    expect(report.toolUsage).toEqual({ total: 1, byTool: { search: 1 } });
    expect(seen.runs).toBe(1);
    expect(seen.toolCallIds).toEqual(['call_1_0']);
    expect(model.doGenerateCalls).toHaveLength(2);
    const types = events.filter((e) => ['MODEL_CALL', 'MODEL_RESULT', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_START'].includes(e.type)).map((e) => e.type);
    expect(types).toEqual(['STEP_START', 'MODEL_CALL', 'MODEL_RESULT', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_START', 'MODEL_CALL', 'MODEL_RESULT']);
    expect(events.find((e) => e.type === 'MODEL_CALL')?.payload).toMatchObject({ model: 'scripted-model', input: [{ role: 'system', content: 'Be brief.' }, { role: 'user' }] });
    expect(events.find((e) => e.type === 'TOOL_CALL')?.payload).toMatchObject({ step: 1, tool: 'search', args: { q: 'oao' } });
  });

  it('maxSteps stops a model that keeps calling tools before its next call', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn]);
    const { search, seen } = searchTool();
    const agent = fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(50) });
    const report = await new Orchestrator({ policy: { maxSteps: 3, maxToolCalls: 10 } }).run({ agent, task: 'loop' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(3);
    expect(model.doGenerateCalls).toHaveLength(3);
    expect(seen.runs).toBe(3);
  });

  it('maxToolCalls: the call past the limit never runs its body', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn]);
    const { search, seen } = searchTool();
    const agent = fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(50) });
    const report = await new Orchestrator({ policy: { maxToolCalls: 2 } }).run({ agent, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(seen.runs).toBe(2);
    expect(report.toolUsage.total).toBe(2);
  });

  it('a denied tool never runs, and the run ends although the SDK would hand the error to the model', { timeout: TEST_TIMEOUT_MS }, async () => {
    let shellRuns = 0;
    const shell = tool({
      description: 'Runs a command',
      inputSchema: z.object({ cmd: z.string() }),
      execute: async ({ cmd }) => {
        shellRuns += 1;
        return cmd;
      },
    });
    const model = scriptedAiSdkModel([{ toolCalls: [{ name: 'shell', args: { cmd: 'rm -rf /' } }], tokens: [5, 5] }, { text: 'done', tokens: [5, 5] }]);
    const orch = new Orchestrator({ policy: { tools: { deny: ['shell'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromAiSdk({ model, tools: { shell }, stopWhen: stepCountIs(5) }), task: 'clean up' });
    expect(shellRuns).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool: 'shell', args: { cmd: 'rm -rf /' } });
    expect(model.doGenerateCalls).toHaveLength(1);
  });

  it('a per-tool timeout aborts the tool; the model gets the error and the run goes on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const clock = new SimulatedClock();
    const { crawl, seen } = hangingTool();
    const model = scriptedAiSdkModel([
      { toolCalls: [{ name: 'crawl', args: { site: 'example.com' } }], tokens: [10, 5] },
      { text: 'The crawl timed out.', tokens: [10, 5] },
    ]);
    const agent = fromAiSdk({ model, tools: { crawl }, stopWhen: stepCountIs(5) }, { toolTimeoutMs: { crawl: 2_000 }, clock });
    const handle = new Orchestrator({ clock }).start({ agent, task: 't' });
    await seen.started;
    clock.increment(1_999);
    expect(seen.aborted).toBe(false);
    clock.increment(1);
    const report = await handle.report;
    expect(seen.aborted).toBe(true);
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_TOOL_TIMEOUT', details: { tool: 'crawl', timeoutMs: 2_000 } });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('The crawl timed out.');
    const secondPrompt = JSON.stringify(model.doGenerateCalls[1]?.prompt);
    expect(secondPrompt).toContain('did not finish within 2000 ms');
  });

  it('token budget: a call whose reservation does not fit is refused before the model runs', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn]);
    const { search, seen } = searchTool();
    const agent = fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(50) });
    const report = await new Orchestrator({ policy: { maxTokens: 200, maxToolCalls: 10, reserveOutputTokens: 50 } }).run({ agent, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.termination.message).toMatch(/Model call refused/);
    // Never above the limit, and every call that was sent had its tool run.
    expect(report.tokenUsage.total).toBeLessThanOrEqual(200);
    expect(model.doGenerateCalls.length).toBeGreaterThanOrEqual(1);
    expect(seen.runs).toBe(model.doGenerateCalls.length);
  });

  it('token budget: usage crossing it (a model that answers past its reservation) ends the run; that turn’s tool calls never run', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([{ ...searchTurn, tokens: [5, 80] as [number, number] }]);
    const { search, seen } = searchTool();
    const agent = fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(50) });
    const report = await new Orchestrator({ policy: { maxTokens: 60, maxToolCalls: 10, reserveOutputTokens: 0 } }).run({ agent, task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(85);
    expect(model.doGenerateCalls).toHaveLength(1);
    expect(seen.runs).toBe(0);
  });

  it('cancelling while a tool runs aborts it through its abortSignal and ends the run at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { crawl, seen } = hangingTool();
    const model = scriptedAiSdkModel([{ toolCalls: [{ name: 'crawl', args: { site: 'a' } }], tokens: [1, 1] }]);
    const handle = new Orchestrator().start({ agent: fromAiSdk({ model, tools: { crawl } }), task: 't' });
    await seen.started;
    handle.cancel('stop crawling');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    expect((await handle.report).termination).toEqual({ reason: 'cancelled', message: 'stop crawling' });
    expect(seen.aborted).toBe(true);
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_CANCELLED' });
  });

  it("steps: 'run' runs the SDK's whole loop in one step, every call still governed", { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn, searchTurn, { text: 'enough', tokens: [3, 2] }]);
    const { search } = searchTool();
    const agent = fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(10) }, { steps: 'run' });
    const report = await new Orchestrator({ policy: { maxSteps: 1 } }).run({ agent, task: 't' });
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(1);
    expect(report.tokenUsage.total).toBe(55);
    expect(report.toolUsage.total).toBe(2);
  });
});

describe('fromAiSdk: streamText and the ToolLoopAgent', () => {
  it('streamText: a streamed response is metered when its stream ends', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn, { text: 'Streamed answer.', tokens: [30, 6] }]);
    const { search, seen } = searchTool();
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(5) }, { stream: true }), task: 'q' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('Streamed answer.');
    expect(report.tokenUsage).toEqual({ input: 50, output: 11, total: 61 });
    expect(report.totalSteps).toBe(2);
    expect(seen.runs).toBe(1);
    expect(model.doStreamCalls).toHaveLength(2);
    expect(events.filter((e) => e.type === 'MODEL_RESULT').at(-1)?.payload).toMatchObject({ ok: true, output: { content: [{ type: 'text', text: 'Streamed answer.' }] } });
  });

  it('streamText: maxSteps and a denied tool hold as for generateText', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn]);
    const { search, seen } = searchTool();
    const looping = await new Orchestrator({ policy: { maxSteps: 2 } }).run({ agent: fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(9) }, { stream: true }), task: 'q' });
    expect(looping.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(model.doStreamCalls).toHaveLength(2);
    const denied = await new Orchestrator({ policy: { tools: { deny: ['search'] } } }).run({
      agent: fromAiSdk({ model: scriptedAiSdkModel([searchTurn]), tools: { search } }, { stream: true }),
      task: 'q',
    });
    expect(denied.termination).toMatchObject({ rule: 'tool_denied' });
    expect(seen.runs).toBe(2);
  });

  it('governs a ToolLoopAgent: its instructions and stop condition kept, its model and tools wrapped', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([searchTurn, { text: 'From the agent.', tokens: [10, 4] }]);
    const { search, seen } = searchTool();
    const sdkAgent = new ToolLoopAgent({ id: 'researcher', model, instructions: 'You research.', tools: { search }, stopWhen: stepCountIs(4) });
    const orch = new Orchestrator({ policy: { maxTokens: 10_000 } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromAiSdk(sdkAgent), task: 'Find OAO' });
    expect(report.status).toBe('SUCCESS');
    expect(report.agentName).toBe('researcher');
    expect(report.finalOutput).toBe('From the agent.');
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage.total).toBe(39);
    expect(seen.runs).toBe(1);
    expect(events.find((e) => e.type === 'MODEL_CALL')?.payload).toMatchObject({ input: [{ role: 'system', content: 'You research.' }, { role: 'user' }] });

    const again = new ToolLoopAgent({ model: scriptedAiSdkModel([searchTurn]), tools: { search }, stopWhen: stepCountIs(4) });
    const denied = await new Orchestrator({ policy: { tools: { deny: ['search'] } } }).run({ agent: fromAiSdk(again, { stream: true }), task: 'Find OAO' });
    expect(denied.termination).toMatchObject({ rule: 'tool_denied' });
    expect(seen.runs).toBe(1);
  });

  it('a ToolLoopAgent that cancels: the run signal reaches its running tool', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { crawl, seen } = hangingTool();
    const model = scriptedAiSdkModel([{ toolCalls: [{ name: 'crawl', args: { site: 'a' } }], tokens: [1, 1] }]);
    const handle = new Orchestrator().start({ agent: fromAiSdk(new ToolLoopAgent({ model, tools: { crawl } })), task: 't' });
    await seen.started;
    handle.cancel('bye');
    expect((await handle.report).termination.reason).toBe('cancelled');
    expect(seen.aborted).toBe(true);
  });

  it('verify-replay serves model and tool results from the log: zero model calls, zero tool bodies', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const stream of [false, true]) {
      const model = scriptedAiSdkModel([searchTurn, { text: 'Recorded.', tokens: [4, 2] }]);
      const { search, seen } = searchTool();
      const agent = fromAiSdk({ model, tools: { search }, stopWhen: stepCountIs(5) }, { stream });
      const orch = new Orchestrator({ store: createMemoryStore() });
      const report = await orch.run({ agent, task: 'q' });
      expect(report.status).toBe('SUCCESS');
      const calls = stream ? model.doStreamCalls.length : model.doGenerateCalls.length;
      const replayed = await orch.replay(report.executionId, { agent, verify: true });
      expect(replayed.finalOutput).toBe('Recorded.');
      expect(stream ? model.doStreamCalls.length : model.doGenerateCalls.length).toBe(calls);
      expect(seen.runs).toBe(1);
    }
  });

  it('writes ahead: with an asynchronous store the model is called once its MODEL_CALL is durable', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const stream of [false, true]) {
      const store = asyncStore(createMemoryStore());
      const executionId = randomUUID();
      const model = scriptedAiSdkModel([{ text: 'durable', tokens: [2, 2] }]);
      const seen: string[][] = [];
      const generate = model.doGenerate;
      const streamed = model.doStream;
      model.doGenerate = (options) => {
        seen.push(store.durable(executionId).map((e) => e.type));
        return generate(options);
      };
      model.doStream = (options) => {
        seen.push(store.durable(executionId).map((e) => e.type));
        return streamed(options);
      };
      const report = await new Orchestrator({ store }).run({ executionId, agent: fromAiSdk({ model }, { stream }), task: 'q' });
      expect(report.status).toBe('SUCCESS');
      expect(seen).toHaveLength(1);
      expect(seen[0]?.at(-1)).toBe('MODEL_CALL');
    }
  });

  it('governedModel meters the calls of an agent that uses the SDK itself', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = scriptedAiSdkModel([{ text: '42', tokens: [7, 1] }]);
    const agent = {
      async invoke(question: string, ctx: AgentContext) {
        const { text } = await generateText({ model: governedModel(model, ctx), prompt: question, abortSignal: ctx.signal });
        return text;
      },
    };
    const report = await new Orchestrator().run({ agent, task: 'What is 6 times 7?' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: '42', tokenUsage: { total: 8 } });
    const refused = await new Orchestrator({ policy: { maxTokens: 0 } }).run({ agent, task: 'again' });
    expect(refused.termination).toMatchObject({ rule: 'max_tokens' });
    expect(model.doGenerateCalls).toHaveLength(1);
  });

  it('rejects what it cannot govern with typed errors', () => {
    const model = scriptedAiSdkModel([{ text: 'x', tokens: [1, 1] }]);
    expect(() => fromAiSdk({ model: 'openai/gpt-4o' })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'model' } }));
    expect(() => fromAiSdk({ model }, { steps: 'turn' as never })).toThrow(expect.objectContaining({ details: { field: 'steps' } }));
    expect(() => fromAiSdk({ model }, { toolTimeoutMs: { search: -1 } })).toThrow(expect.objectContaining({ details: { field: 'toolTimeoutMs.search' } }));
    expect(() => fromAiSdk({ model }, { stream: 'yes' as never })).toThrow(expect.objectContaining({ details: { field: 'stream' } }));
    expect(() => fromAiSdk(null as never)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
  });
});
