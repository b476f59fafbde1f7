import type { JsonValue, TokenUsage } from './report/schema.js';

/** One line of the budget an agent may read: how much is used, the limit, and what is left. */
export interface BudgetLine {
  readonly used: number;
  readonly limit: number;
  readonly remaining: number;
}

/** A read-only view of the run's remaining budget, current at the moment it is read. */
export interface BudgetView {
  readonly steps: BudgetLine;
  readonly tokens: BudgetLine;
  readonly toolCalls: BudgetLine;
  /** Milliseconds of the run's time limit. */
  readonly timeMs: BudgetLine;
}

/**
 * Token spend reported by an agent: a number counts as output tokens. `model` (in `ctx.usage()`)
 * names the model that spent it, so a policy with `pricing` can cost it (see docs/budgets.md#money).
 */
export type UsageReport =
  | number
  | { readonly input?: number; readonly output?: number; readonly model?: string }
  | { readonly input_tokens?: number; readonly output_tokens?: number; readonly total_tokens?: number; readonly model?: string };

/** A governed tool as the agent sees it: every call goes through the policy first. */
export type GovernedTool = (args?: unknown) => Promise<unknown>;

/** What a tool body receives besides its arguments. */
export interface ToolCallContext {
  /** Aborted when the step that made the call ends, the run is cancelled, or it times out. */
  readonly signal: AbortSignal;
  readonly executionId: string;
  readonly callId: string;
  readonly tool: string;
}

/** A tool the run request supplies: plain code, sync or async. */
export type ToolFunction = (args: any, context: ToolCallContext) => unknown;

/** The tools of a run request, by name. */
export type ToolSet = Readonly<Record<string, ToolFunction>>;

/**
 * What an agent's `plan`, `invoke` and `review` receive. It carries no handle on the run's actor or
 * policy: an agent can read its budget but never change its own limits.
 */
export interface AgentContext {
  readonly executionId: string;
  /** The current step, from 1; 0 while planning. */
  readonly step: number;
  /** 1 for the first try of a step, more when the step is retried. */
  readonly attempt: number;
  /**
   * Aborted when this call must stop: the run was cancelled, timed out or broke a limit (reason:
   * the typed OAO error). It is also aborted once the call has ended normally (reason
   * `OAO_ERR_RUN_FINISHED`), so work the call left running does not outlive its step.
   */
  readonly signal: AbortSignal;
  /**
   * Aborted once the run has ended, however it ended (completed, failed, cancelled, timed out,
   * broke a limit), with reason `OAO_ERR_RUN_FINISHED`. Unlike `signal` it spans the whole run, so
   * work an agent leaves open from one step to the next (a remote task waiting for input) can be
   * closed when the run is over. A run unloaded to be resumed elsewhere has not ended.
   */
  readonly runSignal: AbortSignal;
  /** The run's tools, each wrapped so that calling it is governed by the policy. */
  readonly tools: Readonly<Record<string, GovernedTool>>;
  /** Calls a governed tool by name; the same as `tools[name](args)`. */
  callTool(name: string, args?: unknown): Promise<unknown>;
  /** Reports token spend as it happens; spend past the budget aborts the step at once. */
  usage(tokens: UsageReport): void;
  readonly budget: BudgetView;
  /**
   * Opens a governed model call. Its worst case is reserved against every budget that covers the
   * run first: `inputTokens` (else estimated from `input`) plus `maxOutputTokens` (else the policy's
   * `reserveOutputTokens`, default 1024). A call whose reservation does not fit is refused before
   * it is sent (MODEL_CALL_DENIED, a `max_tokens` violation, or `max_cost` when the policy prices
   * the call by `model` and caps its cost). Recorded as MODEL_CALL, and closed with
   * `end()` (the response and its usage, recorded as MODEL_RESULT and metered; a response without
   * usage is charged its whole reservation) or `fail()`. Adapters use it around every LLM call;
   * agents that call a model directly can too. See docs/budgets.md.
   *
   * With `fitOutput: true` the caller promises to send the call with a lower output cap when asked:
   * a call whose `maxOutputTokens` (or the default reserve) does not fit after its prompt is
   * lowered to what every budget has left, reserves that, and says so in `loweredMaxOutputTokens`;
   * only a call with no room left after its prompt is refused.
   */
  beginModelCall(call?: ModelCallOptions): ModelCall;
  /**
   * Opens a governed call of a tool whose body the caller runs (a framework's own tool): exactly
   * what `callTool` does around a body. The policy is asked, the plugin rules and approvals apply,
   * the call is counted against `maxToolCalls` and recorded as TOOL_CALL (written ahead); await
   * `ready` before running the body (it rejects with the refusal, e.g. `OAO_ERR_TOOL_DENIED`, when
   * the body must not run: the run then ends with `policy_violation`), and close the call with
   * `end(result)` or `fail(error)` (recorded as TOOL_RESULT).
   */
  beginToolCall(name: string, args?: unknown): ToolCall;
}

/** An open governed tool call whose body the caller runs. */
export interface ToolCall {
  /** The call's id (`t1`, `t2`, …), set once the call is allowed. */
  readonly callId: string | undefined;
  /** Aborted when the step must stop: pass it to the body. */
  readonly signal: AbortSignal;
  /** Settles when the body may run; rejects with the refusal when it must not. */
  readonly ready: Promise<void>;
  /**
   * Set when `ready` settled because the run's log already held this call's outcome (a resumed
   * run): the body need not run again, and `end`/`fail` record nothing more.
   */
  readonly served: { readonly value: unknown } | undefined;
  /** Records the body's result. Later calls of end/fail are ignored. */
  end(result: unknown): void;
  /** Records that the body failed. */
  fail(error: unknown): void;
}

/** What `ctx.beginModelCall()` is told of a model call before it is sent. */
export interface ModelCallOptions {
  readonly model?: string;
  readonly input?: unknown;
  readonly maxOutputTokens?: number;
  readonly inputTokens?: number;
  /** The call can be sent with a lower output cap: lower it to what is left rather than refuse. @default false */
  readonly fitOutput?: boolean;
}

/** An open governed model call. `signal` aborts when the step must stop. */
export interface ModelCall {
  readonly callId: string;
  readonly signal: AbortSignal;
  /**
   * Settles once the call is recorded durably (at once without a store, or with a synchronous
   * one). With an asynchronous store, await it before sending the request so that the call is
   * written ahead of the spend; it rejects if the run's log cannot be written.
   */
  readonly ready: Promise<void>;
  /**
   * Set only while `orch.replay(id, { agent, verify: true })` re-runs the agent: the recorded
   * outcome of this call. Send nothing; pass it to `end()` (or `fail()`), so the re-run makes zero
   * model calls.
   */
  readonly replayed?: { readonly ok: boolean; readonly output?: unknown; readonly error?: { readonly message: string }; readonly usage: TokenUsage | null };
  /**
   * Set when the call asked `fitOutput` and its output cap was lowered to fit the budget: send the
   * call with this cap (what it reserved, and what MODEL_CALL records as `reserved.output`).
   */
  readonly loweredMaxOutputTokens?: number;
  /** Records the response and meters its usage. Later calls of end/fail are ignored. */
  end(output: unknown, usage?: UsageReport | null): void;
  /** Records that the call failed (with any usage it still cost). */
  fail(error: unknown, usage?: UsageReport | null): void;
}

/** What `review` receives: the outcome of the step that just ran. */
export interface StepResult {
  readonly step: number;
  readonly input: unknown;
  readonly output: JsonValue;
  readonly usage: TokenUsage | null;
}

/** `review`'s answer: finish the run, or run another step (with the same input unless given). */
export type ReviewDecision = { readonly done: true } | { readonly done: false; readonly input?: unknown };

/**
 * The agent contract. Only `invoke` is required; it may return `{ output }`, a string or any JSON
 * value, sync or async, optionally with token usage (`usage` or LangChain-style `usage_metadata`).
 */
export interface Agent {
  readonly name?: string;
  /** Tools the agent brings; merged with the run request's (the request's win on a name clash). */
  readonly tools?: ToolSet;
  invoke(input: any, ctx: AgentContext): unknown;
  plan?(task: any, ctx: AgentContext): unknown;
  review?(result: StepResult, ctx: AgentContext): ReviewDecision | Promise<ReviewDecision>;
}

/** An agent may also be a bare function, used as its `invoke`. */
export type AgentLike = Agent | ((input: any, ctx: AgentContext) => unknown);
