// A stand-in for a provider's chat model, shared by the LangChain and LangGraph examples: it
// answers with scripted turns (the last one repeats), with tool calls and token usage like a real
// provider, so the examples run without an API key or network.
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';

export type Turn = { content?: string; toolCalls?: { name: string; args: Record<string, unknown> }[]; tokens: [input: number, output: number] };

/** Answers with the scripted turns in order, each with tool calls and token usage like a real provider. */
export class ScriptedChatModel extends BaseChatModel {
  readonly #turns: Turn[];
  #turn = 0;
  constructor(turns: Turn[]) {
    super({});
    this.#turns = turns;
  }
  _llmType() {
    return 'scripted';
  }
  override bindTools() {
    return this;
  }
  async _generate(): Promise<ChatResult> {
    const turn = this.#turns[Math.min(this.#turn++, this.#turns.length - 1)] as Turn;
    const [input, output] = turn.tokens;
    const message = new AIMessage({
      content: turn.content ?? '',
      tool_calls: (turn.toolCalls ?? []).map((call, i) => ({ ...call, id: `call_${this.#turn}_${i}`, type: 'tool_call' as const })),
      usage_metadata: { input_tokens: input, output_tokens: output, total_tokens: input + output },
    });
    return { generations: [{ message, text: message.text }] };
  }
}
