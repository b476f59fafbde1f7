// A stand-in for a provider's model in the AI SDK examples: the SDK's own MockLanguageModelV3
// answering scripted turns (the last one repeats), with tool calls and token usage like a real
// provider, for generateText and streamText alike, so the examples run without an API key.
import { MockLanguageModelV3 } from 'ai/test';

export type AiSdkTurn = {
  text?: string;
  toolCalls?: { name: string; args: Record<string, unknown> }[];
  tokens: [input: number, output: number];
};

type GenerateResult = Awaited<ReturnType<MockLanguageModelV3['doGenerate']>>;
type StreamPart = Awaited<ReturnType<MockLanguageModelV3['doStream']>>['stream'] extends ReadableStream<infer P> ? P : never;

/** A MockLanguageModelV3 that answers `turns` in order; `model.doGenerateCalls` / `doStreamCalls` count its calls. */
export function scriptedAiSdkModel(turns: AiSdkTurn[], modelId = 'scripted-model'): MockLanguageModelV3 {
  let turn = 0;
  const next = (): { content: GenerateResult['content']; finishReason: GenerateResult['finishReason']; usage: GenerateResult['usage'] } => {
    const t = turns[Math.min(turn, turns.length - 1)] as AiSdkTurn;
    turn += 1;
    const calls = t.toolCalls ?? [];
    const content: GenerateResult['content'] = [
      ...(t.text === undefined ? [] : [{ type: 'text' as const, text: t.text }]),
      ...calls.map((call, i) => ({ type: 'tool-call' as const, toolCallId: `call_${turn}_${i}`, toolName: call.name, input: JSON.stringify(call.args) })),
    ];
    const [input, output] = t.tokens;
    return {
      content,
      finishReason: { unified: calls.length > 0 ? 'tool-calls' : 'stop', raw: undefined },
      usage: {
        inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
        outputTokens: { total: output, text: output, reasoning: undefined },
      },
    };
  };
  return new MockLanguageModelV3({
    modelId,
    doGenerate: async () => ({ ...next(), warnings: [] }),
    doStream: async () => {
      const { content, finishReason, usage } = next();
      const parts: StreamPart[] = [{ type: 'stream-start', warnings: [] }];
      for (const item of content) {
        if (item.type === 'text') {
          parts.push({ type: 'text-start', id: 't' }, { type: 'text-delta', id: 't', delta: item.text }, { type: 'text-end', id: 't' });
        } else {
          parts.push(item as StreamPart);
        }
      }
      parts.push({ type: 'finish', finishReason, usage });
      return {
        stream: new ReadableStream<StreamPart>({
          start(controller) {
            for (const part of parts) controller.enqueue(part);
            controller.close();
          },
        }),
      };
    },
  });
}
