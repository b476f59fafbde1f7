import {
  generateText,
  streamText,
  ToolLoopAgent,
  wrapLanguageModel,
  type LanguageModel,
  type LanguageModelMiddleware,
  type ToolSet as AiToolSet,
} from 'ai';
import type { Agent, AgentContext, ModelCall, ToolCallContext, ToolFunction, ToolSet } from '../../agent.js';
import { OaoError } from '../../errors.js';
import type { RunBridge } from '../langchain/runBridge.js';
import { checkName, checkSteps, gatedAgent, type LoopStepMode } from '../shared/gatedAgent.js';
import { toolTimer, type ToolTimeoutOptions, type ToolTimer } from '../shared/toolTimeouts.js';

type LanguageModelV3 = Parameters<typeof wrapLanguageModel>[0]['model'];
type WrapGenerate = NonNullable<LanguageModelMiddleware['wrapGenerate']>;
type GenerateResult = Awaited<ReturnType<WrapGenerate>>;
type WrapStream = NonNullable<LanguageModelMiddleware['wrapStream']>;
type StreamResult = Awaited<ReturnType<WrapStream>>;
type StreamPart = StreamResult['stream'] extends ReadableStream<infer P> ? P : never;
type GenerateTextOptions = Parameters<typeof generateText>[0];

/**
 * The settings of a `generateText` / `streamText` call, without its prompt (the run's task is the
 * prompt) and its `abortSignal` (the run's signal is).
 */
export type AiSdkSettings = Omit<GenerateTextOptions, 'prompt' | 'messages' | 'abortSignal'> & { readonly model: LanguageModel };

/** The SDK's `ToolLoopAgent` (exported as `Experimental_Agent` too), or a subclass of it. */
export interface ToolLoopAgentLike {
  readonly version: 'agent-v1';
  readonly tools: AiToolSet;
  generate(options: any): PromiseLike<unknown>;
  stream(options: any): PromiseLike<unknown>;
}

export interface AiSdkAgentOptions extends ToolTimeoutOptions {
  /** The agent's name in reports and events. @default the agent's `id`, else the model's id */
  readonly name?: string;
  /** Run with `streamText` (or `agent.stream()`) instead of `generateText` (`agent.generate()`). @default false */
  readonly stream?: boolean;
  /**
   * `'modelCall'`: each model call of the loop is one OAO step: the loop runs once across the run's
   * steps, and `maxSteps` bounds its model turns. `'run'`: each step runs the whole loop.
   * @default 'modelCall'
   */
  readonly steps?: LoopStepMode;
  /** Maps the SDK's final result to the run's output. @default the result's `text` */
  readonly output?: (result: AiSdkResult) => unknown;
}

/** What `output` receives: the result of `generateText`, or of `streamText` with its promises resolved. */
export interface AiSdkResult {
  readonly text: string;
  readonly steps: readonly unknown[];
  readonly finishReason: string;
  readonly totalUsage: unknown;
  readonly response: unknown;
  readonly output?: unknown;
}

/** An OAO agent made from an AI SDK agent. Its `tools` are the bodies of the SDK tools it runs. */
export interface AiSdkAgent extends Agent {
  readonly name: string;
  readonly tools: ToolSet;
}

/**
 * Governs a Vercel AI SDK agent: a `generateText` / `streamText` call's settings, or a
 * `ToolLoopAgent`. Its model is wrapped with `wrapLanguageModel` middleware that opens a governed
 * model call before each request (refused once the token budget is spent, the provider never
 * contacted), records the response and meters its usage; its tools' `execute` go through the run's
 * policy before their body runs; the run's signal is the call's `abortSignal`, so it reaches the
 * model request and every running tool. By default each model call is one OAO step.
 *
 * @example
 * ```ts
 * import { openai } from '@ai-sdk/openai';
 * import { fromAiSdk } from 'open-agent-orchestrator/ai-sdk';
 * const agent = fromAiSdk({ model: openai('gpt-4o-mini'), tools: { weather }, stopWhen: stepCountIs(5) });
 * const report = await orch.run({ agent, task: 'Do I need an umbrella in Lisbon?' });
 * ```
 */
export function fromAiSdk(target: AiSdkSettings | ToolLoopAgentLike, options: AiSdkAgentOptions = {}): AiSdkAgent {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const steps = checkSteps(options.steps);
  const stream = options.stream ?? false;
  if (typeof stream !== 'boolean') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected stream to be a boolean, got ${typeof stream}`, { details: { field: 'stream' } });
  }
  if (options.output !== undefined && typeof options.output !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected output to be a function, got ${typeof options.output}`, { details: { field: 'output' } });
  }
  const timer = toolTimer(options);
  const output = options.output ?? ((result: AiSdkResult) => result.text);

  if (isToolLoopAgent(target)) {
    const settings = (target as unknown as { settings: Record<string, unknown> & { model: LanguageModel; tools?: AiToolSet; id?: string } }).settings;
    const model = checkModel(settings.model);
    const aiTools = settings.tools ?? {};
    return gatedAgent<AiSdkResult>({
      name: checkName(options.name, settings.id ?? model.modelId),
      tools: toolBodies(aiTools, timer),
      steps,
      start: async (input, bridge, signal) => {
        const governor = new RunGovernor(bridge);
        const prepareCall = settings.prepareCall as ((args: Record<string, unknown>) => unknown) | undefined;
        const governed = new ToolLoopAgent({
          ...(settings as object),
          prepareCall: async (args: Record<string, unknown>) => {
            const prepared = ((await prepareCall?.(args)) ?? args) as Record<string, unknown>;
            return {
              ...prepared,
              model: governor.model(prepared.model as LanguageModel),
              tools: governor.tools(prepared.tools as AiToolSet | undefined),
              prepareStep: governor.prepareStep(prepared.prepareStep),
            };
          },
        } as never);
        const call = { ...promptOf(input), abortSignal: signal };
        return stream ? settle(await governed.stream(call as never)) : (governed.generate(call as never));
      },
      output,
    });
  }

  if (typeof target !== 'object' || target === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected generateText settings ({ model, tools, ... }) or a ToolLoopAgent, got ${target === null ? 'null' : typeof target}`, {
      details: { field: 'agent' },
    });
  }
  const model = checkModel(target.model);
  const aiTools = (target.tools ?? {});
  return gatedAgent<AiSdkResult>({
    name: checkName(options.name, model.modelId),
    tools: toolBodies(aiTools, timer),
    steps,
    start: async (input, bridge, signal) => {
      const governor = new RunGovernor(bridge);
      const call = {
        ...(target as object),
        ...promptOf(input),
        model: governor.model(model),
        tools: governor.tools(aiTools),
        prepareStep: governor.prepareStep(target.prepareStep),
        abortSignal: signal,
      };
      return stream ? settle(streamText(call as never)) : (generateText(call as never));
    },
    output,
  });
}

/**
 * A model whose every call goes through an agent's context: metered, gated before it is sent,
 * recorded, and served from the log on verify-replay. For agents that call the AI SDK themselves.
 *
 * @example
 * ```ts
 * const agent = {
 *   async invoke(question: string, ctx: AgentContext) {
 *     const { text } = await generateText({ model: governedModel(model, ctx), prompt: question, abortSignal: ctx.signal });
 *     return text;
 *   },
 * };
 * ```
 */
export function governedModel(model: LanguageModel, ctx: AgentContext): LanguageModelV3 {
  return wrapLanguageModel({ model: checkModel(model), middleware: governingMiddleware(contextBridge(ctx)) });
}

function contextBridge(ctx: AgentContext): Pick<RunBridge, 'openModelCall' | 'modelCallClosed'> {
  return {
    openModelCall: (request) =>
      ctx.beginModelCall({
        ...(request.model === undefined ? {} : { model: request.model }),
        input: request.input,
        ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
      }),
    modelCallClosed: () => {},
  };
}

function isToolLoopAgent(value: unknown): value is ToolLoopAgentLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { version?: unknown }).version === 'agent-v1' &&
    typeof (value as { settings?: unknown }).settings === 'object'
  );
}

function checkModel(model: unknown): LanguageModelV3 {
  if (typeof model === 'object' && model !== null && (model as { specificationVersion?: unknown }).specificationVersion === 'v3') {
    return model as LanguageModelV3;
  }
  const what = typeof model === 'string' ? `the model id ${JSON.stringify(model)}` : model === null ? 'null' : typeof model;
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected a language model object of the AI SDK 6 (specificationVersion "v3", e.g. openai("gpt-4o-mini")), got ${what}`, {
    details: { field: 'model' },
  });
}

/** The task as the SDK's prompt: a string is the user's prompt, an array the messages, an object is spread. */
function promptOf(task: unknown): Record<string, unknown> {
  if (typeof task === 'string') return { prompt: task };
  if (Array.isArray(task)) return { messages: task };
  if (typeof task === 'object' && task !== null) return task as Record<string, unknown>;
  return { prompt: JSON.stringify(task) };
}

/** Consumes a `streamText` result and resolves what `generateText` would have returned. */
async function settle(result: unknown): Promise<AiSdkResult> {
  const streamed = result as {
    fullStream: AsyncIterable<{ type: string; error?: unknown }>;
    text: PromiseLike<string>;
    steps: PromiseLike<unknown[]>;
    finishReason: PromiseLike<string>;
    totalUsage: PromiseLike<unknown>;
    response: PromiseLike<unknown>;
  };
  let failure: { error: unknown } | undefined;
  for await (const part of streamed.fullStream) {
    if (part.type === 'error' && failure === undefined) failure = { error: part.error };
  }
  if (failure !== undefined) throw failure.error;
  const [text, steps, finishReason, totalUsage, response] = await Promise.all([
    streamed.text,
    streamed.steps,
    streamed.finishReason,
    streamed.totalUsage,
    streamed.response,
  ]);
  return { text, steps, finishReason, totalUsage, response };
}

// ---- tools ----------------------------------------------------------------------------------

/** What the SDK passes to `execute` besides the input, kept for the body by the input's identity. */
const executeOptions = new WeakMap<object, Record<string, unknown>>();

/** The run's tool bodies: each runs the original `execute` with the governed call's signal. */
function toolBodies(tools: AiToolSet, timer: ToolTimer): ToolSet {
  if (typeof tools !== 'object' || tools === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected tools to be an object of AI SDK tools, got ${typeof tools}`, { details: { field: 'tools' } });
  }
  const set: Record<string, ToolFunction> = {};
  for (const [name, tool] of Object.entries(tools)) {
    const execute = (tool as { execute?: unknown }).execute;
    if (typeof execute !== 'function') continue; // a tool the client answers: nothing runs here
    set[name] = (args: unknown, call: ToolCallContext) =>
      timer.run(name, call, async (signal) => {
        const given = typeof args === 'object' && args !== null ? executeOptions.get(args) : undefined;
        const result: unknown = await (execute as (input: unknown, options: unknown) => unknown)(args, {
          toolCallId: call.callId,
          messages: [],
          ...given,
          abortSignal: signal,
        });
        return lastOf(result);
      });
  }
  return Object.freeze(set);
}

/** A tool whose `execute` streams (an async iterable) gives its last value, as the SDK does. */
async function lastOf(result: unknown): Promise<unknown> {
  if (typeof result !== 'object' || result === null || typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') return result;
  let last: unknown;
  for await (const value of result as AsyncIterable<unknown>) last = value;
  return last;
}

/** The governed model and tools of one run of the loop, all reaching the run through `bridge`. */
class RunGovernor {
  readonly #bridge: RunBridge;
  readonly #models = new WeakMap<object, LanguageModelV3>();

  constructor(bridge: RunBridge) {
    this.#bridge = bridge;
  }

  model(model: LanguageModel): LanguageModelV3 {
    const checked = checkModel(model);
    let governed = this.#models.get(checked);
    if (governed === undefined) {
      governed = wrapLanguageModel({ model: checked, middleware: governingMiddleware(this.#bridge) });
      this.#models.set(checked, governed);
      this.#models.set(governed, governed);
    }
    return governed;
  }

  tools(tools: AiToolSet | undefined): AiToolSet | undefined {
    if (tools === undefined) return undefined;
    const governed: Record<string, unknown> = {};
    for (const [name, tool] of Object.entries(tools)) {
      if (typeof (tool as { execute?: unknown }).execute !== 'function') {
        governed[name] = tool;
        continue;
      }
      governed[name] = {
        ...tool,
        execute: (input: unknown, sdkOptions: Record<string, unknown>) => {
          if (typeof input === 'object' && input !== null) {
            const { abortSignal: _signal, ...rest } = sdkOptions;
            executeOptions.set(input, rest);
          }
          return this.#bridge.callTool(name, input);
        },
      };
    }
    return governed as AiToolSet;
  }

  /** A `prepareStep` whose model (when it picks one) is governed too. */
  prepareStep(prepareStep: unknown): ((options: unknown) => Promise<unknown>) | undefined {
    if (typeof prepareStep !== 'function') return undefined;
    return async (options: unknown) => {
      const prepared = (await (prepareStep as (options: unknown) => unknown)(options)) as { model?: LanguageModel } | undefined;
      if (prepared?.model === undefined) return prepared;
      return { ...prepared, model: this.model(prepared.model) };
    };
  }
}

// ---- model calls ----------------------------------------------------------------------------

interface RecordedUsage {
  readonly inputTokens: { readonly total?: number | undefined };
  readonly outputTokens: { readonly total?: number | undefined };
}

/** What a model call's MODEL_RESULT records: enough to serve the call again on verify-replay. */
interface RecordedResponse {
  readonly content: readonly Record<string, unknown>[];
  readonly finishReason: unknown;
  readonly usage: RecordedUsage;
}

function meteredUsage(usage: RecordedUsage | undefined): { input: number; output: number } | null {
  if (usage === undefined) return null;
  return { input: usage.inputTokens.total ?? 0, output: usage.outputTokens.total ?? 0 };
}

function textOf(content: readonly Record<string, unknown>[]): string {
  return content
    .filter((part) => part.type === 'text')
    .map((part) => String(part.text))
    .join('');
}

function recordedOf(call: ModelCall): RecordedResponse {
  const replayed = call.replayed;
  if (replayed === undefined) throw new Error('not a replayed call');
  if (!replayed.ok) throw Object.assign(new Error(replayed.error?.message ?? 'model call failed'), { name: 'ReplayedModelError' });
  return replayed.output as RecordedResponse;
}

function replayedUsage(call: ModelCall): { input: number; output: number } | null {
  const usage = call.replayed?.usage;
  return usage == null ? null : { input: usage.input, output: usage.output };
}

/** The recorded response verify-replay serves for `call`; a damaged one fails the call and is thrown. */
function replayedRecord(call: ModelCall, bridge: Pick<RunBridge, 'modelCallClosed'>): RecordedResponse {
  try {
    return recordedOf(call);
  } catch (error) {
    call.fail(error, replayedUsage(call));
    bridge.modelCallClosed(undefined);
    throw error;
  }
}

function governingMiddleware(bridge: Pick<RunBridge, 'openModelCall' | 'modelCallClosed'>): LanguageModelMiddleware {
  const open = async (model: { modelId: string }, prompt: unknown, maxOutputTokens: number | undefined): Promise<ModelCall> => {
    // The call's own cap on output tokens is what it reserves (the policy's default otherwise).
    const call = await bridge.openModelCall({ model: model.modelId, input: prompt, ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }) });
    try {
      // Write-ahead with an asynchronous store: the model is called once MODEL_CALL is durable.
      await call.ready;
    } catch (error) {
      bridge.modelCallClosed(undefined);
      throw error;
    }
    return call;
  };
  return {
    specificationVersion: 'v3',
    wrapGenerate: async ({ doGenerate, params, model }) => {
      const call = await open(model, params.prompt, params.maxOutputTokens);
      if (call.replayed !== undefined) {
        const recorded = replayedRecord(call, bridge);
        call.end(recorded, replayedUsage(call));
        bridge.modelCallClosed(textOf(recorded.content));
        return { content: recorded.content, finishReason: recorded.finishReason, usage: recorded.usage, warnings: [] } as unknown as GenerateResult;
      }
      let result: GenerateResult;
      try {
        result = await doGenerate();
      } catch (error) {
        call.fail(error);
        bridge.modelCallClosed(undefined);
        throw error;
      }
      const content = result.content as unknown as Record<string, unknown>[];
      call.end({ content, finishReason: result.finishReason, usage: result.usage } satisfies RecordedResponse, meteredUsage(result.usage));
      bridge.modelCallClosed(textOf(content));
      return result;
    },
    wrapStream: async ({ doStream, params, model }) => {
      const call = await open(model, params.prompt, params.maxOutputTokens);
      if (call.replayed !== undefined) {
        const recorded = replayedRecord(call, bridge);
        return { stream: replayStream(recorded).pipeThrough(meteringTransform(call, bridge, recorded)) };
      }
      let result: StreamResult;
      try {
        result = await doStream();
      } catch (error) {
        call.fail(error);
        bridge.modelCallClosed(undefined);
        throw error;
      }
      return { ...result, stream: result.stream.pipeThrough(meteringTransform(call, bridge, undefined)) };
    },
  };
}

/**
 * Passes a streamed response on as it comes, except its tool calls: those are held until the
 * response has ended and been metered, so (as for a generated response) usage that crosses the
 * budget ends the run before any tool of that turn starts, and the call's MODEL_RESULT always
 * comes before the TOOL_CALLs it asked for, live and on verify-replay alike.
 */
function meteringTransform(
  call: ModelCall,
  bridge: Pick<RunBridge, 'modelCallClosed'>,
  replayed: RecordedResponse | undefined,
): TransformStream<StreamPart, StreamPart> {
  const collector = new StreamCollector();
  const held: StreamPart[] = [];
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    if (replayed !== undefined) {
      call.end(replayed, replayedUsage(call));
      bridge.modelCallClosed(textOf(replayed.content));
      return;
    }
    if (collector.error !== undefined) {
      call.fail(collector.error, meteredUsage(collector.usage));
      bridge.modelCallClosed(undefined);
      return;
    }
    const recorded = collector.recorded();
    call.end(recorded, meteredUsage(collector.usage));
    bridge.modelCallClosed(textOf(recorded.content));
  };
  const release = (controller: TransformStreamDefaultController<StreamPart>): void => {
    for (const part of held.splice(0)) controller.enqueue(part);
  };
  return new TransformStream<StreamPart, StreamPart>({
    transform(part, controller) {
      const record = part as unknown as Record<string, unknown>;
      collector.add(record);
      if (record.type === 'tool-call') {
        held.push(part);
        return;
      }
      if (record.type === 'finish') {
        end();
        // The run may have ended here (usage past the budget): then its signal stops the SDK.
        if (call.signal.aborted) return;
        release(controller);
      }
      controller.enqueue(part);
    },
    flush(controller) {
      end();
      if (!call.signal.aborted) release(controller);
    },
  });
}

/** Gathers a streamed response into the content a generate call would have answered. */
class StreamCollector {
  readonly #content: Record<string, unknown>[] = [];
  readonly #open = new Map<string, Record<string, unknown>>();
  finishReason: unknown;
  usage: RecordedUsage | undefined;
  error: unknown;

  add(part: Record<string, unknown>): void {
    const type = part.type as string;
    const id = String(part.id);
    if (type === 'text-start' || type === 'reasoning-start') {
      const item = { type: type === 'text-start' ? 'text' : 'reasoning', text: '' };
      this.#open.set(`${item.type}:${id}`, item);
      this.#content.push(item);
    } else if (type === 'text-delta' || type === 'reasoning-delta') {
      const item = this.#open.get(`${type === 'text-delta' ? 'text' : 'reasoning'}:${id}`);
      if (item !== undefined) item.text = `${String(item.text)}${String(part.delta)}`;
    } else if (type === 'tool-call' || type === 'tool-result' || type === 'source' || type === 'file') {
      this.#content.push({ ...part });
    } else if (type === 'finish') {
      this.finishReason = part.finishReason;
      this.usage = part.usage as RecordedUsage;
    } else if (type === 'error') {
      this.error ??= part.error;
    }
  }

  recorded(): RecordedResponse {
    return {
      content: this.#content,
      finishReason: this.finishReason,
      usage: this.usage ?? { inputTokens: {}, outputTokens: {} },
    };
  }
}

/** The stream of a recorded response, served on verify-replay instead of calling the model. */
function replayStream(recorded: RecordedResponse): ReadableStream<StreamPart> {
  const parts: Record<string, unknown>[] = [{ type: 'stream-start', warnings: [] }];
  recorded.content.forEach((item, index) => {
    const id = String(index);
    if (item.type === 'text' || item.type === 'reasoning') {
      parts.push({ type: `${item.type}-start`, id }, { type: `${item.type}-delta`, id, delta: item.text }, { type: `${item.type}-end`, id });
    } else {
      parts.push(item);
    }
  });
  parts.push({ type: 'finish', finishReason: recorded.finishReason, usage: recorded.usage });
  return new ReadableStream<StreamPart>({
    start(controller) {
      for (const part of parts) controller.enqueue(part as unknown as StreamPart);
      controller.close();
    },
  });
}
