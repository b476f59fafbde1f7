import {
  HumanMessage,
  SystemMessage,
  coerceMessageLikeToMessage,
  isBaseMessage,
  type BaseMessage,
  type BaseMessageLike,
} from '@langchain/core/messages';
import type { LLMResult } from '@langchain/core/outputs';
import type { UsageReport } from '../../agent.js';

/**
 * A compact, JSON-safe record of a message for OAO's events: what a replay needs (role, content,
 * tool calls), without LangChain's serialization envelope.
 */
export function recordMessage(message: BaseMessage): Record<string, unknown> {
  const record: Record<string, unknown> = { role: message.getType(), content: message.content };
  const toolCalls = (message as { tool_calls?: readonly { name: string; args: unknown; id?: string }[] }).tool_calls;
  if (Array.isArray(toolCalls) && toolCalls.length > 0) {
    record.tool_calls = toolCalls.map((call) => ({ name: call.name, args: call.args, ...(call.id === undefined ? {} : { id: call.id }) }));
  }
  const toolCallId = (message as { tool_call_id?: unknown }).tool_call_id;
  if (typeof toolCallId === 'string') record.tool_call_id = toolCallId;
  if (typeof message.name === 'string' && message.name.length > 0) record.name = message.name;
  const status = (message as { status?: unknown }).status;
  if (status === 'error') record.status = status;
  return record;
}

export function recordMessages(messages: readonly BaseMessage[]): Record<string, unknown>[] {
  return messages.map(recordMessage);
}

function firstGeneration(result: LLMResult): { text: string; message?: BaseMessage } | undefined {
  for (const generations of result.generations) {
    for (const generation of generations) return generation;
  }
  return undefined;
}

/** What MODEL_RESULT records of a model's response: its message, or its text for a plain LLM. */
export function recordResult(result: LLMResult): unknown {
  const generation = firstGeneration(result);
  if (generation === undefined) return null;
  return generation.message !== undefined && isBaseMessage(generation.message) ? recordMessage(generation.message) : generation.text;
}

/** The response text of a model call, for a step's output. */
export function resultText(result: LLMResult): string {
  const generation = firstGeneration(result);
  if (generation === undefined) return '';
  if (generation.message !== undefined && isBaseMessage(generation.message)) return generation.message.text;
  return generation.text;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

/**
 * The token usage of a model call: the response message's `usage_metadata` (current LangChain
 * models), else the provider's `llmOutput.tokenUsage` (older integrations) or its estimate.
 * Null when the model reported none.
 */
export function usageOf(result: LLMResult): UsageReport | null {
  for (const generations of result.generations) {
    for (const generation of generations) {
      const usage = (generation as { message?: { usage_metadata?: Record<string, unknown> } }).message?.usage_metadata;
      if (usage !== undefined && usage !== null) {
        const input = count(usage.input_tokens);
        const output = count(usage.output_tokens);
        return { input_tokens: input, output_tokens: output, total_tokens: Math.max(count(usage.total_tokens), input + output) };
      }
    }
  }
  const llmOutput = result.llmOutput as Record<string, Record<string, unknown> | undefined> | undefined;
  const tokens = llmOutput?.tokenUsage ?? llmOutput?.estimatedTokenUsage;
  if (tokens === undefined || tokens === null) return null;
  const input = count(tokens.promptTokens);
  const output = count(tokens.completionTokens);
  return { input_tokens: input, output_tokens: output, total_tokens: Math.max(count(tokens.totalTokens), input + output) };
}

/** The model's name for MODEL_CALL: LangSmith's `ls_model_name`, the invocation's model, or the class. */
export function modelName(
  llm: { id?: readonly string[] } | undefined,
  metadata: Record<string, unknown> | undefined,
  extra: Record<string, unknown> | undefined,
): string | undefined {
  const fromMetadata = metadata?.ls_model_name;
  if (typeof fromMetadata === 'string' && fromMetadata.length > 0) return fromMetadata;
  const params = extra?.invocation_params as Record<string, unknown> | undefined;
  const fromParams = params?.model ?? params?.model_name ?? params?.modelName;
  if (typeof fromParams === 'string' && fromParams.length > 0) return fromParams;
  const id = llm?.id;
  return Array.isArray(id) && id.length > 0 ? id[id.length - 1] : undefined;
}

/**
 * The default step output of a Runnable's result: a message becomes its text; anything else is
 * kept (OAO copies it through JSON into the report).
 */
export function toOutput(value: unknown): unknown {
  if (isBaseMessage(value)) return value.text;
  return value ?? null;
}

/**
 * A task as a conversation: a string is the user's message; an array of message-likes (or
 * `{ messages }`) is used as given, e.g. `[{ role: 'user', content: 'hi' }]`; anything else is sent
 * as JSON text.
 */
export function taskMessages(task: unknown, systemPrompt: string | undefined): BaseMessage[] {
  let messages: BaseMessage[];
  const list = Array.isArray(task)
    ? (task as unknown[])
    : typeof task === 'object' && task !== null && Array.isArray((task as { messages?: unknown }).messages)
      ? ((task as { messages: unknown[] }).messages)
      : undefined;
  if (typeof task === 'string') messages = [new HumanMessage(task)];
  else if (list !== undefined) messages = list.map((m) => coerceMessageLikeToMessage(m as BaseMessageLike));
  else messages = [new HumanMessage(JSON.stringify(task))];
  if (systemPrompt !== undefined && messages[0]?.getType() !== 'system') messages.unshift(new SystemMessage(systemPrompt));
  return messages;
}

/** Tool results as a ToolMessage's content: strings as they are, anything else as JSON. */
export function toolContent(result: unknown): string {
  if (typeof result === 'string') return result;
  if (isBaseMessage(result)) return typeof result.content === 'string' ? result.content : JSON.stringify(result.content);
  try {
    return JSON.stringify(result) ?? String(result);
  } catch {
    return String(result);
  }
}
