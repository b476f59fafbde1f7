import { HumanMessage } from '@langchain/core/messages';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { RunnableParallel } from '@langchain/core/runnables';
import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { describe, expect, it } from 'vitest';
import { createMemoryStore, Orchestrator, type OaoEvent } from '../../src/index.js';
import { fromChatModel, fromRunnable, governTools, recordedChatModel } from '../../src/adapters/langchain/index.js';
import { fromGraph } from '../../src/adapters/langgraph/index.js';
import { ScriptedChatModel, type ScriptedTurn } from './scriptedChatModel.js';
import { recording, searchTool } from './fixtures.js';

const searchThenAnswer: ScriptedTurn[] = [
  { toolCalls: [{ name: 'search', args: { q: 'oao' } }], usage: { input: 10, output: 5 } },
  { content: 'OAO governs agents.', usage: { input: 25, output: 7 } },
];

/** prompt | model | parser, then a second prompt | model | parser on its text. */
function summarizer(model: BaseChatModel) {
  return ChatPromptTemplate.fromTemplate('Tell me about {topic}')
    .pipe(model)
    .pipe(new StringOutputParser())
    .pipe((text: string) => ({ text }))
    .pipe(ChatPromptTemplate.fromTemplate('Summarize: {text}'))
    .pipe(model)
    .pipe(new StringOutputParser());
}

const twoAnswers: ScriptedTurn[] = [
  { content: 'Governance is control.', usage: { input: 12, output: 8 } },
  { content: 'In short: control.', usage: { input: 30, output: 10 } },
];

describe('recordedChatModel: verify-replay of zero-config LangChain and LangGraph runs', () => {
  it('verifies a createReactAgent run with zero model calls and zero tool bodies', { timeout: 10_000 }, async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const bodies = { count: 0 };
    const live = new ScriptedChatModel(searchThenAnswer);
    const tools = governTools([searchTool(bodies)]);
    const agent = fromGraph(createReactAgent({ llm: live, tools }), { tools });
    const report = await orch.run({ agent, tools: agent.tools, task: 'What is OAO?' });
    expect(report).toMatchObject({
      status: 'SUCCESS',
      finalOutput: 'OAO governs agents.',
      tokenUsage: { input: 35, output: 12, total: 47 },
      toolUsage: { total: 1, byTool: { search: 1 } },
    });
    expect([live.calls, bodies.count]).toEqual([2, 1]);

    const log = store.events(report.executionId);
    const recorded = recordedChatModel(log);
    const verified = await orch.replay(report.executionId, {
      verify: true,
      agent: (() => {
        const again = governTools([searchTool(bodies)]);
        return fromGraph(createReactAgent({ llm: recorded, tools: again }), { tools: again });
      })(),
    });
    expect(verified).toEqual(report);
    expect([live.calls, bodies.count]).toEqual([2, 1]);
    expect([recorded.answered, recorded.recorded]).toEqual([2, 2]);
  });

  it('rebuilds the recorded message: content, tool calls with their ids, usage', async () => {
    const orch = new Orchestrator();
    const events = recording(orch);
    await orch.run({ agent: fromGraph(createReactAgent({ llm: new ScriptedChatModel(searchThenAnswer), tools: governTools([searchTool({ count: 0 })]) })), task: 'What is OAO?' });
    const message = await recordedChatModel(events).invoke([new HumanMessage('What is OAO?')]);
    expect(message.tool_calls).toEqual([{ name: 'search', args: { q: 'oao' }, id: 'call_0_0', type: 'tool_call' }]);
    expect(message.usage_metadata).toEqual({ input_tokens: 10, output_tokens: 5, total_tokens: 15 });
    expect(message.response_metadata.model_name).toBe('ScriptedChatModel');
  });

  it('verifies a fromRunnable(prompt | model | parser) chain, and a Runnable passed directly to orch.run', { timeout: 10_000 }, async () => {
    for (const wrap of [(chain: ReturnType<typeof summarizer>) => fromRunnable(chain), (chain: ReturnType<typeof summarizer>) => chain]) {
      const orch = new Orchestrator();
      const events = recording(orch);
      const live = new ScriptedChatModel(twoAnswers);
      const report = await orch.run({ agent: wrap(summarizer(live)), task: { topic: 'governance' } });
      expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'In short: control.', tokenUsage: { total: 60 } });

      const recorded = recordedChatModel(events);
      const verified = await new Orchestrator().replay([...events], { verify: true, agent: wrap(summarizer(recorded)) });
      expect(verified).toEqual(report);
      expect(live.calls).toBe(2);
      expect(recorded.answered).toBe(2);
    }
  });

  it('verifies a fromChatModel loop', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator();
    const events = recording(orch);
    const bodies = { count: 0 };
    const live = new ScriptedChatModel(searchThenAnswer);
    const report = await orch.run({ agent: fromChatModel(live, { tools: [searchTool(bodies)], systemPrompt: 'Be brief.' }), task: 'What is OAO?' });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'OAO governs agents.', toolUsage: { total: 1 } });
    const verified = await new Orchestrator().replay([...events], {
      verify: true,
      agent: fromChatModel(recordedChatModel(events), { tools: [searchTool(bodies)], systemPrompt: 'Be brief.' }),
    });
    expect(verified).toEqual(report);
    expect(live.calls).toBe(2);
    expect(bodies.count).toBe(1);
  });

  it('answers calls of one step made at once in whatever order they reach it', { timeout: 10_000 }, async () => {
    const both = (model: BaseChatModel) =>
      RunnableParallel.from({
        a: ChatPromptTemplate.fromTemplate('First: {topic}').pipe(model).pipe(new StringOutputParser()),
        b: ChatPromptTemplate.fromTemplate('Second: {topic}').pipe(model).pipe(new StringOutputParser()),
      });
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromRunnable(both(new ScriptedChatModel(twoAnswers))), task: { topic: 'governance' } });
    expect(report.status).toBe('SUCCESS');
    const verified = await new Orchestrator().replay([...events], { verify: true, agent: fromRunnable(both(recordedChatModel(events))) });
    expect(verified).toEqual(report);

    const answers = Object.fromEntries(
      events.flatMap((e) => (e.type === 'MODEL_RESULT' ? [[e.payload.callId, (e.payload.output as { content: string }).content]] : [])),
    );
    const sentFirst = events.find((e) => e.type === 'MODEL_CALL' && JSON.stringify(e.payload.input).includes('First'));
    const model = recordedChatModel(events);
    const second = await model.invoke([new HumanMessage('Second: governance')]);
    const first = await model.invoke([new HumanMessage('First: governance')]);
    expect(first.content).toBe(answers[(sentFirst?.payload as { callId: string }).callId]);
    expect(new Set([first.content, second.content])).toEqual(new Set(['Governance is control.', 'In short: control.']));
  });

  it('a call reserves what its recorded call reserved, under the recorded model name', { timeout: 10_000 }, async () => {
    /** A model that names itself and caps its output, as provider models do in their invocation parameters. */
    class CappedModel extends ScriptedChatModel {
      override invocationParams(): Record<string, unknown> {
        return { model: 'scripted-large', max_tokens: 64 };
      }
    }
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: summarizer(new CappedModel(twoAnswers)), task: { topic: 'governance' } });
    const calls = events.filter((e) => e.type === 'MODEL_CALL');
    expect(calls.map((e) => [e.payload.model, e.payload.reserved?.output])).toEqual([
      ['scripted-large', 64],
      ['scripted-large', 64],
    ]);
    const verified = await new Orchestrator().replay([...events], { verify: true, agent: summarizer(recordedChatModel(events)) });
    expect(verified).toEqual(report);
  });

  it('a re-run asking for one more model call than recorded fails with OAO_ERR_REPLAY_DIVERGED', { timeout: 10_000 }, async () => {
    const orch = new Orchestrator();
    const events = recording(orch);
    const oneCall = (model: BaseChatModel) => ChatPromptTemplate.fromTemplate('Tell me about {topic}').pipe(model).pipe(new StringOutputParser());
    const report = await orch.run({ agent: fromRunnable(oneCall(new ScriptedChatModel(twoAnswers))), task: { topic: 'governance' } });
    expect(report.status).toBe('SUCCESS');

    await expect(new Orchestrator().replay([...events], { verify: true, agent: fromRunnable(summarizer(recordedChatModel(events))) })).rejects.toMatchObject({
      code: 'OAO_ERR_REPLAY_DIVERGED',
    });
    // The model itself names the call it has no answer for.
    const model = recordedChatModel(events);
    await model.invoke([new HumanMessage('Tell me about governance')]);
    await expect(model.invoke([new HumanMessage('Tell me about governance')])).rejects.toMatchObject({
      code: 'OAO_ERR_REPLAY_DIVERGED',
      details: { call: 1, recorded: 1 },
    });
  });

  it('a call sent other messages than the recorded call fails with OAO_ERR_REPLAY_DIVERGED', async () => {
    const orch = new Orchestrator();
    const events = recording(orch);
    await orch.run({ agent: fromRunnable(new ScriptedChatModel(twoAnswers)), task: 'same question' });
    await expect(recordedChatModel(events).invoke([new HumanMessage('another question')])).rejects.toMatchObject({
      code: 'OAO_ERR_REPLAY_DIVERGED',
      details: { call: 0 },
    });
    const answer = await recordedChatModel(events).invoke([new HumanMessage('same question')]);
    expect(answer.content).toBe('Governance is control.');
  });

  it('rejects what is not a run’s events', () => {
    expect(() => recordedChatModel('run-1' as unknown as OaoEvent[])).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
  });
});
