import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ToolCallLLM,
  type BaseToolWithCall,
  type ChatMessage,
  type ChatResponse,
  type ChatResponseChunk,
  type LLM,
  type LLMChatParamsNonStreaming,
  type LLMChatParamsStreaming,
  type LLMMetadata,
  type MessageContent,
} from '@llamaindex/core/llms';
import { AgentWorkflow, multiAgent, stopAgentEvent, type AgentResultData, type BaseWorkflowAgent } from '@llamaindex/workflow';
import type { Agent, ModelCall, ToolCallContext, ToolFunction, ToolSet } from '../../agent.js';
import { OaoError } from '../../errors.js';
import type { RunBridge } from '../langchain/runBridge.js';
import { checkName, checkSteps, gatedAgent, type LoopStepMode } from '../shared/gatedAgent.js';
import { isGovernanceError } from '../shared/governanceErrors.js';
import { toolTimer, type ToolTimeoutOptions, type ToolTimer } from '../shared/toolTimeouts.js';
import { untilAborted } from '../shared/untilAborted.js';

/** Token counts read from an LLM response's `raw` (either may be missing from one chunk). */
export interface LlamaIndexUsage {
  readonly input?: number;
  readonly output?: number;
}

/** What `output` receives: the workflow's stop event data, without its (non-JSON) state. */
export interface LlamaIndexResult {
  /** The final answer's content. */
  readonly result: MessageContent;
  /** The final assistant message. */
  readonly message: ChatMessage;
  /** The structured answer, when `responseFormat` is set. */
  readonly object?: unknown;
}

export interface LlamaIndexAgentOptions extends ToolTimeoutOptions {
  /** The agent's name in reports and events. @default the root agent's `name` */
  readonly name?: string;
  /**
   * `'modelCall'`: each LLM call is one OAO step (a handoff ends a step: the next agent's first
   * LLM call is the next one), so `maxSteps` bounds the whole conversation. `'run'`: each step is
   * one whole workflow run.
   * @default 'modelCall'
   */
  readonly steps?: LoopStepMode;
  /**
   * Reads the token usage of a response from its `raw` (each chunk's `raw` when streamed; the last
   * count seen wins). A response with no usage is charged its whole reservation.
   * @default reads `usage` / `usageMetadata` in the OpenAI, Anthropic and Gemini shapes
   */
  readonly usage?: (raw: unknown) => LlamaIndexUsage | undefined;
  /** A zod schema for a structured final answer (the workflow's `responseFormat`). */
  readonly responseFormat?: unknown;
  /** Maps the workflow's result to the run's output. @default the structured `object` if any, else the answer's text */
  readonly output?: (result: LlamaIndexResult) => unknown;
}

/** An OAO agent made from a LlamaIndex.TS agent workflow. Its `tools` are the bodies of the workflow's tools. */
export interface LlamaIndexAgent extends Agent {
  readonly name: string;
  readonly tools: ToolSet;
}

/** The name of the tool `AgentWorkflow` adds to each agent of a multi-agent workflow for handoffs. */
const HANDOFF_TOOL = 'handOff';

/** The signal of the governed model or tool call running in the current async context. */
const callSignals = new AsyncLocalStorage<AbortSignal>();

/**
 * The AbortSignal of the governed LLM or tool call running now, for code the workflow calls
 * (a tool's `execute`, an LLM's `chat`): it aborts when the call must stop (the run is cancelled,
 * times out or breaks a limit, or the tool's own time limit passes). LlamaIndex's `tool()` and
 * `LLM.chat()` have no signal parameter, so this is how one reaches them. Undefined outside a
 * governed call.
 *
 * @example
 * ```ts
 * const fetchPage = tool({
 *   name: 'fetch_page', description: 'Fetches a page', parameters: z.object({ url: z.string() }),
 *   execute: async ({ url }) => (await fetch(url, { signal: callSignal() })).text(),
 * });
 * ```
 */
export function callSignal(): AbortSignal | undefined {
  return callSignals.getStore();
}

/**
 * Governs a LlamaIndex.TS agent workflow (`agent({ llm, tools })`, `multiAgent({ agents, rootAgent })`,
 * an `AgentWorkflow`, or a single `FunctionAgent`). Each run works on a governed copy: every agent's
 * LLM is wrapped so that each call is opened through the run first (reserved against the token
 * budget and refused before it is sent when that does not fit), recorded and metered from the
 * response's usage; every agent's tools go through the run's policy before their body runs; the
 * call's signal reaches the LLM (`params.signal`, and {@link callSignal}) and the tools
 * ({@link callSignal}). By default each LLM call is one OAO step, so a handoff counts as a step.
 *
 * @example
 * ```ts
 * import { agent } from '@llamaindex/workflow';
 * import { fromLlamaIndex } from 'open-agent-orchestrator/llamaindex';
 * const workflow = agent({ name: 'researcher', llm, tools: [search] });
 * const report = await orch.run({ agent: fromLlamaIndex(workflow), task: 'What is OAO?' });
 * ```
 */
export function fromLlamaIndex(target: AgentWorkflow | BaseWorkflowAgent, options: LlamaIndexAgentOptions = {}): LlamaIndexAgent {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const source = workflowSource(target);
  const steps = checkSteps(options.steps);
  for (const field of ['usage', 'output'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be a function, got ${typeof options[field]}`, { details: { field } });
    }
  }
  const timer = toolTimer(options);
  const readUsage = options.usage ?? defaultUsage;
  const output = options.output ?? ((result: LlamaIndexResult) => result.object ?? contentText(result.result));
  const responseFormat = options.responseFormat;

  return gatedAgent<LlamaIndexResult>({
    name: checkName(options.name, source.rootAgentName),
    tools: toolBodies(source.agents, timer),
    steps,
    start: (input, bridge, signal) => new RunGovernor(bridge, signal, readUsage).run(source, input, responseFormat),
    output,
  });
}

// ---- the workflow ---------------------------------------------------------------------------

/** What a governed copy of a workflow is built from. */
interface WorkflowSource {
  readonly agents: readonly BaseWorkflowAgent[];
  readonly rootAgentName: string;
  /** The workflow's own settings, passed on to each copy. */
  readonly settings: { readonly memory?: unknown; readonly verbose?: boolean; readonly logger?: unknown };
}

function isWorkflowAgent(value: unknown): value is BaseWorkflowAgent {
  const agent = value as Partial<BaseWorkflowAgent> | null;
  return (
    typeof agent === 'object' &&
    agent !== null &&
    typeof agent.name === 'string' &&
    typeof agent.takeStep === 'function' &&
    Array.isArray(agent.tools) &&
    typeof agent.llm === 'object' &&
    agent.llm !== null
  );
}

/** An `AgentWorkflow`, also one from another copy of the package (where `instanceof` fails). */
function isAgentWorkflow(value: unknown): value is AgentWorkflow {
  if (value instanceof AgentWorkflow) return true;
  const workflow = value as { getAgents?: unknown; runStream?: unknown; rootAgentName?: unknown } | null;
  return typeof workflow === 'object' && workflow !== null && typeof workflow.getAgents === 'function' && typeof workflow.runStream === 'function' && typeof workflow.rootAgentName === 'string';
}

function workflowSource(target: unknown): WorkflowSource {
  if (isAgentWorkflow(target)) {
    // The workflow keeps its root agent and settings private; a copy needs them.
    const internals = target as unknown as { rootAgentName: string; initialMemory?: unknown; verbose?: boolean; logger?: unknown };
    return {
      agents: target.getAgents(),
      rootAgentName: internals.rootAgentName,
      settings: { memory: internals.initialMemory, verbose: internals.verbose, logger: internals.logger },
    };
  }
  if (isWorkflowAgent(target)) return { agents: [target], rootAgentName: target.name, settings: {} };
  throw new OaoError(
    'OAO_ERR_INVALID_ARGUMENT',
    `Expected an AgentWorkflow of @llamaindex/workflow (agent(), multiAgent()) or a FunctionAgent, got ${target === null ? 'null' : typeof target}`,
    { details: { field: 'agent' } },
  );
}

/** An agent's tools, without the handoff tool a multi-agent workflow adds (each copy adds its own). */
function ownTools(agent: BaseWorkflowAgent, agentCount: number): BaseToolWithCall[] {
  return agent.tools.filter((tool) => !(agentCount > 1 && tool.metadata.name === HANDOFF_TOOL));
}

/** The run's tool bodies: the tools of every agent, each run under its time limit with its call's signal. */
function toolBodies(agents: readonly BaseWorkflowAgent[], timer: ToolTimer): ToolSet {
  const set: Record<string, ToolFunction> = {};
  const owners = new Map<string, BaseToolWithCall>();
  for (const agent of agents) {
    for (const tool of ownTools(agent, agents.length)) {
      const name = tool.metadata.name;
      if (typeof tool.call !== 'function') continue; // a tool without an implementation runs nowhere here
      const owner = owners.get(name);
      if (owner !== undefined && owner !== tool) {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Two different tools are named "${name}" among the workflow's agents: tool names must be unique`, {
          details: { field: 'tools', tool: name },
        });
      }
      owners.set(name, tool);
      set[name] = (args: unknown, call: ToolCallContext) => timer.run(name, call, (signal) => callSignals.run(signal, () => tool.call(args)));
    }
  }
  return Object.freeze(set);
}

/** What the workflow's input is made of: the task as the user's message, or `{ userInput, chatHistory }`. */
function workflowInput(task: unknown): { userInput?: MessageContent; chatHistory?: ChatMessage[] } {
  if (typeof task === 'string') {
    if (task.length === 0) throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected the task to be a non-empty message', { details: { field: 'task' } });
    return { userInput: task };
  }
  if (typeof task === 'object' && task !== null && !Array.isArray(task) && ('userInput' in task || 'chatHistory' in task)) {
    const { userInput, chatHistory } = task as { userInput?: unknown; chatHistory?: unknown };
    if (chatHistory !== undefined && !Array.isArray(chatHistory)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected chatHistory to be an array of chat messages', { details: { field: 'chatHistory' } });
    }
    const last = (chatHistory as ChatMessage[] | undefined)?.at(-1);
    if ((userInput === undefined || userInput === '') && last?.role !== 'user') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected a userInput, or a chatHistory whose last message is the user’s', { details: { field: 'task' } });
    }
    return {
      ...(userInput === undefined ? {} : { userInput: userInput as MessageContent }),
      ...(chatHistory === undefined ? {} : { chatHistory: chatHistory as ChatMessage[] }),
    };
  }
  return { userInput: JSON.stringify(task) };
}

/** A promise that never settles: what the workflow gets once the run has stopped, so it goes no further. */
const never = <T>(): Promise<T> => new Promise<T>(() => {});

const noop = (): void => {};

/**
 * One governed run of a workflow. LlamaIndex's workflow engine does not pass a failing step on to
 * `run()` (the run stays pending and the rejection goes unhandled), so the governed agents catch
 * every failure of their steps and hand it to the run here instead, and leave the workflow waiting;
 * the run ends with that failure, or with the run's signal.
 */
class RunGovernor {
  readonly #bridge: RunBridge;
  readonly #signal: AbortSignal;
  readonly #readUsage: (raw: unknown) => LlamaIndexUsage | undefined;
  readonly #failed: Promise<never>;
  #reject: (error: unknown) => void = noop;

  constructor(bridge: RunBridge, signal: AbortSignal, readUsage: (raw: unknown) => LlamaIndexUsage | undefined) {
    this.#bridge = bridge;
    this.#signal = signal;
    this.#readUsage = readUsage;
    this.#failed = new Promise<never>((_resolve, reject) => (this.#reject = reject));
    this.#failed.catch(noop);
  }

  /** Ends the run with `error` (the first failure wins). */
  fail(error: unknown): void {
    this.#reject(error);
  }

  async run(source: WorkflowSource, task: unknown, responseFormat: unknown): Promise<LlamaIndexResult> {
    const { userInput, chatHistory } = workflowInput(task);
    const signal = this.#signal;
    signal.throwIfAborted();
    const onAbort = (): void => this.fail(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const workflow = this.#copy(source);
    const params = {
      ...(chatHistory === undefined ? {} : { chatHistory }),
      ...(responseFormat === undefined ? {} : { responseFormat: responseFormat as never }),
    };
    const reader = workflow.runStream(userInput ?? '', params).getReader();
    try {
      let last: unknown;
      for (;;) {
        const next = await Promise.race([reader.read(), this.#failed]);
        if (next.done) break;
        last = next.value;
      }
      if (!stopAgentEvent.include(last)) throw new Error('The agent workflow ended without its stop event');
      const { result, message, object } = last.data as AgentResultData<unknown>;
      return { result, message, ...(object === undefined ? {} : { object }) };
    } finally {
      signal.removeEventListener('abort', onAbort);
      reader.cancel().catch(noop);
    }
  }

  /** A workflow like the source's whose agents use governed LLMs and tools. */
  #copy(source: WorkflowSource): AgentWorkflow {
    const agents = source.agents.map((agent) => this.#agent(agent, source.agents.length));
    const root = agents.find((agent) => agent.name === source.rootAgentName) as BaseWorkflowAgent;
    const { memory, verbose, logger } = source.settings;
    return multiAgent({
      agents,
      rootAgent: root,
      ...(memory === undefined ? {} : { memory: memory as never }),
      ...(verbose === undefined ? {} : { verbose }),
      ...(logger === undefined ? {} : { logger: logger as never }),
    });
  }

  /** A copy of `agent` (its prototype is the agent) with a governed LLM and tools, whose failures end the run. */
  #agent(agent: BaseWorkflowAgent, agentCount: number): BaseWorkflowAgent {
    const onFailure = (error: unknown): Promise<never> => {
      this.fail(error);
      return never();
    };
    const guarded = (key: 'takeStep' | 'handleToolCallResults' | 'finalize' | 'getStructuredOutput'): PropertyDescriptor => {
      const method = Reflect.get(agent, key) as (...args: unknown[]) => Promise<unknown>;
      return {
        value: async function (this: BaseWorkflowAgent, ...args: unknown[]): Promise<unknown> {
          try {
            return await method.apply(this, args);
          } catch (error) {
            return onFailure(error);
          }
        },
      };
    };
    return Object.create(agent, {
      llm: { value: new GovernedLLM(agent.llm, this.#bridge, this.#readUsage), enumerable: true },
      tools: { value: ownTools(agent, agentCount).map((tool) => this.#tool(tool)), enumerable: true, writable: true },
      takeStep: guarded('takeStep'),
      handleToolCallResults: guarded('handleToolCallResults'),
      finalize: guarded('finalize'),
      getStructuredOutput: guarded('getStructuredOutput'),
    }) as BaseWorkflowAgent;
  }

  #tool(tool: BaseToolWithCall): BaseToolWithCall {
    if (typeof tool.call !== 'function') return tool;
    const name = tool.metadata.name;
    return {
      metadata: tool.metadata,
      call: async (input: unknown) => {
        try {
          return (await this.#bridge.callTool(name, input)) as never;
        } catch (error) {
          // A refusal, a limit or a stop ends the run; any other failure is the model's to handle.
          if (!isGovernanceError(error)) throw error;
          this.fail(error);
          return never();
        }
      },
    };
  }
}

// ---- model calls ----------------------------------------------------------------------------

/** What a model call's MODEL_RESULT records: enough to serve the call again on verify-replay. */
interface RecordedResponse {
  readonly message: ChatMessage;
}

type ChatParams = LLMChatParamsStreaming | LLMChatParamsNonStreaming;

function replayedUsage(call: ModelCall): { input: number; output: number } | null {
  const usage = call.replayed?.usage;
  return usage == null ? null : { input: usage.input, output: usage.output };
}

function replayedOf(call: ModelCall): RecordedResponse {
  const replayed = call.replayed as NonNullable<ModelCall['replayed']>;
  if (!replayed.ok) throw Object.assign(new Error(replayed.error?.message ?? 'model call failed'), { name: 'ReplayedModelError' });
  return replayed.output as RecordedResponse;
}


/** Gathers a streamed response into the message a non-streamed call would have answered. */
class ResponseCollector {
  #text = '';
  readonly #toolCalls = new Map<string, unknown>();
  #input: number | undefined;
  #output: number | undefined;
  readonly #readUsage: (raw: unknown) => LlamaIndexUsage | undefined;

  constructor(readUsage: (raw: unknown) => LlamaIndexUsage | undefined) {
    this.#readUsage = readUsage;
  }

  add(chunk: ChatResponseChunk): void {
    this.#text += chunk.delta;
    const calls = (chunk.options as { toolCall?: unknown } | undefined)?.toolCall;
    if (Array.isArray(calls)) for (const call of calls as { id: string }[]) this.#toolCalls.set(call.id, call);
    this.usage(chunk.raw);
  }

  usage(raw: unknown): void {
    const usage = this.#readUsage(raw);
    if (usage?.input !== undefined) this.#input = usage.input;
    if (usage?.output !== undefined) this.#output = usage.output;
  }

  get text(): string {
    return this.#text;
  }

  metered(): { input: number; output: number } | null {
    if (this.#input === undefined && this.#output === undefined) return null;
    return { input: this.#input ?? 0, output: this.#output ?? 0 };
  }

  message(): ChatMessage {
    return {
      role: 'assistant',
      content: this.#text,
      ...(this.#toolCalls.size === 0 ? {} : { options: { toolCall: [...this.#toolCalls.values()] } }),
    };
  }
}

/**
 * The LLM the governed agents use: each `chat()` (and so `complete()` and `exec()`) is opened
 * through the run before the wrapped LLM is asked, recorded and metered when it answers, and served
 * from the log on verify-replay.
 */
class GovernedLLM extends ToolCallLLM {
  readonly supportToolCall = true;
  readonly #inner: LLM;
  readonly #bridge: RunBridge;
  readonly #readUsage: (raw: unknown) => LlamaIndexUsage | undefined;

  constructor(inner: LLM, bridge: RunBridge, readUsage: (raw: unknown) => LlamaIndexUsage | undefined) {
    super();
    this.#inner = inner;
    this.#bridge = bridge;
    this.#readUsage = readUsage;
  }

  get metadata(): LLMMetadata {
    return this.#inner.metadata;
  }

  chat(params: LLMChatParamsStreaming): Promise<AsyncIterable<ChatResponseChunk>>;
  chat(params: LLMChatParamsNonStreaming): Promise<ChatResponse>;
  async chat(params: ChatParams): Promise<AsyncIterable<ChatResponseChunk> | ChatResponse> {
    const call = await this.#open(params);
    if (call.replayed !== undefined) {
      let recorded: RecordedResponse;
      try {
        recorded = replayedOf(call);
      } catch (error) {
        return this.#fail(call, error, replayedUsage(call));
      }
      this.#end(call, recorded, replayedUsage(call));
      if (params.stream !== true) return { message: recorded.message, raw: null };
      const chunk: ChatResponseChunk = { delta: contentText(recorded.message.content), raw: null, ...(recorded.message.options === undefined ? {} : { options: recorded.message.options }) };
      return ReadableStream.from([chunk]);
    }
    const signal = call.signal;
    // LlamaIndex's chat params have no signal: it travels as `signal` (LLMs ignore what they do not read) and as callSignal().
    const request = { ...params, signal } as unknown as ChatParams;
    const inner = this.#inner as { chat(params: ChatParams): Promise<unknown> };
    if (params.stream !== true) {
      const collector = new ResponseCollector(this.#readUsage);
      let response: ChatResponse;
      try {
        response = await untilAborted(callSignals.run(signal, () => inner.chat(request)) as Promise<ChatResponse>, signal);
      } catch (error) {
        return this.#fail(call, error, null);
      }
      collector.usage(response.raw);
      this.#end(call, { message: response.message }, collector.metered());
      return response;
    }
    let stream: AsyncIterable<ChatResponseChunk>;
    try {
      stream = await untilAborted(callSignals.run(signal, () => inner.chat(request)) as Promise<AsyncIterable<ChatResponseChunk>>, signal);
    } catch (error) {
      return this.#fail(call, error, null);
    }
    return this.#metered(call, stream);
  }

  /** Passes the stream on as it comes and meters it when it ends (before the workflow acts on its tool calls). */
  async *#metered(call: ModelCall, stream: AsyncIterable<ChatResponseChunk>): AsyncIterable<ChatResponseChunk> {
    const collector = new ResponseCollector(this.#readUsage);
    const iterator = stream[Symbol.asyncIterator]();
    let settled = false;
    try {
      for (;;) {
        let next: IteratorResult<ChatResponseChunk>;
        try {
          next = await untilAborted(
            callSignals.run(call.signal, () => iterator.next()),
            call.signal,
          );
        } catch (error) {
          settled = true;
          // Closes the wrapped stream where it can (a generator's finally, an SDK stream's request).
          void Promise.resolve(iterator.return?.()).catch(noop);
          return this.#fail(call, error, collector.metered());
        }
        if (next.done) break;
        collector.add(next.value);
        yield next.value;
      }
      settled = true;
      this.#end(call, { message: collector.message() }, collector.metered());
    } finally {
      if (!settled) {
        // The workflow stopped reading (it failed on a chunk): what came so far is the response.
        void Promise.resolve(iterator.return?.()).catch(noop);
        this.#end(call, { message: collector.message() }, collector.metered());
      }
    }
  }

  async #open(params: ChatParams): Promise<ModelCall> {
    const maxTokens = this.#inner.metadata.maxTokens;
    // The LLM's own cap on output tokens is what a call reserves (the policy's default otherwise).
    const call = await this.#bridge.openModelCall({
      model: this.#inner.metadata.model,
      input: params.messages,
      ...(typeof maxTokens === 'number' && Number.isInteger(maxTokens) && maxTokens > 0 ? { maxOutputTokens: maxTokens } : {}),
    });
    try {
      // Write-ahead with an asynchronous store: the LLM is called once MODEL_CALL is durable.
      await call.ready;
    } catch (error) {
      this.#bridge.modelCallClosed(undefined);
      throw error;
    }
    return call;
  }

  #end(call: ModelCall, recorded: RecordedResponse, usage: { input: number; output: number } | null): void {
    call.end(recorded, call.replayed === undefined ? usage : replayedUsage(call));
    this.#bridge.modelCallClosed(contentText(recorded.message.content));
  }

  #fail(call: ModelCall, error: unknown, usage: { input: number; output: number } | null): never {
    call.fail(error, usage);
    this.#bridge.modelCallClosed(undefined);
    throw error;
  }
}

/** The text of a message's content (its text parts, for a multi-part one). */
function contentText(content: MessageContent): string {
  if (typeof content === 'string') return content;
  return content
    .filter((part) => part.type === 'text')
    .map((part) => (part as { text: string }).text)
    .join('');
}

function firstNumber(record: Record<string, unknown>, keys: readonly string[]): number | undefined {
  for (const key of keys) {
    const value = record[key];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  }
  return undefined;
}

/** Usage in the shapes LlamaIndex's provider LLMs leave in `raw`: OpenAI, Anthropic, Gemini. */
function defaultUsage(raw: unknown): LlamaIndexUsage | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const holder = raw as Record<string, unknown>;
  const usage = holder.usage ?? holder.usageMetadata ?? holder.usage_metadata;
  if (typeof usage !== 'object' || usage === null) return undefined;
  const record = usage as Record<string, unknown>;
  const input = firstNumber(record, ['prompt_tokens', 'input_tokens', 'inputTokens', 'promptTokens', 'promptTokenCount']);
  const output = firstNumber(record, ['completion_tokens', 'output_tokens', 'outputTokens', 'completionTokens', 'candidatesTokenCount']);
  if (input === undefined && output === undefined) return undefined;
  return { ...(input === undefined ? {} : { input }), ...(output === undefined ? {} : { output }) };
}
