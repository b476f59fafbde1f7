import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { AIMessage, type BaseMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { describe, expect, it } from 'vitest';
import { MultiAgentOrchestrator, Orchestrator, type AgentLike, type OaoEvent } from '../../src/index.js';
import { fromChatModel, fromRunnable } from '../../src/adapters/langchain/index.js';
import { searchTool } from './fixtures.js';

type CallOptions = FakeListChatModel['ParsedCallOptions'] & { maxTokens?: number };

/**
 * LangChain's FakeListChatModel with an output cap of its own (reported as `max_tokens` in its
 * invocation parameters, as provider models do) that a `maxTokens` call option overrides. It
 * records the cap each call was sent with, honours it (its usage never reports more output), and
 * asks for the `search` tool when a response is `"search"`.
 */
class CappedFakeChatModel extends FakeListChatModel {
  readonly ownCap: number | undefined;
  readonly usage: { readonly input: number; readonly output: number } | undefined;
  /** The cap each call that reached the model was sent with (undefined: none). */
  readonly capsSent: (number | undefined)[] = [];

  constructor(responses: string[], options: { cap?: number; usage?: { input: number; output: number } } = {}) {
    super({ responses });
    this.ownCap = options.cap;
    this.usage = options.usage;
  }

  override invocationParams(options?: CallOptions): Record<string, unknown> {
    return { max_tokens: options?.maxTokens ?? this.ownCap };
  }

  // Tools are named in the responses: binding them changes nothing here.
  override bindTools(): this {
    return this;
  }

  override async _generate(messages: BaseMessage[], options: CallOptions, runManager?: CallbackManagerForLLMRun): Promise<ChatResult> {
    const cap = options.maxTokens ?? this.ownCap;
    this.capsSent.push(cap);
    const result = await super._generate(messages, options, runManager);
    const text = result.generations[0]?.text ?? '';
    const usage = this.usage;
    const message = new AIMessage({
      content: text === 'search' ? '' : text,
      ...(text === 'search' ? { tool_calls: [{ name: 'search', args: { q: 'x' }, id: `call_${this.capsSent.length}`, type: 'tool_call' as const }] } : {}),
      ...(usage === undefined
        ? {}
        : (() => {
            const output = cap === undefined ? usage.output : Math.min(usage.output, cap);
            return { usage_metadata: { input_tokens: usage.input, output_tokens: output, total_tokens: usage.input + output } };
          })()),
    });
    return { generations: [{ message, text: message.text }] };
  }
}

const prompt = ChatPromptTemplate.fromTemplate('Tell me about {topic}');

/** Two model calls in one chain: the second is asked about the first one's answer. */
function twoCalls(model: CappedFakeChatModel) {
  return prompt
    .pipe(model)
    .pipe(new StringOutputParser())
    .pipe((topic: string) => ({ topic }))
    .pipe(prompt)
    .pipe(model)
    .pipe(new StringOutputParser());
}

const reservations = (events: readonly OaoEvent[]) =>
  events.flatMap((e) => (e.type === 'MODEL_CALL' && e.payload.reserved !== undefined ? [e.payload.reserved] : []));

const ways: readonly [string, (model: CappedFakeChatModel) => AgentLike][] = [
  ['fromRunnable', (model) => fromRunnable(twoCalls(model))],
  ['fromRunnable, one model call per step', (model) => fromRunnable(twoCalls(model), { steps: 'modelCall' })],
  ['a Runnable passed directly (zero-config)', (model) => twoCalls(model) as never],
];

describe('the LangChain adapters lower a call’s output cap to what the budget has left', () => {
  for (const [way, agentOf] of ways) {
    describe(way, () => {
      it('sends a call whose cap fits unchanged, and the next one with its cap lowered to what is left: the run ends within its limit', { timeout: 10_000 }, async () => {
        const model = new CappedFakeChatModel(['governance', 'control'], { cap: 100 });
        const handle = new Orchestrator({ policy: { maxTokens: 200 } }).start({ agent: agentOf(model), task: { topic: 'budgets' } });
        const report = await handle.report;
        expect(report.status).toBe('SUCCESS');
        const [first, second] = reservations(handle.events());
        // The first call fits with the model's own cap: sent and reserved unchanged.
        expect(first).toMatchObject({ output: 100, estimated: true });
        // The second would need its prompt plus 100, and less is left: it gets what is left.
        const left = 200 - (first!.input + first!.output) - second!.input;
        expect(left).toBeGreaterThan(0);
        expect(left).toBeLessThan(100);
        expect(second).toMatchObject({ output: left });
        expect(model.capsSent).toEqual([100, left]);
        // Without usage, each call is charged its whole reservation: exactly the limit, not above it.
        expect(report.tokenUsage.total).toBe(200);
      });

      it('refuses a call with no room left after its prompt (MODEL_CALL_DENIED, max_tokens), after sending the one before it with a lowered cap', { timeout: 10_000 }, async () => {
        const model = new CappedFakeChatModel(['governance', 'control'], { cap: 1_000, usage: { input: 5, output: 1_000 } });
        const handle = new Orchestrator({ policy: { maxTokens: 120 } }).start({ agent: agentOf(model), task: { topic: 'budgets' } });
        const report = await handle.report;
        expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
        const [first] = reservations(handle.events());
        expect(first).toMatchObject({ output: 120 - first!.input });
        expect(model.capsSent).toEqual([120 - first!.input]);
        const denied = handle.events().find((e) => e.type === 'MODEL_CALL_DENIED');
        expect(denied?.payload).toMatchObject({ rule: 'max_tokens', reserved: { output: 1_000 } });
        expect(report.tokenUsage.total).toBeLessThanOrEqual(120);
      });
    });
  }

  describe('fromChatModel', () => {
    it('sends the first turn with the model’s cap and the next with a lowered one', { timeout: 10_000 }, async () => {
      const bodies = { count: 0 };
      const model = new CappedFakeChatModel(['search', 'found it'], { cap: 100 });
      const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
      const handle = new Orchestrator({ policy: { maxTokens: 250 } }).start({ agent, tools: agent.tools, task: 'look it up' });
      const report = await handle.report;
      expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'found it' });
      expect(bodies.count).toBe(1);
      const [first, second] = reservations(handle.events());
      expect(first).toMatchObject({ output: 100 });
      const left = 250 - (first!.input + first!.output) - second!.input;
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThan(100);
      expect(second).toMatchObject({ output: left });
      expect(model.capsSent).toEqual([100, left]);
      expect(report.tokenUsage.total).toBe(250);
    });

    it('lowers the default reserve of a model without a cap, and refuses the turn after it that has no room', { timeout: 10_000 }, async () => {
      const bodies = { count: 0 };
      const model = new CappedFakeChatModel(['search', 'found it'], { usage: { input: 5, output: 5_000 } });
      const agent = fromChatModel(model, { tools: [searchTool(bodies)] });
      const handle = new Orchestrator({ policy: { maxTokens: 300 } }).start({ agent, tools: agent.tools, task: 'look it up' });
      const report = await handle.report;
      expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
      const [first] = reservations(handle.events());
      // No cap of its own: it would reserve the policy's 1024, and is sent with what is left instead.
      expect(first).toMatchObject({ output: 300 - first!.input });
      expect(model.capsSent).toEqual([300 - first!.input]);
      const denied = handle.events().find((e) => e.type === 'MODEL_CALL_DENIED');
      expect(denied?.payload).toMatchObject({ rule: 'max_tokens', reserved: { output: 1_024 } });
      expect(report.tokenUsage.total).toBeLessThanOrEqual(300);
    });

    it('lowers the cap to what a batch’s shared budget has left when that is the tightest', { timeout: 10_000 }, async () => {
      const model = new CappedFakeChatModel(['done'], { cap: 1_000 });
      const multi = new MultiAgentOrchestrator({ budget: { maxTokens: 200 }, policy: { maxTokens: 10_000 } });
      const [report] = await multi.runAll([{ agent: fromChatModel(model), task: 'write' }]);
      expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'done' });
      expect(model.capsSent).toHaveLength(1);
      expect(model.capsSent[0]).toBeLessThan(200);
      // Charged its whole reservation (no usage): the batch's limit exactly.
      expect(report?.tokenUsage.total).toBe(200);
    });
  });
});
