import { BaseChatModel, type BaseChatModelParams } from '@langchain/core/language_models/chat_models';
import { AIMessage, type BaseMessage, type MessageContent } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import { OaoError, type OaoErrorCode, errorRegistry } from '../../errors.js';
import type { OaoEvent, OaoEventOf } from '../../events/schema.js';
import { sameCanonicalJson } from '../../report/canonicalJson.js';
import { recordMessages } from './messages.js';

export interface RecordedChatModelOptions {
  /**
   * Answer only the calls recorded under this model name (MODEL_CALL's `model`), for an agent with
   * more than one model: give each its own recorded model. @default every recorded model call
   */
  readonly model?: string;
  /**
   * Check that each call is sent the messages the recorded call was sent, and throw
   * `OAO_ERR_REPLAY_DIVERGED` when they differ. @default true
   */
  readonly checkInput?: boolean;
}

/** One recorded model call: what it was sent and how it answered (no result: the run ended first). */
interface RecordedCall {
  readonly step: number;
  readonly callId: string;
  readonly model: string | null;
  readonly input: unknown;
  readonly reservedOutput: number | undefined;
  readonly result: OaoEventOf<'MODEL_RESULT'>['payload'] | undefined;
}

/**
 * A LangChain chat model that answers from a run's log: each call gets the next model result the
 * log recorded, in order, as the message the model returned then (its content, its tool calls
 * with their ids, its token usage), so a verify re-run of a LangChain or LangGraph agent emits the
 * events it recorded without calling a model. `bindTools` returns the model itself: the recorded
 * answers already carry their tool calls.
 *
 * A call past the last recorded one, or one sent other messages than the recorded call was, throws
 * `OAO_ERR_REPLAY_DIVERGED` naming the call (`details.call`, counted from 0).
 */
export class RecordedChatModel extends BaseChatModel {
  readonly #calls: readonly RecordedCall[];
  readonly #checkInput: boolean;
  /** Which recorded calls have answered. */
  readonly #used: boolean[];
  /** The first recorded call not answered yet. */
  #next = 0;
  #answered = 0;

  constructor(calls: readonly RecordedCall[], options: RecordedChatModelOptions = {}, params: BaseChatModelParams = {}) {
    super(params);
    this.#calls = calls;
    this.#checkInput = options.checkInput ?? true;
    this.#used = calls.map(() => false);
  }

  static override lc_name(): string {
    return 'RecordedChatModel';
  }

  _llmType(): string {
    return 'recorded';
  }

  /** Model calls recorded in the log (of the chosen model). */
  get recorded(): number {
    return this.#calls.length;
  }

  /** Calls answered so far. */
  get answered(): number {
    return this.#answered;
  }

  override bindTools(_tools: unknown[], _kwargs?: unknown): this {
    return this;
  }

  /** The recorded name, so the re-run's MODEL_CALL names the model the recording did. */
  override getLsParams(options: this['ParsedCallOptions']) {
    const model = this.#calls[this.#next]?.model;
    return { ...super.getLsParams(options), ...(typeof model === 'string' ? { ls_model_name: model } : {}) };
  }

  /**
   * The recorded call's output cap (what its MODEL_CALL reserved), so the re-run reserves the same:
   * a model's own cap and the policy's default both come out as recorded.
   */
  override invocationParams(_options?: this['ParsedCallOptions']): Record<string, unknown> {
    const call = this.#calls[this.#next];
    if (call === undefined) return {};
    return { ...(typeof call.model === 'string' ? { model: call.model } : {}), ...(call.reservedOutput === undefined ? {} : { max_tokens: call.reservedOutput }) };
  }

  async _generate(messages: BaseMessage[], options: this['ParsedCallOptions']): Promise<ChatResult> {
    let index = this.#next;
    let call = this.#calls[index];
    if (call === undefined) {
      throw new OaoError('OAO_ERR_REPLAY_DIVERGED', `Model call ${this.#answered} was not recorded: the log has ${this.#calls.length} model call(s)`, {
        details: { call: this.#answered, recorded: this.#calls.length },
      });
    }
    if (this.#checkInput) {
      const sent = jsonCopy(recordMessages(messages));
      if (!sameCanonicalJson(sent, call.input)) {
        // Calls made at once (in parallel, in one step) may reach the model in another order.
        const later = this.#laterMatch(index, call.step, sent);
        const match = later === undefined ? undefined : this.#calls[later];
        if (later === undefined || match === undefined) {
          throw new OaoError('OAO_ERR_REPLAY_DIVERGED', `Model call ${index} was sent other messages than the recorded call (step ${call.step}, ${call.callId})`, {
            details: { call: index, callId: call.callId, step: call.step, expected: call.input, actual: sent },
          });
        }
        index = later;
        call = match;
      }
    }
    this.#used[index] = true;
    this.#answered += 1;
    while (this.#used[this.#next] === true) this.#next += 1;
    const result = call.result;
    if (result === undefined) return neverAnswered(index, call, options.signal);
    if (!result.ok) throw recordedError(result.error);
    const message = recordedMessage(result.output, result.usage, result.unmetered === true, call.model);
    return { generations: [{ message, text: message.text }], llmOutput: {} };
  }

  /** A recorded call of the same step after `from`, not answered yet, that was sent `sent`. */
  #laterMatch(from: number, step: number, sent: unknown): number | undefined {
    for (let i = from + 1; i < this.#calls.length; i++) {
      const call = this.#calls[i] as RecordedCall;
      if (call.step !== step) return undefined;
      if (this.#used[i] !== true && sameCanonicalJson(sent, call.input)) return i;
    }
    return undefined;
  }
}

/**
 * A chat model that answers each call with the next model result recorded in `events` (a run's
 * log: the array `orch.replay` takes, or what a store returns for the run). Give it to the re-run
 * of `orch.replay(id, { agent, verify: true })` in place of the live model.
 *
 * ```ts
 * const log = await store.events(executionId);
 * const agent = fromGraph(createReactAgent({ llm: recordedChatModel(log), tools }));
 * await orch.replay(executionId, { agent, verify: true });
 * ```
 */
export function recordedChatModel(events: readonly OaoEvent[], options: RecordedChatModelOptions = {}): RecordedChatModel {
  if (!Array.isArray(events)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `recordedChatModel expects a run's events (an array), got ${events === null ? 'null' : typeof events}`, {
      details: { field: 'events' },
    });
  }
  if (options.model !== undefined && typeof options.model !== 'string') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'recordedChatModel: `model` must be a string', { details: { field: 'model' } });
  }
  const results = new Map<string, OaoEventOf<'MODEL_RESULT'>['payload']>();
  for (const event of events) {
    if (event?.type === 'MODEL_RESULT') results.set(event.payload.callId, event.payload);
  }
  const calls: RecordedCall[] = [];
  for (const event of events) {
    if (event?.type !== 'MODEL_CALL') continue;
    const p = event.payload;
    if (options.model !== undefined && p.model !== options.model) continue;
    calls.push({ step: p.step, callId: p.callId, model: p.model, input: p.input, reservedOutput: p.reserved?.output, result: results.get(p.callId) });
  }
  return new RecordedChatModel(calls, options);
}

interface RecordedToolCall {
  readonly name?: unknown;
  readonly args?: unknown;
  readonly id?: unknown;
}

/** The message a recorded MODEL_RESULT output stands for: what `recordMessage` kept of it. */
function recordedMessage(output: unknown, usage: { input: number; output: number; total: number } | null, unmetered: boolean, model: string | null): AIMessage {
  const record: Record<string, unknown> =
    typeof output === 'object' && output !== null && !Array.isArray(output) ? (output as Record<string, unknown>) : { content: typeof output === 'string' ? output : '' };
  const toolCalls = Array.isArray(record.tool_calls) ? (record.tool_calls as RecordedToolCall[]) : [];
  return new AIMessage({
    content: (record.content ?? '') as MessageContent,
    ...(typeof record.name === 'string' ? { name: record.name } : {}),
    tool_calls: toolCalls.map((c) => ({
      name: typeof c.name === 'string' ? c.name : '',
      args: (typeof c.args === 'object' && c.args !== null ? c.args : {}) as Record<string, unknown>,
      ...(typeof c.id === 'string' ? { id: c.id } : {}),
      type: 'tool_call' as const,
    })),
    // An unmetered call was charged its reservation: its response reported no usage, nor does this one.
    ...(usage !== null && !unmetered ? { usage_metadata: { input_tokens: usage.input, output_tokens: usage.output, total_tokens: usage.total } } : {}),
    ...(typeof model === 'string' ? { response_metadata: { model_name: model } } : {}),
  });
}

/** The error a recorded failed call threw, as close as its record allows (same name, code, message). */
function recordedError(error: OaoEventOf<'MODEL_RESULT'>['payload']['error']): Error {
  const message = error?.message ?? 'The recorded model call failed';
  const code = error?.code;
  if (code !== undefined && code !== 'OAO_ERR_AGENT_FAILED' && Object.hasOwn(errorRegistry, code)) {
    const failed = new OaoError(code as OaoErrorCode, message, error?.details === undefined ? {} : { details: error.details });
    if (error?.name !== undefined) failed.name = error.name;
    return failed;
  }
  return Object.assign(new Error(message), { name: error?.name ?? 'Error' });
}

/** A recorded call that never answered (the run ended while it ran): only its signal ends it here too. */
function neverAnswered(index: number, call: RecordedCall, signal: AbortSignal | undefined): Promise<never> {
  if (signal === undefined) {
    return Promise.reject(
      new OaoError('OAO_ERR_REPLAY_DIVERGED', `Model call ${index} has no recorded result (the run ended while it ran) and no signal to end it`, {
        details: { call: index, callId: call.callId, step: call.step },
      }),
    );
  }
  return new Promise<never>((_resolve, reject) => {
    const abort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  });
}

/** A value as its JSON round trip gives it back: what the log keeps of a call's input. */
function jsonCopy(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}
