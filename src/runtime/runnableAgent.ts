import type { Agent, AgentContext } from '../agent.js';

/**
 * A LangChain Runnable passed directly as an agent is detected by LangChain's own marker
 * (`lc_runnable`), without importing LangChain. It runs as a one-step agent governed as
 * `fromRunnable` governs it: the first step loads the LangChain adapter (LangChain is installed,
 * since the caller holds a Runnable), which threads the step's signal, OAO's metering callback
 * handler, the run name and the execution id through its RunnableConfig.
 */
export function isLangChainRunnable(value: unknown): value is { invoke(input: unknown, config?: unknown): unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { lc_runnable?: unknown }).lc_runnable === true &&
    typeof (value as { invoke?: unknown }).invoke === 'function'
  );
}

type DirectRunnableModule = typeof import('../adapters/langchain/directRunnable.js');
let adapter: Promise<DirectRunnableModule> | undefined;

export function runnableAgent(runnable: { invoke(input: unknown, config?: unknown): unknown }, name: string): Agent {
  return {
    name,
    async invoke(input: unknown, ctx: AgentContext) {
      const { invokeDirectRunnable } = await (adapter ??= import('../adapters/langchain/directRunnable.js'));
      return invokeDirectRunnable(runnable, input, ctx, name);
    },
  };
}
