import { MockLLM } from '@llamaindex/core/llms/mock';
import { tool } from '@llamaindex/core/tools';
import { agent, multiAgent } from '@llamaindex/workflow';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { z } from 'zod';
import { Orchestrator, createMemoryStore } from '../../src/index.js';
import { callSignal, fromLlamaIndex } from '../../src/adapters/llamaindex/index.js';
import { ScriptedLlamaIndexLLM, type LlamaIndexTurn } from '../../examples/support/scriptedLlamaIndexLLM.js';
import { deferred, expectValidEvents, expectValidReport, settlesAtOnce } from '../helpers.js';
import { asyncStore, recording } from './fixtures.js';

const TEST_TIMEOUT_MS = 15_000;

function searchTool() {
  const seen = { runs: 0, signals: [] as (AbortSignal | undefined)[] };
  const search = tool({
    name: 'search',
    description: 'Searches the web',
    parameters: z.object({ q: z.string() }),
    execute: async ({ q }) => {
      seen.runs += 1;
      seen.signals.push(callSignal());
      return `3 results for "${q}"`;
    },
  });
  return { search, seen };
}

/** A tool that only its call's signal can end. */
function hangingTool() {
  const started = deferred();
  const seen = { aborted: false, reason: undefined as unknown, started: started.promise };
  const crawl = tool({
    name: 'crawl',
    description: 'Crawls until it is stopped',
    parameters: z.object({ site: z.string() }),
    execute: () =>
      new Promise<string>((_resolve, reject) => {
        const signal = callSignal();
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

const searchTurn: LlamaIndexTurn = { calls: [{ name: 'search', args: { q: 'oao' } }], tokens: [20, 5] };

function toolCallingMock(name: string, args: Record<string, unknown>) {
  return new MockLLM({ timeBetweenToken: 0, mockToolCallResponse: { toolCalls: [{ id: 'call_1', name, input: args as never }] } });
}

describe('fromLlamaIndex: a LlamaIndex.TS agent workflow run as a governed agent', () => {
  it('each LLM call is one step; tokens, model calls and tool calls are recorded', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([searchTurn, { text: 'OAO governs agents.', tokens: [40, 8] }]);
    const { search, seen } = searchTool();
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromLlamaIndex(agent({ name: 'researcher', llm, tools: [search], systemPrompt: 'Be brief.' })), task: 'What is OAO?' });
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
    expect(llm.requests).toHaveLength(2);
    expect(llm.requests[0]?.signal).toBeInstanceOf(AbortSignal);
    const types = events.filter((e) => ['MODEL_CALL', 'MODEL_RESULT', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_START'].includes(e.type)).map((e) => e.type);
    expect(types).toEqual(['STEP_START', 'MODEL_CALL', 'MODEL_RESULT', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_START', 'MODEL_CALL', 'MODEL_RESULT']);
    expect(events.find((e) => e.type === 'MODEL_CALL')?.payload).toMatchObject({
      model: 'scripted-llm',
      input: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is OAO?' },
      ],
    });
    expect(events.find((e) => e.type === 'MODEL_RESULT')?.payload).toMatchObject({
      usage: { input: 20, output: 5, total: 25 },
      output: { message: { role: 'assistant', options: { toolCall: [{ name: 'search', input: { q: 'oao' } }] } } },
    });
  });

  it('a handoff counts as a step: maxSteps can stop the workflow before the next agent answers', { timeout: TEST_TIMEOUT_MS }, async () => {
    const billingLlm = new ScriptedLlamaIndexLLM([{ text: 'Refund issued.', tokens: [30, 4] }]);
    const triageLlm = new ScriptedLlamaIndexLLM([{ calls: [{ name: 'handOff', args: { toAgent: 'billing', reason: 'a charge' } }], tokens: [10, 2] }]);
    const build = () => {
      const billing = agent({ name: 'billing', description: 'Handles billing', llm: billingLlm, systemPrompt: 'Handle billing.' });
      const triage = agent({ name: 'triage', description: 'Routes', llm: triageLlm, systemPrompt: 'Route.', canHandoffTo: ['billing'] });
      return multiAgent({ agents: [triage, billing], rootAgent: triage });
    };
    const orch = new Orchestrator();
    const events = recording(orch);
    const governed = fromLlamaIndex(build());
    expect(governed.name).toBe('triage');
    expect(Object.keys(governed.tools)).toEqual([]);
    const report = await orch.run({ agent: governed, task: 'I was charged twice' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('Refund issued.');
    expect(report.totalSteps).toBe(2);
    expect(report.tokenUsage.total).toBe(46);
    expect(events.filter((e) => e.type === 'MODEL_CALL').map((e) => [e.payload.step, (e.payload.input as { content: string }[])[0]?.content])).toEqual([
      [1, 'Route.'],
      [2, 'Handle billing.'],
    ]);

    const stopped = await new Orchestrator({ policy: { maxSteps: 1 } }).run({ agent: fromLlamaIndex(build()), task: 'again' });
    expect(stopped.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(billingLlm.requests).toHaveLength(1);
  });

  it('a model call whose reservation does not fit is refused before the LLM is asked (MODEL_CALL_DENIED, max_tokens)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([{ text: 'never sent', tokens: [1, 1] }], { maxTokens: 500 });
    const orch = new Orchestrator({ policy: { maxTokens: 300 } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromLlamaIndex(agent({ llm })), task: 'Summarise the news' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.termination.message).toMatch(/Model call refused/);
    expect(llm.requests).toHaveLength(0);
    const denied = events.find((e) => e.type === 'MODEL_CALL_DENIED');
    expect(denied?.payload).toMatchObject({ model: 'scripted-llm', rule: 'max_tokens', reserved: { output: 500 } });
    expect(events.some((e) => e.type === 'MODEL_CALL')).toBe(false);
  });

  it('usage crossing the budget ends the run before that turn’s tools run', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([{ ...searchTurn, tokens: [5, 80] }]);
    const { search, seen } = searchTool();
    const report = await new Orchestrator({ policy: { maxTokens: 60, reserveOutputTokens: 0 } }).run({ agent: fromLlamaIndex(agent({ llm, tools: [search] })), task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(85);
    expect(seen.runs).toBe(0);
  });

  it('maxToolCalls: the call past the limit never runs its body (LlamaIndex’s MockLLM calls the tool every turn)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { search, seen } = searchTool();
    const llm = toolCallingMock('search', { q: 'again' });
    const report = await new Orchestrator({ policy: { maxToolCalls: 2, maxTokens: 100_000 } }).run({ agent: fromLlamaIndex(agent({ llm, tools: [search] })), task: 't' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tool_calls' });
    expect(seen.runs).toBe(2);
    expect(report.toolUsage.total).toBe(2);
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
    const llm = new ScriptedLlamaIndexLLM([{ calls: [{ name: 'shell', args: { cmd: 'rm -rf /' } }], tokens: [5, 5] }, { text: 'done', tokens: [1, 1] }]);
    const orch = new Orchestrator({ policy: { tools: { deny: ['shell'] } } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromLlamaIndex(agent({ name: 'ops', llm, tools: [shell] })), task: 'clean up' });
    expect(shellRuns).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
    expect(events.find((e) => e.type === 'TOOL_DENIED')?.payload).toMatchObject({ tool: 'shell', args: { cmd: 'rm -rf /' } });
    expect(llm.requests).toHaveLength(1);
  });

  it('a per-tool timeout aborts the tool through its signal; the model gets the error and the run goes on', { timeout: TEST_TIMEOUT_MS }, async () => {
    const clock = new SimulatedClock();
    const { crawl, seen } = hangingTool();
    const llm = new ScriptedLlamaIndexLLM([{ calls: [{ name: 'crawl', args: { site: 'example.com' } }], tokens: [10, 5] }, { text: 'The crawl timed out.', tokens: [10, 5] }]);
    const governed = fromLlamaIndex(agent({ name: 'crawler', llm, tools: [crawl] }), { toolTimeoutMs: { crawl: 2_000 }, clock });
    const handle = new Orchestrator({ clock }).start({ agent: governed, task: 't' });
    await seen.started;
    clock.increment(1_999);
    expect(seen.aborted).toBe(false);
    clock.increment(1);
    const report = await handle.report;
    expect(seen.aborted).toBe(true);
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_TOOL_TIMEOUT', details: { tool: 'crawl', timeoutMs: 2_000 } });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('The crawl timed out.');
    expect(JSON.stringify(llm.requests[1]?.messages)).toContain('did not finish within 2000 ms');
  });

  it('cancelling the run aborts the LLM call in flight through its signal and ends the run at once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([{ text: 'too late', tokens: [1, 1] }]);
    const asked = deferred();
    const seen = { reason: undefined as unknown, sameSignal: false };
    // A provider request that only its signal ends.
    llm.chat = ((params: { signal?: AbortSignal }) =>
      new Promise((_resolve, reject) => {
        seen.sameSignal = params.signal === callSignal();
        params.signal?.addEventListener('abort', () => {
          seen.reason = params.signal?.reason;
          reject(params.signal?.reason as Error);
        });
        asked.resolve();
      })) as never;
    const handle = new Orchestrator().start({ agent: fromLlamaIndex(agent({ llm })), task: 't' });
    await asked.promise;
    handle.cancel('the user left');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    expect((await handle.report).termination).toEqual({ reason: 'cancelled', message: 'the user left' });
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_CANCELLED' });
    expect(seen.sameSignal).toBe(true);
  });

  it('cancelling while a tool runs aborts it through callSignal()', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { crawl, seen } = hangingTool();
    const llm = new ScriptedLlamaIndexLLM([{ calls: [{ name: 'crawl', args: { site: 'a' } }], tokens: [1, 1] }]);
    const handle = new Orchestrator().start({ agent: fromLlamaIndex(agent({ llm, tools: [crawl] })), task: 't' });
    await seen.started;
    handle.cancel('stop crawling');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    expect((await handle.report).termination).toEqual({ reason: 'cancelled', message: 'stop crawling' });
    expect(seen.aborted).toBe(true);
    expect(seen.reason).toMatchObject({ code: 'OAO_ERR_CANCELLED' });
  });

  it('a response with no usage (LlamaIndex’s MockLLM) is charged its whole reservation, flagged unmetered', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new MockLLM({ timeBetweenToken: 0, responseMessage: 'mocked' });
    const orch = new Orchestrator({ policy: { reserveOutputTokens: 200 } });
    const events = recording(orch);
    const report = await orch.run({ agent: fromLlamaIndex(agent({ llm })), task: 'Say something' });
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('mocked');
    const reserved = events.find((e) => e.type === 'MODEL_CALL')?.payload.reserved as { input: number; output: number };
    expect(reserved.output).toBe(200);
    const result = events.find((e) => e.type === 'MODEL_RESULT')?.payload;
    expect(result).toMatchObject({ unmetered: true, usage: { input: reserved.input, output: 200, total: reserved.input + 200 } });
    expect(report.tokenUsage.total).toBe(reserved.input + 200);
  });

  it('an LLM that throws fails the run with its error (the workflow would leave it pending)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([{ text: 'x', tokens: [1, 1] }]);
    llm.chat = (() => Promise.reject(new Error('provider unavailable'))) as never;
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromLlamaIndex(agent({ llm })), task: 't' });
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'error' });
    expect(report.error?.message).toContain('provider unavailable');
    expect(events.find((e) => e.type === 'MODEL_RESULT')?.payload).toMatchObject({ ok: false, error: { message: 'provider unavailable' } });
  });

  it('a tool call the agent cannot serve fails the run with the workflow’s error instead of hanging it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([{ calls: [{ name: 'teleport', args: {} }], tokens: [3, 3] }]);
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromLlamaIndex(agent({ llm })), task: 't' });
    expect(report.termination).toMatchObject({ reason: 'error' });
    expect(report.error?.message).toContain('Tools not found: teleport');
    // The response was read before the workflow failed on it: it is recorded and metered.
    expect(events.find((e) => e.type === 'MODEL_RESULT')?.payload).toMatchObject({ ok: true, usage: { total: 6 } });
    expect(report.tokenUsage.total).toBe(6);
  });

  it('responseFormat: the structured answer is one more governed (non-streamed) model call', { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([
      { text: 'It is 18 degrees.', tokens: [10, 4] },
      { calls: [{ name: 'format_output', args: { celsius: 18 } }], tokens: [12, 3] },
    ]);
    const governed = fromLlamaIndex(agent({ llm }), { responseFormat: z.object({ celsius: z.number() }) });
    const report = await new Orchestrator().run({ agent: governed, task: 'How warm is it?' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: { celsius: 18 }, totalSteps: 2, tokenUsage: { total: 29 } });
    expect(llm.requests.map((r) => r.stream)).toEqual([true, false]);
  });

  it('verify-replay serves model and tool results from the log: zero LLM calls, zero tool bodies', { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const steps of ['modelCall', 'run'] as const) {
      const llm = new ScriptedLlamaIndexLLM([searchTurn, { text: 'Recorded.', tokens: [4, 2] }]);
      const { search, seen } = searchTool();
      const governed = fromLlamaIndex(agent({ llm, tools: [search] }), { steps });
      const orch = new Orchestrator({ store: createMemoryStore() });
      const report = await orch.run({ agent: governed, task: 'q' });
      expect(report.status).toBe('SUCCESS');
      const replayed = await orch.replay(report.executionId, { agent: governed, verify: true });
      expect(replayed.status).toBe('SUCCESS');
      expect(replayed.finalOutput).toBe('Recorded.');
      expect(replayed.tokenUsage).toEqual(report.tokenUsage);
      expect(llm.requests).toHaveLength(2);
      expect(seen.runs).toBe(1);
    }
  });

  it('writes ahead: with an asynchronous store the LLM is asked once its MODEL_CALL is durable', { timeout: TEST_TIMEOUT_MS }, async () => {
    const store = asyncStore(createMemoryStore());
    const executionId = randomUUID();
    const llm = new ScriptedLlamaIndexLLM([{ text: 'durable', tokens: [2, 2] }]);
    const seen: string[][] = [];
    const chat = llm.chat.bind(llm);
    llm.chat = ((params: never) => {
      seen.push(store.durable(executionId).map((e) => e.type));
      return chat(params);
    }) as never;
    const report = await new Orchestrator({ store }).run({ executionId, agent: fromLlamaIndex(agent({ llm })), task: 'q' });
    expect(report.status).toBe('SUCCESS');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.at(-1)).toBe('MODEL_CALL');
  });

  it("steps: 'run' runs the whole workflow in one step, every call still governed", { timeout: TEST_TIMEOUT_MS }, async () => {
    const llm = new ScriptedLlamaIndexLLM([searchTurn, { text: 'One step.', tokens: [4, 2] }]);
    const { search } = searchTool();
    const report = await new Orchestrator().run({ agent: fromLlamaIndex(agent({ llm, tools: [search] }), { steps: 'run' }), task: 'q' });
    expect(report).toMatchObject({ status: 'SUCCESS', totalSteps: 1, finalOutput: 'One step.', tokenUsage: { total: 31 }, toolUsage: { total: 1 } });
  });

  it('rejects what it cannot govern with typed errors', async () => {
    const workflow = agent({ llm: new ScriptedLlamaIndexLLM([{ text: 'x', tokens: [1, 1] }]) });
    expect(() => fromLlamaIndex({ name: 'fake' } as never)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'agent' } }));
    expect(() => fromLlamaIndex(workflow, { steps: 'turn' as never })).toThrow(expect.objectContaining({ details: { field: 'steps' } }));
    expect(() => fromLlamaIndex(workflow, { toolTimeoutMs: 1.5 })).toThrow(expect.objectContaining({ details: { field: 'toolTimeoutMs' } }));
    expect(() => fromLlamaIndex(workflow, { usage: 'openai' as never })).toThrow(expect.objectContaining({ details: { field: 'usage' } }));
    const a = tool({ name: 'lookup', description: 'a', parameters: z.object({}), execute: () => 'a' });
    const b = tool({ name: 'lookup', description: 'b', parameters: z.object({}), execute: () => 'b' });
    const llm = new ScriptedLlamaIndexLLM([{ text: 'x', tokens: [1, 1] }]);
    const one = agent({ name: 'one', llm, tools: [a] });
    const two = agent({ name: 'two', llm, tools: [b] });
    expect(() => fromLlamaIndex(multiAgent({ agents: [one, two], rootAgent: one }))).toThrow(expect.objectContaining({ details: { field: 'tools', tool: 'lookup' } }));
    const empty = await new Orchestrator().run({ agent: fromLlamaIndex(workflow), task: '' });
    expect(empty.error).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
  });
});
