import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage, type BaseMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import { deferred, RunawayCapError } from '../helpers.js';

/** One scripted model response. */
export interface ScriptedTurn {
  readonly content?: string;
  readonly toolCalls?: readonly { readonly name: string; readonly args: Record<string, unknown> }[];
  /** Token usage of this response. */
  readonly usage?: { readonly input: number; readonly output: number };
  /** Where the usage is reported: the message's `usage_metadata` (current) or `llmOutput.tokenUsage` (older integrations). */
  readonly usageIn?: 'usage_metadata' | 'llmOutput';
  /** Never answer: only the call's signal ends it (with a rejection). */
  readonly hang?: boolean;
}

export interface ScriptedChatModelOptions {
  /**
   * Calls past this many throw RunawayCapError: the last turn repeats forever, so a model loop that
   * a broken limit no longer stops fails its run instead of spinning. @default 50
   */
  readonly maxCalls?: number;
}

/**
 * LangChain's FakeListChatModel cannot return tool calls, and FakeStreamingChatModel repeats one
 * response without usage: this BaseChatModel answers with queued messages that carry tool calls
 * and token usage, and records what it was sent. The last turn repeats when the script runs out.
 */
export class ScriptedChatModel extends BaseChatModel {
  readonly turns: readonly ScriptedTurn[];
  /** Calls that reached `_generate` (refused calls never do). */
  calls = 0;
  /** Calls whose signal aborted while they were running. */
  aborted = 0;
  readonly received: BaseMessage[][] = [];
  boundTools: string[] = [];
  /** The `maxTokens` call option of each call that reached the model (undefined: none was set). */
  readonly maxTokensSent: (number | undefined)[] = [];
  readonly maxCalls: number;
  readonly #started = new Map<number, ReturnType<typeof deferred<void>>>();

  constructor(turns: readonly ScriptedTurn[], options: ScriptedChatModelOptions = {}) {
    super({});
    this.turns = turns;
    this.maxCalls = options.maxCalls ?? 50;
  }

  /** Resolves once call `n` (1-based) has reached the model and listens to its signal. */
  whenCalled(n: number): Promise<void> {
    return this.#startedGate(n).promise;
  }

  #startedGate(n: number): ReturnType<typeof deferred<void>> {
    let gate = this.#started.get(n);
    if (gate === undefined) {
      gate = deferred<void>();
      this.#started.set(n, gate);
    }
    return gate;
  }

  _llmType(): string {
    return 'scripted';
  }

  override bindTools(tools: { name: string }[]): this {
    this.boundTools = tools.map((t) => t.name);
    return this;
  }

  async _generate(messages: BaseMessage[], options: this['ParsedCallOptions']): Promise<ChatResult> {
    if (this.calls >= this.maxCalls) throw new RunawayCapError('ScriptedChatModel', this.maxCalls);
    const turn = this.turns[Math.min(this.calls, this.turns.length - 1)] ?? {};
    const index = this.calls;
    this.calls += 1;
    this.received.push(messages);
    if (turn.hang === true) {
      const signal = options.signal;
      await new Promise<void>((_resolve, reject) => {
        signal?.addEventListener(
          'abort',
          () => {
            this.aborted += 1;
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          },
          { once: true },
        );
        this.#startedGate(this.calls).resolve();
      });
    }
    this.#startedGate(this.calls).resolve();
    const content = turn.content ?? '';
    // A model honours the output cap it is called with: it never reports more output than that.
    const cap = (options as { maxTokens?: number }).maxTokens;
    this.maxTokensSent.push(cap);
    const usage = turn.usage === undefined || cap === undefined ? turn.usage : { ...turn.usage, output: Math.min(turn.usage.output, cap) };
    const usageIn = turn.usageIn ?? 'usage_metadata';
    const message = new AIMessage({
      content,
      tool_calls: (turn.toolCalls ?? []).map((call, i) => ({ name: call.name, args: call.args, id: `call_${index}_${i}`, type: 'tool_call' as const })),
      ...(usage !== undefined && usageIn === 'usage_metadata'
        ? { usage_metadata: { input_tokens: usage.input, output_tokens: usage.output, total_tokens: usage.input + usage.output } }
        : {}),
    });
    return {
      generations: [{ message, text: content }],
      llmOutput:
        usage !== undefined && usageIn === 'llmOutput'
          ? { tokenUsage: { promptTokens: usage.input, completionTokens: usage.output, totalTokens: usage.input + usage.output } }
          : {},
    };
  }
}
