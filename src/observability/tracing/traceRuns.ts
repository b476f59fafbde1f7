import { trace, type Tracer } from '@opentelemetry/api';
import { OaoError } from '../../errors.js';
import type { Orchestrator } from '../../Orchestrator.js';
import { RUNTIME_VERSION } from '../../version.js';
import { RunTracer } from './RunTracer.js';

export interface TraceRunsOptions {
  /**
   * Where spans go.
   * @default trace.getTracer('open-agent-orchestrator', RUNTIME_VERSION): the globally registered provider
   */
  readonly tracer?: Tracer;
}

/**
 * Traces every run of an orchestrator with OpenTelemetry: a span `oao.run <agent>` per run, a child
 * `oao.state <STATE>` per lifecycle state, and under the state a `chat <model>` span per model call
 * and an `execute_tool <tool>` span per tool call, with GenAI semantic-convention attributes.
 * Returns a function that stops tracing new runs; runs already traced still get their spans ended
 * when they complete. See docs/tracing.md.
 *
 * @example
 * ```ts
 * import { Orchestrator } from 'open-agent-orchestrator';
 * import { traceRuns } from 'open-agent-orchestrator/tracing';
 * const orch = new Orchestrator();
 * const stop = traceRuns(orch);
 * await orch.run({ agent: { invoke: (task: string) => ({ output: task }) }, task: 'hi' });
 * stop();
 * ```
 */
export function traceRuns(orchestrator: Orchestrator, options: TraceRunsOptions = {}): () => void {
  if (typeof orchestrator !== 'object' || orchestrator === null || typeof orchestrator.events$?.subscribe !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected orchestrator to be an Orchestrator with events$');
  }
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected traceRuns options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  if (options.tracer !== undefined && typeof options.tracer?.startSpan !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected tracer to be an OpenTelemetry Tracer');
  }
  const tracer = new RunTracer(options.tracer ?? trace.getTracer('open-agent-orchestrator', RUNTIME_VERSION));
  let stopped = false;
  const subscription = orchestrator.events$.subscribe((event) => {
    tracer.handle(event);
    // Once stopped, listen only until the runs already traced have completed.
    if (stopped && tracer.activeRuns === 0) subscription.unsubscribe();
  });
  return () => {
    stopped = true;
    tracer.stopAccepting();
    if (tracer.activeRuns === 0) subscription.unsubscribe();
  };
}
