import type { AgentContext, ModelCall, ModelCallOptions, ToolCall } from '../../agent.js';
import { OaoError } from '../../errors.js';
import { toolTimer, type ToolTimer } from '../shared/toolTimeouts.js';

/** Where governed LangChain objects find their run: a key of `RunnableConfig.configurable`. */
export const RUN_BRIDGE_KEY = '__oao_run';

/**
 * The tag of governed tool runs: a governed tool's own run (a local tag) and the run of the body it
 * executes (an inheritable tag, so tools nested inside a governed body count as part of that call).
 */
export const GOVERNED_TAG = 'oao:governed';

/**
 * What to do with a LangChain tool that was not wrapped with `governTools` when it runs inside a
 * governed run: `'govern'` checks, counts and records its call from OAO's callback handler;
 * `'refuse'` stops it before its body runs and fails the step; `'allow'` lets it run unmetered.
 */
export type UngovernedToolPolicy = 'govern' | 'refuse' | 'allow';

/** A timer that applies no limits: the default when an agent sets no `toolTimeoutMs`. */
export const NO_TOOL_TIMEOUTS: ToolTimer = toolTimer({});

export interface ModelCallRequest {
  readonly model: string | undefined;
  readonly input: unknown;
  /** The call's cap on output tokens, when the model states one: what the call reserves. */
  readonly maxOutputTokens?: number;
  /** The caller will send the call with a lower cap when the budget has less left (`loweredMaxOutputTokens`). */
  readonly fitOutput?: boolean;
}

/** What `ctx.beginModelCall()` is given for a request: all of it, but no model when it names none. */
export function modelCallOptions(request: ModelCallRequest): ModelCallOptions {
  const { model, ...rest } = request;
  return model === undefined ? rest : request;
}

/**
 * How the callback handler and governed tools reach the OAO run they are part of. A chain run in
 * one step has one bridge for that step ({@link StepBridge}); a graph spread over several steps has
 * one for the whole run (`TurnGate`), which hands each model turn to the step that grants it.
 */
export interface RunBridge {
  /** Opens a governed model call; may wait for the next step; throws when the policy refuses it. */
  openModelCall(request: ModelCallRequest): ModelCall | Promise<ModelCall>;
  /** A model call opened through this bridge ended (its response text, when it succeeded and `wantsText`). */
  modelCallClosed(text: string | undefined): void;
  /** Whether `modelCallClosed` needs the response's text (reading a message's text costs). */
  readonly wantsText?: boolean;
  /** A governed tool call. */
  callTool(name: string, args: unknown): Promise<unknown>;
  /**
   * A LangChain tool not wrapped with `governTools` is about to run its body: its governed call
   * (which may wait for the next step), or undefined to let it run ungoverned. Throws (or rejects)
   * to refuse it.
   */
  openToolCall(name: string, args: unknown): ToolCall | undefined | Promise<ToolCall | undefined>;
  /** A tool call opened through this bridge ended. */
  toolCallClosed(): void;
  /** Stops the LangChain work of the step with `error` (a plain tool ran past its time limit). */
  stop(error: Error): void;
  /** The per-tool time limits. */
  readonly timer: ToolTimer;
}

/** The bridge a governed config carries, if any. */
export function bridgeOf(config: unknown): RunBridge | undefined {
  if (typeof config !== 'object' || config === null) return undefined;
  const configurable = (config as { configurable?: unknown }).configurable;
  if (typeof configurable !== 'object' || configurable === null) return undefined;
  const bridge = (configurable as Record<string, unknown>)[RUN_BRIDGE_KEY];
  return typeof bridge === 'object' && bridge !== null ? (bridge as RunBridge) : undefined;
}

export function ungovernedToolError(tool: string): OaoError {
  return new OaoError(
    'OAO_ERR_INVALID_AGENT',
    `Tool "${tool}" ran outside OAO's governance, which ungovernedTools: "refuse" forbids: build the agent with governTools([...]) ` +
      '(or leave ungovernedTools at "govern")',
    { retryable: false, details: { tool } },
  );
}

/** True for the reason a call's signal carries when the call simply ended (not a stop of the run). */
export function isNormalEnd(reason: unknown): boolean {
  return OaoError.isInstance(reason) && reason.code === 'OAO_ERR_RUN_FINISHED';
}

/**
 * The bridge of one step: model calls and tool calls go straight to that step's context. When the
 * adapter itself may have to stop the step's LangChain work (`ungovernedTools: 'refuse'`, or plain
 * tools with time limits), the step's signal is one the bridge also aborts; otherwise it is the
 * context's own signal, with nothing more to create or link on every step.
 */
export class StepBridge implements RunBridge {
  readonly #ctx: AgentContext;
  readonly #policy: UngovernedToolPolicy;
  readonly timer: ToolTimer;
  #controller: AbortController | undefined;
  #failure: { readonly error: unknown } | undefined;

  constructor(ctx: AgentContext, policy: UngovernedToolPolicy, timer: ToolTimer = NO_TOOL_TIMEOUTS) {
    this.#ctx = ctx;
    this.#policy = policy;
    this.timer = timer;
  }

  /**
   * The signal for the step's LangChain work: aborted when the context's (or `extra`) aborts, or
   * when the adapter stops the step.
   */
  signalFor(extra: AbortSignal | undefined): AbortSignal {
    const own = this.#policy === 'refuse' || this.timer.limited;
    if (!own && extra === undefined) return this.#ctx.signal;
    const controller = new AbortController();
    this.#controller = controller;
    return linkSignals(controller, extra === undefined ? [this.#ctx.signal] : [this.#ctx.signal, extra]);
  }

  /** Throws the error that made the adapter stop the step, if any. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  stop(error: Error): void {
    this.#failure ??= { error };
    this.#controller?.abort(error);
  }

  openModelCall(request: ModelCallRequest): ModelCall {
    return this.#ctx.beginModelCall(modelCallOptions(request));
  }

  modelCallClosed(): void {}

  callTool(name: string, args: unknown): Promise<unknown> {
    return this.#ctx.callTool(name, args);
  }

  openToolCall(name: string, args: unknown): ToolCall | undefined {
    if (this.#policy === 'govern') return this.#ctx.beginToolCall(name, args);
    if (this.#policy === 'allow') return undefined;
    const error = ungovernedToolError(name);
    this.stop(error);
    throw error;
  }

  toolCallClosed(): void {}
}

/**
 * Makes `controller` abort when any of `sources` does, and drops its listeners from the others
 * then: cheaper than `AbortSignal.any` on every step, and a long-lived source keeps no listener.
 */
function linkSignals(controller: AbortController, sources: readonly AbortSignal[]): AbortSignal {
  const aborted = sources.find((signal) => signal.aborted);
  if (aborted !== undefined) {
    controller.abort(aborted.reason);
    return controller.signal;
  }
  const onAbort = (event: Event): void => {
    for (const source of sources) source.removeEventListener('abort', onAbort);
    controller.signal.removeEventListener('abort', onAbort);
    if (!controller.signal.aborted) controller.abort((event.target as AbortSignal).reason);
  };
  for (const source of sources) source.addEventListener('abort', onAbort);
  controller.signal.addEventListener('abort', onAbort);
  return controller.signal;
}
