import type { AgentContext, BudgetLine, BudgetView, GovernedTool, ModelCall, ModelCallOptions, ToolCall, UsageReport } from '../agent.js';
import { OaoError, RunAbortedError, safeString } from '../errors.js';
import { ownRecord } from '../policy/schema.js';
import { parseUsage, parseUsageReport } from './agentOutput.js';
import type { RunSession } from './RunSession.js';

export type CallPhase = 'plan' | 'step' | 'review';

/**
 * One call into the agent (a plan, a step or a review). It owns the call's AbortSignal, created
 * only if someone asks for it, and ends every pending governed tool call when the call is aborted.
 */
export class CallScope {
  readonly session: RunSession;
  readonly phase: CallPhase;
  readonly step: number;
  readonly attempt: number;
  #controller: AbortController | undefined;
  #abortReason: unknown;
  #lazyReason: (() => unknown) | undefined;
  #aborted = false;
  #pending: Set<(reason: unknown) => void> | undefined;

  constructor(session: RunSession, phase: CallPhase, step: number, attempt: number) {
    this.session = session;
    this.phase = phase;
    this.step = step;
    this.attempt = attempt;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason());
    }
    return this.#controller.signal;
  }

  #reason(): unknown {
    if (this.#lazyReason !== undefined) {
      this.#abortReason = this.#lazyReason();
      this.#lazyReason = undefined;
    }
    return this.#abortReason;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Aborts the call's signal and rejects its pending tool calls. Idempotent. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) for (const reject of pending) reject(reason);
    this.#controller?.abort(reason);
  }

  /**
   * Ends the call when its actor stops. The reason is built only if someone can observe it (a
   * signal was handed out or tool calls are pending): creating an Error on every step is costly.
   */
  close(makeReason: () => unknown): void {
    if (this.#aborted) return;
    if (this.#controller === undefined && this.#pending === undefined) {
      this.#aborted = true;
      this.#lazyReason = makeReason;
      return;
    }
    this.abort(makeReason());
  }

  /** Why a new governed call must be refused now, or undefined when it may go ahead. */
  refusal(): unknown {
    if (this.#aborted) return this.#reason();
    if (this.session.stopping || this.session.finished) {
      return new RunAbortedError('OAO_ERR_RUN_FINISHED', 'The run is stopping; no more tool calls are accepted');
    }
    return undefined;
  }

  /** Settles with `promise`, or rejects as soon as the call is aborted. */
  race<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#aborted) {
        reject(this.#reason());
        return;
      }
      const pending = (this.#pending ??= new Set());
      pending.add(reject);
      promise.then(
        (value) => {
          pending.delete(reject);
          resolve(value);
        },
        (error: unknown) => {
          pending.delete(reject);
          reject(error);
        },
      );
    });
  }

  /** The context handed to the agent: everything it may use, nothing it could raise its limits with. */
  context(): AgentContext {
    return new GovernedContext(this);
  }
}

class GovernedContext implements AgentContext {
  readonly #scope: CallScope;
  #tools: Readonly<Record<string, GovernedTool>> | undefined;

  constructor(scope: CallScope) {
    this.#scope = scope;
  }

  get executionId(): string {
    return this.#scope.session.executionId;
  }

  get step(): number {
    return this.#scope.step;
  }

  get attempt(): number {
    return this.#scope.attempt;
  }

  get signal(): AbortSignal {
    return this.#scope.signal;
  }

  get runSignal(): AbortSignal {
    return this.#scope.session.runSignal;
  }

  get tools(): Readonly<Record<string, GovernedTool>> {
    if (this.#tools === undefined) {
      // Own data properties only, so a tool named "__proto__" or "constructor" is just a tool.
      const names = this.#scope.session.toolNames;
      this.#tools = Object.freeze(ownRecord(names.map((name): [string, GovernedTool] => [name, (args) => this.callTool(name, args)])));
    }
    return this.#tools;
  }

  callTool(name: string, args?: unknown): Promise<unknown> {
    return this.#scope.session.callTool(this.#scope, safeString(name), args);
  }

  beginToolCall(name: string, args?: unknown): ToolCall {
    const scope = this.#scope;
    const record = scope.session.beginToolCall(scope, safeString(name), args);
    return {
      get callId() {
        return record.callId;
      },
      get served() {
        return record.served;
      },
      get signal() {
        return scope.signal;
      },
      ready: record.ready,
      end: (result) => record.end(result),
      fail: (error) => record.fail(error),
    };
  }

  usage(tokens: UsageReport): void {
    const scope = this.#scope;
    // Late (the call or the run has ended): a no-op, since it often comes from a detached callback.
    if (scope.aborted || scope.session.finished) return;
    const model = typeof tokens === 'object' && tokens !== null && typeof tokens.model === 'string' ? tokens.model : null;
    scope.session.addUsage(parseUsageReport(tokens), 'reported', true, model);
  }

  get budget(): BudgetView {
    return new LiveBudget(this.#scope.session);
  }

  beginModelCall(call: ModelCallOptions = {}): ModelCall {
    const scope = this.#scope;
    const sizes = {
      maxOutputTokens: tokenCount(call.maxOutputTokens, 'maxOutputTokens'),
      inputTokens: tokenCount(call.inputTokens, 'inputTokens'),
      fitOutput: call.fitOutput === true,
    };
    const record = scope.session.beginModelCall(scope, typeof call.model === 'string' ? call.model : null, call.input, sizes);
    const meter = (usage: UsageReport | null | undefined) => (usage == null ? null : parseUsage(usage, 'usage'));
    return {
      callId: record.callId,
      ready: record.ready,
      ...(record.replayed === undefined ? {} : { replayed: record.replayed }),
      ...(record.loweredMaxOutputTokens === undefined ? {} : { loweredMaxOutputTokens: record.loweredMaxOutputTokens }),
      get signal() {
        return scope.signal;
      },
      end: (output, usage) => record.end(output, meter(usage)),
      fail: (error, usage) => record.fail(error, meter(usage)),
    };
  }
}

/** A model call's token count given by its caller: a non-negative safe integer, or nothing. */
function tokenCount(value: unknown, field: 'maxOutputTokens' | 'inputTokens'): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${field}" must be a non-negative integer, got ${typeof value === 'number' ? String(value) : typeof value}`, { details: { field } });
  }
  return value;
}

function line(used: number, limit: number): BudgetLine {
  return Object.freeze({ used, limit, remaining: Math.max(0, limit - used) });
}

class LiveBudget implements BudgetView {
  readonly #session: RunSession;

  constructor(session: RunSession) {
    this.#session = session;
  }

  get steps(): BudgetLine {
    return line(this.#session.steps, this.#session.limits.maxSteps);
  }

  get tokens(): BudgetLine {
    return line(this.#session.tokensTotal, this.#session.limits.maxTokens);
  }

  get toolCalls(): BudgetLine {
    return line(this.#session.toolCalls, this.#session.limits.maxToolCalls);
  }

  get timeMs(): BudgetLine {
    const s = this.#session;
    return line(s.liveMs(), s.limits.timeoutMs);
  }
}
