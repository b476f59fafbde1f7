import {
  Agent as SdkAgent,
  Handoff,
  RunContext,
  Runner,
  Usage,
  type Model,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  type RunConfig,
  type StreamEvent,
} from '@openai/agents';
import type { Agent, ModelCall, ToolCallContext, ToolFunction, ToolSet } from '../../agent.js';
import { OaoError } from '../../errors.js';
import type { RunBridge } from '../langchain/runBridge.js';
import { checkName, checkSteps, gatedAgent, type LoopStepMode } from '../shared/gatedAgent.js';
import { errorText, isGovernanceError } from '../shared/governanceErrors.js';
import { toolTimer, type ToolTimeoutOptions, type ToolTimer } from '../shared/toolTimeouts.js';

/** An OpenAI Agents JS `Agent` (any context and output type). */
export type OpenAIAgentLike = SdkAgent<any, any>;

/** What the adapter asks of a runner's run (for the `runner` option's type). */
export type OpenAIAgentRunner = Pick<Runner, 'run'>;

export interface OpenAIAgentOptions extends ToolTimeoutOptions {
  /** The agent's name in reports and events. @default the agent's `name` */
  readonly name?: string;
  /**
   * `'modelCall'`: each model call is one OAO step (a handoff ends a step: the next agent's first
   * model call is the next one): the runner runs once across the run's steps, and `maxSteps` bounds
   * its turns and handoffs. `'run'`: each step is one whole `run()`.
   * @default 'modelCall'
   */
  readonly steps?: LoopStepMode;
  /** Stream the model's responses (`run(..., { stream: true })`). @default false */
  readonly stream?: boolean;
  /**
   * Where string model names are resolved (the runner's `modelProvider`). Every model it returns is
   * governed. @default the SDK's default provider (OpenAI)
   */
  readonly modelProvider?: ModelProvider;
  /** Further settings of the `Runner` (workflow name, tracing, guardrails, ...). `modelProvider` is set by the adapter. */
  readonly runConfig?: Partial<Omit<RunConfig, 'modelProvider'>>;
  /** The run context passed to the agent's tools and instructions. */
  readonly context?: unknown;
  /** Maps the run's result to the OAO output. @default the result's `finalOutput` */
  readonly output?: (result: { readonly finalOutput: unknown; readonly lastAgent: unknown }) => unknown;
}

type FunctionToolLike = {
  readonly type: 'function';
  readonly name: string;
  invoke(runContext: unknown, input: string, details?: Record<string, unknown>): Promise<unknown>;
};

/**
 * Governs an OpenAI Agents JS `Agent` run: its models (the agent's own `Model` objects and every
 * model the provider resolves for a name) are wrapped, so each model call is opened through the run
 * first (refused once the token budget is spent, the provider never contacted), recorded and
 * metered; its function tools, and those of every agent it hands off to, go through the run's
 * policy before their body runs; the run's signal is the runner's signal. By default each model
 * call is one OAO step, so a handoff counts as a step and `maxSteps` bounds the whole conversation.
 *
 * @example
 * ```ts
 * import { Agent, tool } from '@openai/agents';
 * import { fromOpenAIAgent } from 'open-agent-orchestrator/openai-agents';
 * const triage = new Agent({ name: 'triage', instructions: '...', handoffs: [billing], tools: [lookup] });
 * const report = await orch.run({ agent: fromOpenAIAgent(triage), task: 'Why was I charged twice?' });
 * ```
 */
export function fromOpenAIAgent(agent: OpenAIAgentLike, options: OpenAIAgentOptions = {}): Agent & { readonly name: string; readonly tools: ToolSet } {
  if (!(agent instanceof SdkAgent)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected an Agent of @openai/agents, got ${agent === null ? 'null' : typeof agent}`, {
      details: { field: 'agent' },
    });
  }
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const steps = checkSteps(options.steps);
  const stream = options.stream ?? false;
  if (typeof stream !== 'boolean') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected stream to be a boolean, got ${typeof stream}`, { details: { field: 'stream' } });
  }
  if (options.modelProvider !== undefined && typeof (options.modelProvider as { getModel?: unknown }).getModel !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected modelProvider to have getModel()', { details: { field: 'modelProvider' } });
  }
  if (options.output !== undefined && typeof options.output !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected output to be a function, got ${typeof options.output}`, { details: { field: 'output' } });
  }
  const timer = toolTimer(options);
  const output = options.output ?? ((result: { finalOutput: unknown }) => result.finalOutput ?? null);
  const runConfig = options.runConfig ?? {};
  // Resolved once: the provider a Runner would use when none is given.
  let baseProvider: ModelProvider | undefined = options.modelProvider;

  return gatedAgent<{ finalOutput: unknown; lastAgent: unknown }>({
    name: checkName(options.name, agent.name),
    tools: toolBodies(agent, timer),
    steps,
    start: async (input, bridge, signal, ctx) => {
      baseProvider ??= new Runner(runConfig).config.modelProvider;
      const governor = new RunGovernor(bridge, baseProvider);
      const runner = new Runner({ ...runConfig, modelProvider: governor.provider });
      const maxTurns = steps === 'modelCall' ? ctx.budget.steps.limit + 1 : undefined;
      const runOptions = {
        signal,
        ...(options.context === undefined ? {} : { context: options.context }),
        ...(maxTurns === undefined ? {} : { maxTurns }),
      };
      const governed = governor.agent(agent);
      const task = typeof input === 'string' || Array.isArray(input) ? input : JSON.stringify(input);
      if (!stream) return (await runner.run(governed, task as string, runOptions)) as { finalOutput: unknown; lastAgent: unknown };
      const result = await runner.run(governed, task as string, { ...runOptions, stream: true });
      // Drains the stream; its completion settles finalOutput (or rejects with the run's error).
      for await (const _event of result) {
        // events are for whoever streams the run; OAO records its own
      }
      await result.completed;
      if (result.error !== null && result.error !== undefined) throw result.error;
      return result;
    },
    output,
  });
}

// ---- tools ----------------------------------------------------------------------------------

interface InvokeArgs {
  readonly runContext: unknown;
  readonly input: string;
  readonly details: Record<string, unknown> | undefined;
}

/** What the runner passed to a tool's `invoke`, kept for the body by the parsed input's identity. */
const invocations = new WeakMap<object, InvokeArgs>();

function isFunctionTool(tool: unknown): tool is FunctionToolLike {
  return typeof tool === 'object' && tool !== null && (tool as { type?: unknown }).type === 'function' && typeof (tool as { invoke?: unknown }).invoke === 'function';
}

/** Every agent reachable from `root` through handoffs, each once. */
function reachableAgents(root: OpenAIAgentLike): OpenAIAgentLike[] {
  const seen = new Set<OpenAIAgentLike>();
  const visit = (agent: OpenAIAgentLike): void => {
    if (seen.has(agent)) return;
    seen.add(agent);
    for (const handoff of agent.handoffs) visit(handoff instanceof Handoff ? (handoff.agent as OpenAIAgentLike) : (handoff as OpenAIAgentLike));
  };
  visit(root);
  return [...seen];
}

/** The run's tool bodies: the function tools of the agent and of every agent it can hand off to. */
function toolBodies(root: OpenAIAgentLike, timer: ToolTimer): ToolSet {
  const set: Record<string, ToolFunction> = {};
  const owners = new Map<string, unknown>();
  for (const agent of reachableAgents(root)) {
    for (const tool of agent.tools) {
      if (!isFunctionTool(tool)) continue; // hosted tools run at the provider, not here
      const owner = owners.get(tool.name);
      if (owner !== undefined && owner !== tool) {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Two different tools are named "${tool.name}" among the agent and its handoffs: tool names must be unique`, {
          details: { field: 'tools', tool: tool.name },
        });
      }
      owners.set(tool.name, tool);
      set[tool.name] = (args: unknown, call: ToolCallContext) =>
        timer.run(tool.name, call, (signal) => {
          const given = typeof args === 'object' && args !== null ? invocations.get(args) : undefined;
          const input = given?.input ?? JSON.stringify(args ?? {});
          return (tool as FunctionToolLike).invoke(given?.runContext ?? new RunContext(), input, { ...given?.details, signal });
        });
    }
  }
  return Object.freeze(set);
}

function parseInput(input: string): unknown {
  try {
    return JSON.parse(input) as unknown;
  } catch {
    return input;
  }
}

/** The governed copies of one run: agents, their models and tools, and the model provider. */
class RunGovernor {
  readonly #bridge: RunBridge;
  readonly #agents = new Map<OpenAIAgentLike, OpenAIAgentLike>();
  readonly #models = new WeakMap<Model, Model>();
  readonly provider: ModelProvider;

  constructor(bridge: RunBridge, base: ModelProvider) {
    this.#bridge = bridge;
    this.provider = {
      getModel: async (name?: string) => this.model(await base.getModel(name), name),
    };
  }

  /** A copy of `agent` (and of every agent it hands off to) with governed models and tools. */
  agent(agent: OpenAIAgentLike): OpenAIAgentLike {
    const known = this.#agents.get(agent);
    if (known !== undefined) return known;
    const model = typeof agent.model === 'string' ? agent.model : this.model(agent.model, undefined);
    const copy = agent.clone({ model, tools: agent.tools.map((tool) => this.#tool(tool)), handoffs: [] });
    this.#agents.set(agent, copy);
    copy.handoffs = agent.handoffs.map((handoff) => (handoff instanceof Handoff ? this.#handoff(handoff) : this.agent(handoff as OpenAIAgentLike)));
    return copy;
  }

  #handoff(handoff: Handoff<any, any>): Handoff<any, any> {
    const copy = Object.assign(Object.create(Object.getPrototypeOf(handoff) as object) as Handoff<any, any>, handoff);
    copy.agent = this.agent(handoff.agent as OpenAIAgentLike);
    copy.onInvokeHandoff = async (context, args) => this.agent((await handoff.onInvokeHandoff(context, args)) as OpenAIAgentLike);
    return copy;
  }

  #tool<T>(tool: T): T {
    if (!isFunctionTool(tool)) return tool;
    const bridge = this.#bridge;
    return {
      ...tool,
      invoke: async (runContext: unknown, input: string, details?: Record<string, unknown>) => {
        const args = parseInput(input);
        if (typeof args === 'object' && args !== null) invocations.set(args, { runContext, input, details });
        try {
          return await bridge.callTool(tool.name, args);
        } catch (error) {
          // A refusal, a limit or a stop ends the run; any other failure is the model's to handle.
          if (isGovernanceError(error)) throw error;
          return `An error occurred while running the tool. Please try again. Error: ${errorText(error)}`;
        }
      },
    };
  }

  model(model: Model, name: string | undefined): Model {
    const known = this.#models.get(model);
    if (known !== undefined) return known;
    const governed = governedModel(model, name ?? modelName(model), this.#bridge);
    this.#models.set(model, governed);
    this.#models.set(governed, governed);
    return governed;
  }
}

function modelName(model: Model): string {
  const named = model as { model?: unknown; name?: unknown };
  if (typeof named.model === 'string') return named.model;
  return model.constructor.name === 'Object' ? 'model' : model.constructor.name;
}

// ---- model calls ----------------------------------------------------------------------------

/** What a model call's MODEL_RESULT records: enough to serve the call again on verify-replay. */
interface RecordedResponse {
  readonly output: readonly unknown[];
  readonly usage: { readonly inputTokens: number; readonly outputTokens: number; readonly totalTokens: number };
  readonly responseId?: string;
}

function record(response: ModelResponse): RecordedResponse {
  const { inputTokens, outputTokens, totalTokens } = response.usage;
  return {
    output: response.output,
    usage: { inputTokens, outputTokens, totalTokens },
    ...(response.responseId === undefined ? {} : { responseId: response.responseId }),
  };
}

function responseOf(recorded: RecordedResponse): ModelResponse {
  return {
    output: recorded.output as ModelResponse['output'],
    usage: new Usage({ requests: 1, ...recorded.usage }),
    ...(recorded.responseId === undefined ? {} : { responseId: recorded.responseId }),
  };
}

function textOf(output: readonly unknown[]): string {
  const texts: string[] = [];
  for (const item of output as { type?: string; role?: string; content?: { type?: string; text?: string }[] }[]) {
    if (item.type !== 'message' && item.role !== 'assistant') continue;
    for (const part of item.content ?? []) if (part.type === 'output_text' && typeof part.text === 'string') texts.push(part.text);
  }
  return texts.join('');
}

function requestInput(request: ModelRequest): unknown {
  return request.systemInstructions === undefined ? request.input : { system: request.systemInstructions, input: request.input };
}

function replayedOf(call: ModelCall): RecordedResponse {
  const replayed = call.replayed as NonNullable<ModelCall['replayed']>;
  if (!replayed.ok) throw Object.assign(new Error(replayed.error?.message ?? 'model call failed'), { name: 'ReplayedModelError' });
  return replayed.output as RecordedResponse;
}

function replayedUsage(call: ModelCall): { input: number; output: number } | null {
  const usage = call.replayed?.usage;
  return usage == null ? null : { input: usage.input, output: usage.output };
}

function governedModel(model: Model, name: string, bridge: RunBridge): Model {
  const open = async (request: ModelRequest): Promise<ModelCall> => {
    const maxTokens = request.modelSettings?.maxTokens;
    // The call's own cap on output tokens is what it reserves (the policy's default otherwise).
    const call = await bridge.openModelCall({ model: name, input: requestInput(request), ...(typeof maxTokens === 'number' ? { maxOutputTokens: maxTokens } : {}) });
    try {
      await call.ready;
    } catch (error) {
      bridge.modelCallClosed(undefined);
      throw error;
    }
    return call;
  };
  const fail = (call: ModelCall, error: unknown): never => {
    call.fail(error, call.replayed === undefined ? undefined : replayedUsage(call));
    bridge.modelCallClosed(undefined);
    throw error;
  };
  const end = (call: ModelCall, recorded: RecordedResponse): void => {
    call.end(recorded, call.replayed === undefined ? { input: recorded.usage.inputTokens, output: recorded.usage.outputTokens } : replayedUsage(call));
    bridge.modelCallClosed(textOf(recorded.output));
  };
  const governed: Model = {
    async getResponse(request) {
      const call = await open(request);
      let recorded: RecordedResponse;
      try {
        recorded = call.replayed !== undefined ? replayedOf(call) : record(await model.getResponse(request));
      } catch (error) {
        return fail(call, error);
      }
      end(call, recorded);
      return responseOf(recorded);
    },
    async *getStreamedResponse(request): AsyncIterable<StreamEvent> {
      const call = await open(request);
      if (call.replayed !== undefined) {
        let recorded: RecordedResponse;
        try {
          recorded = replayedOf(call);
        } catch (error) {
          return fail(call, error);
        }
        end(call, recorded);
        yield { type: 'response_done', response: { id: recorded.responseId ?? call.callId, usage: recorded.usage, output: recorded.output } } as unknown as StreamEvent;
        return;
      }
      let done: RecordedResponse | undefined;
      try {
        for await (const event of model.getStreamedResponse(request)) {
          if (event.type === 'response_done') {
            const response = event.response as { id?: string; usage: RecordedResponse['usage']; output: unknown[] };
            const { inputTokens, outputTokens, totalTokens } = response.usage;
            done = { output: response.output, usage: { inputTokens, outputTokens, totalTokens }, ...(response.id === undefined ? {} : { responseId: response.id }) };
            // Metered before the runner acts on the response: usage past the budget stops its tools.
            end(call, done);
          }
          yield event;
        }
      } catch (error) {
        if (done === undefined) fail(call, error);
        throw error;
      }
      if (done === undefined) fail(call, new Error('The model stream ended without a response_done event'));
    },
  };
  if (typeof model.getRetryAdvice === 'function') governed.getRetryAdvice = model.getRetryAdvice.bind(model);
  return governed;
}
