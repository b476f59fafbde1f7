import type { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import type { Callbacks } from '@langchain/core/callbacks/manager';
import type { RunnableConfig } from '@langchain/core/runnables';
import type { AgentContext } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { randomRunId } from '../../runtime/runId.js';
import { toolTimer, type ToolTimeoutOptions, type ToolTimer } from '../shared/toolTimeouts.js';
import { OaoCallbackHandler } from './OaoCallbackHandler.js';
import { NO_TOOL_TIMEOUTS, RUN_BRIDGE_KEY, StepBridge, type RunBridge, type UngovernedToolPolicy } from './runBridge.js';

export interface GovernedConfigOptions extends ToolTimeoutOptions {
  /**
   * What happens when a LangChain tool that was not wrapped with `governTools` runs:
   * `'govern'` checks its call against the policy from OAO's callback handler before its body runs
   * (a refusal is raised there and ends the run with `policy_violation`), counts it and records it
   * (TOOL_CALL, TOOL_RESULT), as for a governed tool; `'refuse'` stops it before its body runs and
   * fails the step with `OAO_ERR_INVALID_AGENT` (for agents that must use `governTools` stand-ins
   * only); `'allow'` lets it run unmetered.
   * @default 'govern'
   */
  readonly ungovernedTools?: UngovernedToolPolicy;
}

/** Resolved step options. */
export interface StepGovernance {
  readonly ungovernedTools: UngovernedToolPolicy;
  readonly timer: ToolTimer;
}

/**
 * A `RunnableConfig` that governs whatever LangChain runs with it, for agents that call LangChain
 * themselves: the step's signal (cancellation, timeouts and violations abort the Runnable), a
 * callback handler that meters and gates every model call, and the run's governed tools.
 * `base` is merged in: its callbacks run too, its signal also aborts, its metadata and
 * configurable are kept.
 *
 * @example
 * ```ts
 * const agent = {
 *   async invoke(question: string, ctx: AgentContext) {
 *     const answer = await chain.invoke({ question }, governedConfig(ctx));
 *     return answer;
 *   },
 * };
 * ```
 */
export function governedConfig(ctx: AgentContext, base?: RunnableConfig, options: GovernedConfigOptions = {}): RunnableConfig {
  const timer = options.toolTimeoutMs === undefined && options.clock === undefined ? NO_TOOL_TIMEOUTS : toolTimer(options);
  return governStep(ctx, base, { ungovernedTools: checkUngovernedPolicy(options.ungovernedTools), timer }).config;
}

/** The config of one governed step, and the step's bridge (to learn whether the adapter failed it). */
export function governStep(
  ctx: AgentContext,
  base: RunnableConfig | undefined,
  options: StepGovernance,
): { config: RunnableConfig; bridge: StepBridge } {
  const bridge = new StepBridge(ctx, options.ungovernedTools, options.timer);
  const config = bridgedConfig(base, bridge, bridge.signalFor(base?.signal ?? undefined), ctx);
  return { config, bridge };
}

/** `base` with OAO's handler first among the callbacks, the bridge in `configurable` and `signal`. */
export function bridgedConfig(
  base: RunnableConfig | undefined,
  bridge: RunBridge,
  signal: AbortSignal,
  ctx: Pick<AgentContext, 'executionId'>,
): RunnableConfig {
  const handler = new OaoCallbackHandler(bridge);
  return {
    ...base,
    signal,
    callbacks: withHandler(base?.callbacks, handler),
    metadata: { ...base?.metadata, oao_execution_id: ctx.executionId },
    configurable: { ...base?.configurable, [RUN_BRIDGE_KEY]: bridge },
  };
}

/**
 * `config` with a `runId` for the Runnable's top-level run, unless it has one: for a config that is
 * passed to exactly one `invoke` (a reused config must not carry one, as run ids are unique).
 * LangChain otherwise draws the id (a UUID version 7) itself from `crypto.getRandomValues`, which
 * costs a system call per id; OAO's run ids are the same kind of UUID, made from
 * `crypto.randomUUID`'s buffered entropy.
 */
export function withRunId(config: RunnableConfig): RunnableConfig {
  if (config.runId !== undefined) return config;
  config.runId = randomRunId();
  return config;
}

function withHandler(callbacks: Callbacks | undefined, handler: BaseCallbackHandler): Callbacks {
  if (callbacks === undefined) return [handler];
  if (Array.isArray(callbacks)) return [handler, ...callbacks];
  // A CallbackManager: a copy, so the caller's manager is not changed.
  const manager = callbacks.copy();
  manager.addHandler(handler, true);
  return manager;
}

export function checkUngovernedPolicy(value: unknown): UngovernedToolPolicy {
  if (value === undefined) return 'govern';
  if (value === 'govern' || value === 'refuse' || value === 'allow') return value;
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ungovernedTools to be "govern", "refuse" or "allow", got ${JSON.stringify(value)}`, {
    details: { field: 'ungovernedTools' },
  });
}
