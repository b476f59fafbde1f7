// A stand-in for an OpenAI model in the OpenAI Agents JS examples: a `Model` answering scripted
// turns (the last one repeats) with messages, tool calls or handoffs and token usage like the
// Responses API, streamed or not, so the examples run without an API key or network.
import { Usage, type Model, type ModelRequest, type ModelResponse, type StreamEvent } from '@openai/agents';

export type OpenAITurn = {
  text?: string;
  /** Function calls, by tool name; a handoff is a call of its tool (`transfer_to_<agent>`). */
  calls?: { name: string; args?: Record<string, unknown> }[];
  tokens: [input: number, output: number];
};

export class ScriptedOpenAIModel implements Model {
  readonly model: string;
  readonly requests: ModelRequest[] = [];
  readonly #turns: OpenAITurn[];

  constructor(turns: OpenAITurn[], model = 'scripted-gpt') {
    this.#turns = turns;
    this.model = model;
  }

  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    return this.#next(request);
  }

  async *getStreamedResponse(request: ModelRequest): AsyncIterable<StreamEvent> {
    const response = this.#next(request);
    yield { type: 'response_started' };
    const text = response.output.map((item) => ('content' in item && Array.isArray(item.content) ? item.content.map((c) => ('text' in c ? c.text : '')).join('') : '')).join('');
    if (text.length > 0) yield { type: 'output_text_delta', delta: text };
    const { inputTokens, outputTokens, totalTokens } = response.usage;
    yield { type: 'response_done', response: { id: response.responseId ?? 'r', usage: { inputTokens, outputTokens, totalTokens }, output: response.output } } as StreamEvent;
  }

  #next(request: ModelRequest): ModelResponse {
    this.requests.push(request);
    const n = this.requests.length;
    const turn = this.#turns[Math.min(n - 1, this.#turns.length - 1)] as OpenAITurn;
    const [input, output] = turn.tokens;
    const items: ModelResponse['output'] = [];
    if (turn.text !== undefined) {
      items.push({ type: 'message', id: `msg_${n}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: turn.text }] });
    }
    (turn.calls ?? []).forEach((call, i) => {
      items.push({ type: 'function_call', id: `fc_${n}_${i}`, callId: `call_${n}_${i}`, name: call.name, arguments: JSON.stringify(call.args ?? {}), status: 'completed' });
    });
    return { output: items, usage: new Usage({ requests: 1, inputTokens: input, outputTokens: output, totalTokens: input + output }), responseId: `resp_${n}` };
  }
}
