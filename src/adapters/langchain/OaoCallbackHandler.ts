import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import type { Serialized } from '@langchain/core/load/serializable';
import type { BaseMessage } from '@langchain/core/messages';
import type { LLMResult } from '@langchain/core/outputs';
import { isBaseMessage } from '@langchain/core/messages';
import type { ModelCall, ToolCall } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { modelName, recordMessages, recordResult, resultText, usageOf } from './messages.js';
import { GOVERNED_TAG, type RunBridge } from './runBridge.js';

/**
 * Meters and gates every model call LangChain makes inside a governed run, however deeply it is
 * nested in chains, graphs or tool bodies: it travels in `RunnableConfig.callbacks`, which every
 * Runnable passes down to its children.
 *
 * Callbacks normally only observe. This handler is awaited (`awaitHandlers`) and its errors are
 * raised (`raiseError`), so LangChain waits for it before a model call starts and a refusal stops
 * the call before the provider is contacted: a call that would start with the token budget spent
 * never runs. (LangChain logs a raised handler error once with `console.error` before rethrowing.)
 * Each call's usage (`usage_metadata`, or the older `llmOutput.tokenUsage`) is metered the moment
 * the call ends; usage that crosses the budget aborts the step's signal, which the rest of the
 * Runnable observes through its config.
 *
 * It also governs LangChain tools that were not wrapped with `governTools`, at `handleToolStart`:
 * the call is checked by the policy (a refusal is raised before the tool's body runs and ends the
 * run with `policy_violation`, whatever the graph does with the error), counted, recorded as
 * TOOL_CALL (written ahead) and closed at `handleToolEnd` / `handleToolError` (TOOL_RESULT).
 */
/** What a response served from LangChain's cache cost: nothing (it is metered as such, not as unmetered). */
const NO_USAGE = Object.freeze({ input: 0, output: 0 });

/** Where LangChain model classes take a call's cap on output tokens from. */
const CAP_KEYS = ['max_tokens', 'maxTokens', 'max_output_tokens', 'maxOutputTokens', 'max_completion_tokens'] as const;

/** A call's cap on output tokens, and the key it was found under. */
interface OutputCap {
  readonly value: number;
  readonly key: string;
}

function capIn(params: unknown): OutputCap | undefined {
  if (typeof params !== 'object' || params === null) return undefined;
  for (const key of CAP_KEYS) {
    const value = (params as Record<string, unknown>)[key];
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return { value, key };
  }
  return undefined;
}

/**
 * The call's cap on output tokens as LangChain reports its invocation parameters (`max_tokens`,
 * `maxTokens`, `max_output_tokens`, `max_completion_tokens`), else as its call options carry it
 * (bound with `withConfig`/`bind`), when there is one.
 */
function maxOutputTokensOf(extraParams: Record<string, unknown> | undefined): OutputCap | undefined {
  return capIn(extraParams?.invocation_params) ?? capIn(extraParams?.options);
}

/**
 * The options the model is about to be called with, when LangChain hands the handler the very
 * object it then passes to the model (as chat models and LLMs do for a single prompt): a cap set
 * there is the cap the call is sent with. Undefined for a batch (its prompts share one object).
 */
function liveCallOptions(extraParams: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const options = extraParams?.options;
  if (typeof options !== 'object' || options === null || !Object.isExtensible(options)) return undefined;
  const batch = extraParams?.batch_size;
  return batch === undefined || batch === 1 ? (options as Record<string, unknown>) : undefined;
}

/** Sends the call with `cap` output tokens: as `maxTokens`, and under the key the model stated its own cap with. */
function lowerCap(options: Record<string, unknown>, cap: number, key: string | undefined): void {
  options.maxTokens = cap;
  if (key !== undefined && key !== 'maxTokens') options[key] = cap;
}

/** The arguments of a plain tool's call: LangChain hands the handler its input as JSON text. */
function toolArgs(input: string): unknown {
  const first = input.charCodeAt(0);
  // '{' or '[': an object or array the tool was called with.
  if (first === 123 || first === 91) {
    try {
      return JSON.parse(input) as unknown;
    } catch {
      return input;
    }
  }
  return input;
}

/** What TOOL_RESULT records of a plain tool's output: a ToolMessage's content, else the output. */
function toolOutput(output: unknown): unknown {
  return isBaseMessage(output) ? output.content : output;
}

/** A plain tool's open call, with its time limit's timer when it has one. */
interface OpenTool {
  readonly call: ToolCall;
  timer: unknown;
}

export class OaoCallbackHandler extends BaseCallbackHandler {
  name = 'OaoCallbackHandler';
  override awaitHandlers = true;
  override raiseError = true;
  override ignoreChain = true;
  override ignoreRetriever = true;
  override ignoreCustomEvent = true;

  readonly #bridge: RunBridge;
  readonly #calls = new Map<string, ModelCall>();
  #tools: Map<string, OpenTool> | undefined;

  constructor(bridge: RunBridge) {
    super();
    this.#bridge = bridge;
  }

  override async handleChatModelStart(
    llm: Serialized,
    messages: BaseMessage[][],
    runId: string,
    _parentRunId?: string,
    extraParams?: Record<string, unknown>,
    _tags?: string[],
    metadata?: Record<string, unknown>,
  ): Promise<void> {
    await this.#open(runId, modelName(llm, metadata, extraParams), recordMessages(messages[0] ?? []), extraParams);
  }

  override async handleLLMStart(
    llm: Serialized,
    prompts: string[],
    runId: string,
    _parentRunId?: string,
    extraParams?: Record<string, unknown>,
    _tags?: string[],
    metadata?: Record<string, unknown>,
  ): Promise<void> {
    await this.#open(runId, modelName(llm, metadata, extraParams), prompts[0] ?? null, extraParams);
  }

  override handleLLMEnd(output: LLMResult, runId: string, _parentRunId?: string, _tags?: string[], extraParams?: Record<string, unknown>): void {
    const call = this.#take(runId);
    if (call === undefined) return;
    // A response from LangChain's cache cost no tokens, whatever usage it carries.
    call.end(recordResult(output), extraParams?.cached === true ? NO_USAGE : usageOf(output));
    const bridge = this.#bridge;
    bridge.modelCallClosed(bridge.wantsText === true ? resultText(output) : undefined);
  }

  override handleLLMError(error: unknown, runId: string): void {
    const call = this.#take(runId);
    if (call === undefined) return;
    call.fail(error);
    this.#bridge.modelCallClosed(undefined);
  }

  override async handleToolStart(
    tool: Serialized,
    input: string,
    runId: string,
    _parentRunId?: string,
    tags?: string[],
    _metadata?: Record<string, unknown>,
    runName?: string,
  ): Promise<void> {
    if (tags?.includes(GOVERNED_TAG)) return;
    const name = runName ?? (tool as { name?: string }).name ?? tool.id[tool.id.length - 1] ?? 'tool';
    const bridge = this.#bridge;
    const opened = bridge.openToolCall(name, toolArgs(input));
    const call = opened instanceof Promise ? await opened : opened;
    if (call === undefined) return;
    try {
      // Write-ahead: the body runs once TOOL_CALL is durable; a refusal is raised here, before it.
      await call.ready;
    } catch (error) {
      bridge.toolCallClosed();
      throw error;
    }
    const open: OpenTool = { call, timer: undefined };
    (this.#tools ??= new Map()).set(runId, open);
    const limit = bridge.timer.limitOf(name);
    if (limit !== undefined) {
      open.timer = bridge.timer.clock.setTimeout(() => {
        open.timer = undefined;
        const error = new OaoError('OAO_ERR_TOOL_TIMEOUT', `Tool "${name}" did not finish within ${limit} ms`, { details: { tool: name, timeoutMs: limit } });
        if (this.#closeTool(runId) === undefined) return;
        call.fail(error);
        // OAO does not run this body: the step's LangChain work is stopped so the tool sees its signal abort.
        bridge.stop(error);
      }, limit);
    }
  }

  override handleToolEnd(output: unknown, runId: string): void {
    this.#closeTool(runId)?.end(toolOutput(output));
  }

  override handleToolError(error: unknown, runId: string): void {
    this.#closeTool(runId)?.fail(error);
  }

  #closeTool(runId: string): ToolCall | undefined {
    const open = this.#tools?.get(runId);
    if (open === undefined) return undefined;
    this.#tools?.delete(runId);
    if (open.timer !== undefined) this.#bridge.timer.clock.clearTimeout(open.timer);
    this.#bridge.toolCallClosed();
    return open.call;
  }

  async #open(runId: string, model: string | undefined, input: unknown, extraParams: Record<string, unknown> | undefined): Promise<void> {
    const cap = maxOutputTokensOf(extraParams);
    // A call whose cap can still be set is sent with a lower one when the budget has less left.
    const options = liveCallOptions(extraParams);
    const opened = this.#bridge.openModelCall({
      model,
      input,
      ...(cap === undefined ? {} : { maxOutputTokens: cap.value }),
      ...(options === undefined ? {} : { fitOutput: true }),
    });
    // A step's bridge opens the call at once: no extra turn of the microtask queue for it.
    const call = opened instanceof Promise ? await opened : opened;
    this.#calls.set(runId, call);
    const lowered = call.loweredMaxOutputTokens;
    if (lowered !== undefined && options !== undefined) lowerCap(options, lowered, cap?.key);
    // Write-ahead with an asynchronous store: the model is called once MODEL_CALL is durable.
    await call.ready;
  }

  #take(runId: string): ModelCall | undefined {
    const call = this.#calls.get(runId);
    this.#calls.delete(runId);
    return call;
  }
}
