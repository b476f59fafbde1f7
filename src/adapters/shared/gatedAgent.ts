import type { Agent, AgentContext, ReviewDecision, StepResult, ToolSet } from '../../agent.js';
import { OaoError, RunAbortedError } from '../../errors.js';
import { StepBridge, type RunBridge } from '../langchain/runBridge.js';
import { TurnGate } from '../langchain/TurnGate.js';

/** What one OAO step of a framework's agent loop is. */
export type LoopStepMode = 'modelCall' | 'run';

export interface GatedAgentSpec<R> {
  readonly name: string;
  readonly tools: ToolSet;
  readonly steps: LoopStepMode;
  /**
   * Starts the framework's loop once: every model call must go through `bridge.openModelCall` (and
   * `modelCallClosed`), every tool call through `bridge.callTool`, and `signal` must reach it all.
   */
  readonly start: (input: unknown, bridge: RunBridge, signal: AbortSignal, ctx: AgentContext) => Promise<R>;
  /** The run's output from the loop's result. */
  readonly output: (result: R) => unknown;
}

/**
 * The agent for a framework loop that OAO cannot pause between model turns on its own (the AI SDK's
 * `generateText`, the OpenAI Agents runner). `'modelCall'`: the loop runs once across the run's
 * steps, one model call per step (a `TurnGate` holds each further call until REVIEW continues and
 * `maxSteps` allows it). `'run'`: each step runs the whole loop, every call still governed.
 */
export function gatedAgent<R>(spec: GatedAgentSpec<R>): Agent & { readonly name: string; readonly tools: ToolSet } {
  const { name, tools, start, output } = spec;
  if (spec.steps === 'run') {
    return {
      name,
      tools,
      async invoke(input: unknown, ctx: AgentContext) {
        const bridge = new StepBridge(ctx, 'allow');
        return { output: output(await start(input, bridge, ctx.signal, ctx)) as never };
      },
    };
  }
  return {
    name,
    tools,
    plan(task: unknown) {
      return new GatedRun(task);
    },
    async invoke(input: unknown, ctx: AgentContext) {
      if (!(input instanceof GatedRun)) {
        throw new OaoError('OAO_ERR_INVALID_AGENT', 'A stepped agent needs its own plan(): do not replace or drop it', { retryable: false });
      }
      const run = input;
      if (ctx.attempt > 1 || run.gate.broken) run.restart();
      const gate = run.gate;
      run.turns += 1;
      const outcome = await gate.step(ctx, () => start(run.input, gate, gate.signal, ctx));
      return { output: (outcome.done ? output(outcome.value as R) : outcome.text) as never };
    },
    review(result: StepResult, ctx: AgentContext): ReviewDecision {
      const run = result.input;
      if (!(run instanceof GatedRun) || run.gate.finished) return { done: true };
      // The next step will be refused (max_steps): stop the loop now rather than leave it waiting.
      if (ctx.budget.steps.remaining === 0) {
        run.gate.abort(new RunAbortedError('OAO_ERR_RUN_FINISHED', 'The run reached maxSteps before the agent finished'));
      }
      return { done: false };
    },
  };
}

/**
 * The input of every step of a gated run: REVIEW passes it on, so the loop's progress lives exactly
 * as long as the run's actor. Recorded in events as `{ input, turns }`.
 */
export class GatedRun {
  readonly input: unknown;
  gate = new TurnGate('allow');
  turns = 0;

  constructor(input: unknown) {
    this.input = input;
  }

  /** A retried step starts the loop again from its input. */
  restart(): void {
    this.gate.abort(new RunAbortedError('OAO_ERR_RUN_FINISHED', 'The step is being retried'));
    this.gate = new TurnGate('allow');
  }

  toJSON(): { input: unknown; turns: number } {
    return { input: this.input, turns: this.turns };
  }
}

/** Validates a `steps` option. */
export function checkSteps(value: unknown): LoopStepMode {
  if (value === undefined) return 'modelCall';
  if (value === 'modelCall' || value === 'run') return value;
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected steps to be "modelCall" or "run", got ${JSON.stringify(value)}`, { details: { field: 'steps' } });
}

/** Validates a `name` option. */
export function checkName(value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && value.length > 0) return value;
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected name to be a non-empty string, got ${typeof value}`, { details: { field: 'name' } });
}
