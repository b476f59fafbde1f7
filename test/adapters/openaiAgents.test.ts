import { Agent, handoff, tool } from '@openai/agents';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { z } from 'zod';
import { Orchestrator, createMemoryStore } from '../../src/index.js';
import { fromOpenAIAgent } from '../../src/adapters/openai-agents/index.js';
import { ScriptedOpenAIModel } from '../../examples/support/scriptedOpenAIModel.js';
import { deferred, expectValidEvents, expectValidReport, settlesAtOnce } from '../helpers.js';
import { asyncStore, recording } from './fixtures.js';

const TEST_TIMEOUT_MS = 15_000;
const runConfig = { tracingDisabled: true };

function searchTool() {
  const seen = { runs: 0, signals: [] as (AbortSignal | undefined)[] };
  const search = tool({
    name: 'search',
    description: 'Searches the web',
    parameters: z.object({ q: z.string() }),
    execute: async ({ q }, _context, details) => {
      seen.runs += 1;
      seen.signals.push(details?.signal);
      return `3 results for "${q}"`;
    },
  });
  return { search, seen };
}

function hangingTool() {
  const started = deferred();
  const seen = { aborted: false, reason: undefined as unknown, started: started.promise };
  const crawl = tool({
    name: 'crawl',
    description: 'Crawls until it is stopped',
    parameters: z.object({ site: z.string() }),
    execute: (_input, _context, details) =>
      new Promise<string>((_resolve, reject) => {
        const signal = details?.signal;
        signal?.addEventListener(
          'abort',
          () => {
            seen.aborted = true;
            seen.reason = signal.reason;
            reject(signal.reason as Error);
          },
          { once: true },
        );
        started.resolve();
      }),
  });
  return { crawl, seen };
}

const searchTurn = { calls: [{ name: 'search', args: { q: 'oao' } }], tokens: [20, 5] as [number, number] };

describe('fromOpenAIAgent: an Agent run as a governed agent', () => {
  it('each model call is one step; tokens, model calls and tool calls are recorded', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = new ScriptedOpenAIModel([searchTurn, { text: 'OAO governs agents.', tokens: [40, 8] }]);
    const { search, seen } = searchTool();
    const agent = new Agent({ name: 'researcher', instructions: 'Be brief.', model, tools: [search] });
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromOpenAIAgent(agent, { runConfig }), task: 'What is OAO?' });
    expectValidReport(report);
    expectValidEvents(events);
    expect(report.status).toBe('SUCCESS');
    expect(report.agentName).toBe('researcher');
    expect(report.finalOutput).toBe('OAO governs agents.');
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage).toEqual({ input: 60, output: 13, total: 73 });
    expect(report.toolUsage).toEqual({ total: 1, byTool: { search: 1 } });
    expect(seen.runs).toBe(1);
    expect(seen.signals[0]).toBeInstanceOf(AbortSignal);
    expect(model.requests).toHaveLength(2);
    const types = events.filter((e) => ['MODEL_CALL', 'MODEL_RESULT', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_START'].includes(e.type)).map((e) => e.type);
    expect(types).toEqual(['STEP_START', 'MODEL_CALL', 'MODEL_RESULT', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_START', 'MODEL_CALL', 'MODEL_RESULT']);
    expect(events.find((e) => e.type === 'MODEL_CALL')?.payload).toMatchObject({ model: 'scripted-gpt', input: { system: 'Be brief.', input: [{ role: 'user', content: 'What is OAO?' }] } });
  });

  it('a handoff counts as a step: maxSteps can stop the conversation before the next agent answers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const billingModel = new ScriptedOpenAIModel([{ text: 'Refund issued.', tokens: [30, 4] }]);
    const billing = new Agent({ name: 'billing', instructions: 'Handle billing.', model: billingModel });
    const triageModel = new ScriptedOpenAIModel([{ calls: [{ name: 'transfer_to_billing' }], tokens: [10, 2] }]);
    const triage = new Agent({ name: 'triage', instructions: 'Route.', model: triageModel, handoffs: [billing] });
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromOpenAIAgent(triage, { runConfig }), task: 'I was charged twice' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('Refund issued.');
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage.total).toBe(46);
    expect(events.filter((e) => e.type === 'MODEL_CALL').map((e) => [e.payload.step, (e.payload.input as { system: string }).system])).toEqual([
      [1, 'Route.'],
      [2, 'Handle billing.'],
    ]);

    const stopped = await new Orchestrator({ policy: { maxSteps: 1 } }).run({ agent: fromOpenAIAgent(triage, { runConfig }), task: 'again' });
    expect(stopped.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(billingModel.requests).toHaveLength(1);
  });

  it('a Handoff object (handoff()) hands off to a governed copy: its tools are governed too', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { search, seen } = searchTool();
    const helper = new Agent({ name: 'helper', model: new ScriptedOpenAIModel([searchTurn, { text: 'found', tokens: [1, 1] }]), tools: [search] });
    const front = new Agent({ name: 'front', model: new ScriptedOpenAIModel([{ calls: [{ name: 'transfer_to_helper' }], tokens: [1, 1] }]), handoffs: [handoff(helper)] });
    const agent = fromOpenAIAgent(front, { runConfig });
    expect(Object.keys(agent.tools)).toEqual(['search']);
    const report = await new Orchestrator({ policy: { tools: { deny: ['search'] } } }).run({ agent, task: 'q' });
    expect(report.termination).toMatchObject({ rule: 'tool_denied' });
    expect(seen.runs).toBe(0);
  });

  it('maxSteps stops a model that keeps calling tools before its next call', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = new ScriptedOpenAIModel([searchTurn]);
    const { search, seen } = searchTool();
    const agent = new Agent({ name: 'looper', model, tools: [search] });
    const report = await new Orchestrator({ policy: { maxSteps: 3, maxToolCalls: 10 } }).run({ agent: fromOpenAIAgent(agent, { runConfig }), task: 'loop' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(3);
    expect(model.requests).toHaveLength(3);
    expect(seen.runs).toBe(3);
  });

  it('maxToolCalls: the call past the limit never runs its body', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { search, seen } = searchTool();
    const agent = new Agent({ name: 'looper', model: new ScriptedOpenAIModel([searchTurn]), tools: [search] });
    const report = await new Orchestrator({ policy: { maxToolCalls: 2 } }).run({ agent: fromOpenAIAgent(agent, { runConfig }), task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(seen.runs).toBe(2);
  });

  it('a denied tool never runs, and the run ends', { timeout: TEST_TIMEOUT_MS }, async () => {
    let shellRuns = 0;
    const shell = tool({
      name: 'shell',
      description: 'Runs a command',
      parameters: z.object({ cmd: z.string() }),
      execute: async ({ cmd }) => {
        shellRuns += 1;
        return cmd;
      },
    });
    const model = new ScriptedOpenAIModel([{ calls: [{ name: 'shell', args: { cmd: 'rm -rf /' } }], tokens: [5, 5] }, { text: 'done', tokens: [1, 1] }]);
    const orch = new Orchestrator({ policy: { tools: { deny: ['shell'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromOpenAIAgent(new Agent({ name: 'ops', model, tools: [shell] }), { runConfig }), task: 'clean up' });
    expect(shellRuns).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool: 'shell', args: { cmd: 'rm -rf /' } });
    expect(model.requests).toHaveLength(1);
  });

  it('a per-tool timeout aborts the tool; the model gets the error and the run goes on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const clock = new SimulatedClock();
    const { crawl, seen } = hangingTool();
    const model = new ScriptedOpenAIModel([{ calls: [{ name: 'crawl', args: { site: 'example.com' } }], tokens: [10, 5] }, { text: 'The crawl timed out.', tokens: [10, 5] }]);
    const agent = fromOpenAIAgent(new Agent({ name: 'crawler', model, tools: [crawl] }), { runConfig, toolTimeoutMs: { crawl: 2_000 }, clock });
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
    expect(JSON.stringify(model.requests[1]?.input)).toContain('did not finish within 2000 ms');
  });

  it('token budget: refused before the model runs when its reservation does not fit; usage crossing it stops that turn’s tools', { timeout: TEST_TIMEOUT_MS }, async () => {
    const spent = new ScriptedOpenAIModel([searchTurn]);
    const { search, seen } = searchTool();
    const refused = await new Orchestrator({ policy: { maxTokens: 200, maxToolCalls: 10, reserveOutputTokens: 50 } }).run({
      agent: fromOpenAIAgent(new Agent({ name: 'a', model: spent, tools: [search] }), { runConfig }),
      task: 't',
    });
    expect(refused.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(refused.termination.message).toMatch(/Model call refused/);
    expect(refused.tokenUsage.total).toBeLessThanOrEqual(200);
    expect(spent.requests.length).toBeGreaterThanOrEqual(1);
    expect(seen.runs).toBe(spent.requests.length);

    const runsBefore = seen.runs;
    const crossing = new ScriptedOpenAIModel([{ ...searchTurn, tokens: [5, 80] as [number, number] }]);
    const crossed = await new Orchestrator({ policy: { maxTokens: 60, maxToolCalls: 10, reserveOutputTokens: 0 } }).run({
      agent: fromOpenAIAgent(new Agent({ name: 'a', model: crossing, tools: [search] }), { runConfig }),
      task: 't',
    });
    expect(crossed.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(crossed.tokenUsage.total).toBe(85);
    expect(seen.runs).toBe(runsBefore); // the turn crossed the budget: its tool call never ran
  });

  it('cancelling while a tool runs aborts it through its signal and ends the run at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { crawl, seen } = hangingTool();
    const model = new ScriptedOpenAIModel([{ calls: [{ name: 'crawl', args: { site: 'a' } }], tokens: [1, 1] }]);
    const handle = new Orchestrator().start({ agent: fromOpenAIAgent(new Agent({ name: 'c', model, tools: [crawl] }), { runConfig }), task: 't' });
    await seen.started;
    handle.cancel('stop crawling');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    expect((await handle.report).termination).toEqual({ reason: 'cancelled', message: 'stop crawling' });
    expect(seen.aborted).toBe(true);
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_CANCELLED' });
  });

  it('streamed runs are metered and governed the same way', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = new ScriptedOpenAIModel([searchTurn, { text: 'Streamed.', tokens: [30, 6] }]);
    const { search, seen } = searchTool();
    const report = await new Orchestrator().run({ agent: fromOpenAIAgent(new Agent({ name: 's', model, tools: [search] }), { runConfig, stream: true }), task: 'q' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('Streamed.');
    expect(report.tokenUsage).toEqual({ input: 50, output: 11, total: 61 });
    expect(report.totalSteps).toBe(2);
    expect(seen.runs).toBe(1);
    const denied = await new Orchestrator({ policy: { tools: { deny: ['search'] } } }).run({
      agent: fromOpenAIAgent(new Agent({ name: 's', model: new ScriptedOpenAIModel([searchTurn]), tools: [search] }), { runConfig, stream: true }),
      task: 'q',
    });
    expect(denied.termination).toMatchObject({ rule: 'tool_denied' });
    expect(seen.runs).toBe(1);
  });

  it('string model names resolve through the given provider, and those models are governed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const model = new ScriptedOpenAIModel([{ text: 'from the provider', tokens: [3, 3] }], 'gpt-test');
    const names: (string | undefined)[] = [];
    const modelProvider = {
      getModel: (name?: string) => {
        names.push(name);
        return model;
      },
    };
    const report = await new Orchestrator().run({ agent: fromOpenAIAgent(new Agent({ name: 'p', model: 'gpt-test' }), { runConfig, modelProvider }), task: 'q' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'from the provider', tokenUsage: { total: 6 } });
    expect(names).toEqual(['gpt-test']);
    const refused = await new Orchestrator({ policy: { maxTokens: 0 } }).run({ agent: fromOpenAIAgent(new Agent({ name: 'p', model: 'gpt-test' }), { runConfig, modelProvider }), task: 'q' });
    expect(refused.termination).toMatchObject({ rule: 'max_tokens' });
    expect(model.requests).toHaveLength(1);
  });

  it('verify-replay serves model and tool results from the log: zero model calls, zero tool bodies', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const stream of [false, true]) {
      const model = new ScriptedOpenAIModel([searchTurn, { text: 'Recorded.', tokens: [4, 2] }]);
      const { search, seen } = searchTool();
      const agent = fromOpenAIAgent(new Agent({ name: 'r', model, tools: [search] }), { runConfig, stream });
      const orch = new Orchestrator({ store: createMemoryStore() });
      const report = await orch.run({ agent, task: 'q' });
      expect(report.status).toBe('SUCCESS');
      const replayed = await orch.replay(report.executionId, { agent, verify: true });
      expect(replayed.finalOutput).toBe('Recorded.');
      expect(model.requests).toHaveLength(2);
      expect(seen.runs).toBe(1);
    }
  });

  it('writes ahead: with an asynchronous store the model is called once its MODEL_CALL is durable', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const stream of [false, true]) {
      const store = asyncStore(createMemoryStore());
      const executionId = randomUUID();
      const model = new ScriptedOpenAIModel([{ text: 'durable', tokens: [2, 2] }]);
      const seen: string[][] = [];
      const respond = model.getResponse.bind(model);
      const respondStreamed = model.getStreamedResponse.bind(model);
      model.getResponse = (request) => {
        seen.push(store.durable(executionId).map((e) => e.type));
        return respond(request);
      };
      model.getStreamedResponse = (request) => {
        seen.push(store.durable(executionId).map((e) => e.type));
        return respondStreamed(request);
      };
      const agent = fromOpenAIAgent(new Agent({ name: 'w', model }), { runConfig, stream });
      const report = await new Orchestrator({ store }).run({ executionId, agent, task: 'q' });
      expect(report.status).toBe('SUCCESS');
      expect(seen).toHaveLength(1);
      expect(seen[0]?.at(-1)).toBe('MODEL_CALL');
    }
  });

  it('rejects what it cannot govern with typed errors', () => {
    const agent = new Agent({ name: 'x', model: new ScriptedOpenAIModel([{ text: 'x', tokens: [1, 1] }]) });
    expect(() => fromOpenAIAgent({ name: 'fake' } as never)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'agent' } }));
    expect(() => fromOpenAIAgent(agent, { steps: 'turn' as never })).toThrow(expect.objectContaining({ details: { field: 'steps' } }));
    expect(() => fromOpenAIAgent(agent, { toolTimeoutMs: 1.5 })).toThrow(expect.objectContaining({ details: { field: 'toolTimeoutMs' } }));
    expect(() => fromOpenAIAgent(agent, { modelProvider: {} as never })).toThrow(expect.objectContaining({ details: { field: 'modelProvider' } }));
  });
});
