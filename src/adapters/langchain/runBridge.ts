import type { AgentContext, ModelCall } from '../../agent.js';
import { OaoError } from '../../errors.js';

/** Where governed LangChain objects find their run: a key of `RunnableConfig.configurable`. */
export const RUN_BRIDGE_KEY = '__oao_run';

/**
 * The tag of governed tool runs: a governed tool's own run (a local tag) and the run of the body it
 * executes (an inheritable tag, so tools nested inside a governed body count as part of that call).
 */
export const GOVERNED_TAG = 'oao:governed';

/** What to do with a LangChain tool that runs without going through OAO. */
export type UngovernedToolPolicy = 'refuse' | 'allow';

export interface ModelCallRequest {
  readonly model: string | undefined;
  readonly input: unknown;
  /** The call's cap on output tokens, when the model states one: what the call reserves. */
  readonly maxOutputTokens?: number;
}

/**
 * How the callback handler and governed tools reach the OAO run they are part of. A chain run in
 * one step has one bridge for that step ({@link StepBridge}); a graph spread over several steps has
 * one for the whole run (`TurnGate`), which hands each model turn to the step that grants it.
 */
export interface RunBridge {
  /** Opens a governed model call; may wait for the next step; throws when the policy refuses it. */
  openModelCall(request: ModelCallRequest): ModelCall | Promise<ModelCall>;
  /** A model call opened through this bridge ended (its response text, when it succeeded). */
  modelCallClosed(text: string | undefined): void;
  /** A governed tool call. */
  callTool(name: string, args: unknown): Promise<unknown>;
  /** A tool is about to run without OAO: the error to refuse it with, or undefined to let it run. */
  ungoverned(tool: string): Error | undefined;
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
    `Tool "${tool}" ran outside OAO's governance: build the agent with governTools([...]) so every call is checked by the policy ` +
      '(or set ungovernedTools: "allow")',
    { retryable: false, details: { tool } },
  );
}

/** True for the reason a call's signal carries when the call simply ended (not a stop of the run). */
export function isNormalEnd(reason: unknown): boolean {
  return OaoError.isInstance(reason) && reason.code === 'OAO_ERR_RUN_FINISHED';
}

/**
 * The bridge of one step: model calls and tool calls go straight to that step's context. A tool
 * that bypasses governance aborts the step's LangChain work and fails the step.
 */
export class StepBridge implements RunBridge {
  readonly #ctx: AgentContext;
  readonly #policy: UngovernedToolPolicy;
  readonly #controller = new AbortController();

  constructor(ctx: AgentContext, policy: UngovernedToolPolicy) {
    this.#ctx = ctx;
    this.#policy = policy;
  }

  /** Aborted when the adapter itself must stop the step's LangChain work (an ungoverned tool). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Throws the error that made the adapter stop the step, if any. */
  throwIfFailed(): void {
    if (this.#controller.signal.aborted) throw this.#controller.signal.reason;
  }

  openModelCall(request: ModelCallRequest): ModelCall {
    return this.#ctx.beginModelCall(request.model === undefined ? { input: request.input } : request);
  }

  modelCallClosed(): void {}

  callTool(name: string, args: unknown): Promise<unknown> {
    return this.#ctx.callTool(name, args);
  }

  ungoverned(tool: string): Error | undefined {
    if (this.#policy === 'allow') return undefined;
    const error = ungovernedToolError(tool);
    this.#controller.abort(error);
    return error;
  }
}
