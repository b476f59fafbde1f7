// A stand-in for a LlamaIndex.TS LLM (OpenAI, Anthropic, ...) in the LlamaIndex examples: a
// ToolCallLLM answering scripted turns (the last one repeats) with text or tool calls and token
// usage in OpenAI's shape, streamed or not, so the examples run without an API key or network.
import {
  ToolCallLLM,
  type ChatMessage,
  type ChatResponse,
  type ChatResponseChunk,
  type LLMChatParamsNonStreaming,
  type LLMChatParamsStreaming,
  type LLMMetadata,
} from '@llamaindex/core/llms';

export type LlamaIndexTurn = {
  text?: string;
  /** Tool calls, by tool name; a handoff is a call of `handOff` with `{ toAgent, reason }`. */
  calls?: { name: string; args?: Record<string, unknown> }[];
  tokens: [input: number, output: number];
};

/** What the LLM was asked: the messages, and the signal the caller passed along (`params.signal`). */
export interface ScriptedRequest {
  readonly messages: ChatMessage[];
  readonly stream: boolean;
  readonly signal: AbortSignal | undefined;
}

export class ScriptedLlamaIndexLLM extends ToolCallLLM {
  readonly supportToolCall = true;
  metadata: LLMMetadata;
  readonly requests: ScriptedRequest[] = [];
  readonly #turns: LlamaIndexTurn[];

  constructor(turns: LlamaIndexTurn[], options: { model?: string; maxTokens?: number } = {}) {
    super();
    this.#turns = turns;
    this.metadata = {
      model: options.model ?? 'scripted-llm',
      temperature: 0,
      topP: 1,
      maxTokens: options.maxTokens,
      contextWindow: 128_000,
      tokenizer: undefined,
      structuredOutput: false,
    };
  }

  chat(params: LLMChatParamsStreaming): Promise<AsyncIterable<ChatResponseChunk>>;
  chat(params: LLMChatParamsNonStreaming): Promise<ChatResponse>;
  async chat(params: LLMChatParamsStreaming | LLMChatParamsNonStreaming): Promise<AsyncIterable<ChatResponseChunk> | ChatResponse> {
    const stream = params.stream === true;
    this.requests.push({ messages: params.messages, stream, signal: (params as { signal?: AbortSignal }).signal });
    const n = this.requests.length;
    const turn = this.#turns[Math.min(n - 1, this.#turns.length - 1)] as LlamaIndexTurn;
    const toolCall = (turn.calls ?? []).map((call, i) => ({ id: `call_${n}_${i}`, name: call.name, input: call.args ?? {} }));
    const options = toolCall.length === 0 ? undefined : { toolCall };
    const [input, output] = turn.tokens;
    const raw = { id: `chatcmpl_${n}`, usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output } };
    if (!stream) {
      return { message: { role: 'assistant', content: turn.text ?? '', ...(options === undefined ? {} : { options }) }, raw };
    }
    // As OpenAI streams it: the text first, then a last chunk with the tool calls and the usage.
    const chunks: ChatResponseChunk[] = [];
    if (turn.text !== undefined) chunks.push({ delta: turn.text, raw: { id: raw.id } });
    chunks.push({ delta: '', raw, ...(options === undefined ? {} : { options }) });
    return ReadableStream.from(chunks);
  }
}
