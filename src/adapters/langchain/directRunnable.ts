import type { AgentContext } from '../../agent.js';
import { governStep, withRunId } from './governedConfig.js';
import { toOutput } from './messages.js';
import { NO_TOOL_TIMEOUTS } from './runBridge.js';

/**
 * One step of a Runnable passed straight to `orch.run`: governed as `fromRunnable` governs it (every
 * model call metered live and gated, plain tools governed by the handler, the step's signal), with
 * the run's name and step in its config. The core loads this module only when it is given a
 * Runnable, so LangChain is installed by then.
 */
export async function invokeDirectRunnable(
  runnable: { invoke(input: unknown, config?: unknown): unknown },
  input: unknown,
  ctx: AgentContext,
  runName: string,
): Promise<{ output: unknown }> {
  const { config, bridge } = governStep(ctx, { runName, metadata: { oao_step: ctx.step } }, { ungovernedTools: 'govern', timer: NO_TOOL_TIMEOUTS });
  let result: unknown;
  try {
    result = await runnable.invoke(input, withRunId(config));
  } catch (error) {
    bridge.throwIfFailed();
    throw error;
  }
  bridge.throwIfFailed();
  // A message becomes its text: its usage was metered as the model call ended, not again here.
  return { output: toOutput(result) };
}
