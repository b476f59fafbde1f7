import type { Agent, AgentContext } from '../agent.js';

/**
 * A LangChain Runnable passed directly as an agent is detected by LangChain's own marker
 * (`lc_runnable`), without importing LangChain. It runs as a one-step agent whose step invokes it
 * with a plain RunnableConfig: the step's signal (so cancellation, the deadline and violations
 * abort it), a run name and the execution id in its metadata. For live token metering, refusal of
 * model calls and governed tools, wrap it with `fromRunnable` from `open-agent-orchestrator/langchain`.
 */
export function isLangChainRunnable(value: unknown): value is { invoke(input: unknown, config?: unknown): unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { lc_runnable?: unknown }).lc_runnable === true &&
    typeof (value as { invoke?: unknown }).invoke === 'function'
  );
}

export function runnableAgent(runnable: { invoke(input: unknown, config?: unknown): unknown }, name: string): Agent {
  return {
    name,
    invoke: (input: unknown, ctx: AgentContext) =>
      runnable.invoke(input, {
        signal: ctx.signal,
        runName: name,
        metadata: { oao_execution_id: ctx.executionId, oao_step: ctx.step },
      }),
  };
}
