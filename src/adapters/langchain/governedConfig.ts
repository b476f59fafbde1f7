import type { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import type { Callbacks } from '@langchain/core/callbacks/manager';
import type { RunnableConfig } from '@langchain/core/runnables';
import type { AgentContext } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { OaoCallbackHandler } from './OaoCallbackHandler.js';
import { RUN_BRIDGE_KEY, StepBridge, type RunBridge, type UngovernedToolPolicy } from './runBridge.js';

export interface GovernedConfigOptions {
  /**
   * What happens when a LangChain tool runs without going through OAO (a tool that was not wrapped
   * with `governTools`): `'refuse'` stops it before its body runs and fails the step;
   * `'allow'` lets it run unmetered.
   * @default 'refuse'
   */
  readonly ungovernedTools?: UngovernedToolPolicy;
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
  return governStep(ctx, base, options).config;
}

/** The config of one governed step, and the step's bridge (to learn whether the adapter failed it). */
export function governStep(
  ctx: AgentContext,
  base: RunnableConfig | undefined,
  options: GovernedConfigOptions,
): { config: RunnableConfig; bridge: StepBridge } {
  const bridge = new StepBridge(ctx, checkUngovernedPolicy(options.ungovernedTools));
  const config = bridgedConfig(base, bridge, AbortSignal.any(base?.signal === undefined ? [ctx.signal, bridge.signal] : [ctx.signal, bridge.signal, base.signal]), ctx);
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

function withHandler(callbacks: Callbacks | undefined, handler: BaseCallbackHandler): Callbacks {
  if (callbacks === undefined) return [handler];
  if (Array.isArray(callbacks)) return [handler, ...callbacks];
  // A CallbackManager: a copy, so the caller's manager is not changed.
  const manager = callbacks.copy();
  manager.addHandler(handler, true);
  return manager;
}

export function checkUngovernedPolicy(value: unknown): UngovernedToolPolicy {
  if (value === undefined) return 'refuse';
  if (value === 'refuse' || value === 'allow') return value;
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ungovernedTools to be "refuse" or "allow", got ${JSON.stringify(value)}`, {
    details: { field: 'ungovernedTools' },
  });
}
