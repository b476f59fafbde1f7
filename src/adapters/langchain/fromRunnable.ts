import type { RunnableConfig } from '@langchain/core/runnables';
import type { Agent, AgentContext, ReviewDecision, StepResult, ToolSet } from '../../agent.js';
import { OaoError, RunAbortedError } from '../../errors.js';
import { bridgedConfig, checkUngovernedPolicy, governStep, withRunId } from './governedConfig.js';
import { toolTimer, type ToolTimeoutOptions, type ToolTimer } from '../shared/toolTimeouts.js';
import { requireRunTools, toolSet, type LangChainTool } from './governTools.js';
import { toOutput } from './messages.js';
import type { UngovernedToolPolicy } from './runBridge.js';
import { TurnGate } from './TurnGate.js';

/** Anything with LangChain's `invoke(input, config)`: a chain, a chat model, a compiled graph. */
export interface RunnableLike {
  invoke(input: any, config?: any): Promise<unknown>;
  getName?(): string;
}

/** What one OAO step of a Runnable is. */
export type StepMode = 'run' | 'modelCall';

export interface RunnableAgentOptions extends ToolTimeoutOptions {
  /** The agent's name in reports and events. @default the Runnable's `getName()` */
  readonly name?: string;
  /**
   * `'run'`: each step invokes the Runnable once, every model call inside it metered.
   * `'modelCall'`: the Runnable runs once across the run's steps, one model call per step, so
   * `maxSteps` bounds its model turns and REVIEW decides before each further one (see docs/adapters.md).
   * @default 'run'
   */
  readonly steps?: StepMode;
  /** Maps the step's input (the task, on the first step) to the Runnable's input. @default the input itself */
  readonly input?: (input: unknown) => unknown;
  /** Maps the Runnable's result to the step's output. @default a message becomes its text, anything else is kept */
  readonly output?: (result: any) => unknown;
  /**
   * The LangChain tools the Runnable calls, when built into it with `governTools`: their bodies
   * become the agent's `tools`, to pass with the run request. Plain tools need not be listed:
   * OAO's callback handler governs their calls as they run.
   * @default []
   */
  readonly tools?: readonly LangChainTool[];
  /**
   * A base `RunnableConfig` for every invocation: callbacks, tags, metadata, `configurable`
   * (e.g. a `thread_id`), `recursionLimit`, an extra `signal`. OAO adds its own signal, handler
   * and governed tools to it.
   */
  readonly config?: RunnableConfig;
  /** @default 'govern' (see `governedConfig`) */
  readonly ungovernedTools?: UngovernedToolPolicy;
}

/** An OAO agent made from a Runnable. Pass its `tools` with the run request when it has any. */
export interface RunnableAgent extends Agent {
  readonly name: string;
  /** The bodies of the LangChain tools the Runnable calls, governed by the run: `orch.run({ agent, tools: agent.tools, task })`. */
  readonly tools: ToolSet;
  invoke(input: unknown, ctx: AgentContext): Promise<{ output: unknown }>;
}

/** Resolved settings shared by `fromRunnable` and `fromGraph`. */
export interface RunnableAgentSettings {
  readonly name: string;
  readonly steps: StepMode;
  readonly input: (input: unknown) => unknown;
  readonly output: (result: any) => unknown;
  readonly tools: readonly LangChainTool[];
  readonly config: RunnableConfig | undefined;
  readonly ungovernedTools: UngovernedToolPolicy;
  /** The per-tool time limits (`toolTimeoutMs`). */
  readonly timer: ToolTimer;
  /** The `recursionLimit` of a stepped run, from the run's budget (a backstop). */
  readonly recursionLimit?: (ctx: AgentContext) => number | undefined;
  /** Turns a Runnable's failure into the step's error. */
  readonly mapError?: (error: unknown) => unknown;
}

/**
 * Governs any LangChain Runnable as an OAO agent: a chain, a `prompt | model | parser` sequence, a
 * chat model with bound tools, a compiled graph. The run's signal, OAO's metering callback handler
 * and its governed tools travel in the `RunnableConfig`; nothing of the Runnable is changed.
 *
 * @example
 * ```ts
 * import { fromRunnable } from 'open-agent-orchestrator/langchain';
 * const chain = prompt.pipe(model).pipe(new StringOutputParser());
 * const report = await orch.run({ agent: fromRunnable(chain), task: { topic: 'governance' } });
 * report.tokenUsage; // every model call of the chain, metered as it happened
 * ```
 */
export function fromRunnable(runnable: RunnableLike, options: RunnableAgentOptions = {}): RunnableAgent {
  return runnableAgent(runnable, resolveOptions(runnable, options, { steps: 'run', input: identity, output: toOutput }));
}

const identity = (value: unknown): unknown => value;

export function resolveOptions(
  runnable: RunnableLike,
  options: RunnableAgentOptions,
  defaults: Pick<RunnableAgentSettings, 'steps' | 'input' | 'output'>,
): RunnableAgentSettings {
  if (typeof runnable !== 'object' || runnable === null || typeof (runnable as { invoke?: unknown }).invoke !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected a LangChain Runnable (an object with invoke()), got ${describe(runnable)}`, {
      details: { field: 'runnable' },
    });
  }
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${describe(options)}`);
  }
  const { name, steps, input, output, tools, config } = options;
  if (name !== undefined && (typeof name !== 'string' || name.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected name to be a non-empty string, got ${describe(name)}`, { details: { field: 'name' } });
  }
  if (steps !== undefined && steps !== 'run' && steps !== 'modelCall') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected steps to be "run" or "modelCall", got ${describe(steps)}`, { details: { field: 'steps' } });
  }
  for (const [field, value] of [['input', input], ['output', output]] as const) {
    if (value !== undefined && typeof value !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be a function, got ${describe(value)}`, { details: { field } });
    }
  }
  if (config !== undefined && (typeof config !== 'object' || config === null)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected config to be a RunnableConfig object, got ${describe(config)}`, { details: { field: 'config' } });
  }
  const list = tools ?? [];
  toolSet(list); // validates the list
  return {
    name: name ?? runnableName(runnable),
    steps: steps ?? defaults.steps,
    input: input ?? defaults.input,
    output: output ?? defaults.output,
    tools: list,
    config,
    ungovernedTools: checkUngovernedPolicy(options.ungovernedTools),
    timer: toolTimer(options),
  };
}

function runnableName(runnable: RunnableLike): string {
  try {
    const name = runnable.getName?.();
    if (typeof name === 'string' && name.length > 0) return name;
  } catch {
    // A name is a nicety: fall back.
  }
  return 'runnable';
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value;
}

/** Builds the agent for resolved settings. */
export function runnableAgent(runnable: RunnableLike, settings: RunnableAgentSettings): RunnableAgent {
  const tools = toolSet(settings.tools, settings.timer);
  const toolNames = Object.keys(tools);
  const mapError = settings.mapError ?? identity;
  if (settings.steps === 'run') {
    return {
      name: settings.name,
      tools,
      async invoke(input: unknown, ctx: AgentContext) {
        requireRunTools(ctx, toolNames);
        const { config, bridge } = governStep(ctx, settings.config, settings);
        let result: unknown;
        try {
          result = await runnable.invoke(settings.input(input), withRunId(config));
        } catch (error) {
          bridge.throwIfFailed();
          throw mapError(error);
        }
        bridge.throwIfFailed();
        return { output: settings.output(result) };
      },
    };
  }
  return {
    name: settings.name,
    tools,
    plan(task: unknown) {
      return new SteppedRun(settings.input(task), settings.ungovernedTools, settings.timer);
    },
    async invoke(input: unknown, ctx: AgentContext) {
      requireRunTools(ctx, toolNames);
      if (!(input instanceof SteppedRun)) {
        throw new OaoError('OAO_ERR_INVALID_AGENT', 'A stepped Runnable agent needs its own plan(): do not replace or drop it', {
          retryable: false,
        });
      }
      const run = input;
      if (ctx.attempt > 1 || run.gate.broken) run.restart();
      const gate = run.gate;
      run.turns += 1;
      const outcome = await gate
        .step(ctx, () => {
          const limit = settings.recursionLimit?.(ctx);
          const base: RunnableConfig = limit === undefined ? { ...settings.config } : { ...settings.config, recursionLimit: limit };
          const extra = settings.config?.signal;
          const signal = extra === undefined ? gate.signal : AbortSignal.any([gate.signal, extra]);
          return runnable.invoke(run.input, withRunId(bridgedConfig(base, gate, signal, ctx)));
        })
        .catch((error: unknown) => {
          throw mapError(error);
        });
      return { output: outcome.done ? settings.output(outcome.value) : outcome.text };
    },
    review(result: StepResult, ctx: AgentContext): ReviewDecision {
      const run = result.input;
      if (!(run instanceof SteppedRun) || run.gate.finished) return { done: true };
      // The next step will be refused (max_steps): stop the Runnable now rather than leave it waiting.
      if (ctx.budget.steps.remaining === 0) {
        run.gate.abort(new RunAbortedError('OAO_ERR_RUN_FINISHED', 'The run reached maxSteps before the Runnable finished'));
      }
      return { done: false };
    },
  };
}

/**
 * The input of every step of a stepped run: REVIEW passes it from step to step, so the Runnable's
 * progress lives exactly as long as the run's actor. Recorded in events as `{ input, turns }`.
 */
export class SteppedRun {
  readonly input: unknown;
  gate: TurnGate;
  turns = 0;
  readonly #policy: UngovernedToolPolicy;
  readonly #timer: ToolTimer;

  constructor(input: unknown, policy: UngovernedToolPolicy, timer: ToolTimer) {
    this.input = input;
    this.#policy = policy;
    this.#timer = timer;
    this.gate = new TurnGate(policy, timer);
  }

  /** A retried step starts the Runnable again from its input. */
  restart(): void {
    this.gate.abort(new RunAbortedError('OAO_ERR_RUN_FINISHED', 'The step is being retried'));
    this.gate = new TurnGate(this.#policy, this.#timer);
  }

  toJSON(): { input: unknown; turns: number } {
    return { input: this.input, turns: this.turns };
  }
}
