import type { PolicyViolation } from '../errors.js';
import { checkCostReservation, checkCostSpent } from '../policy/pricing.js';
import type { TenantBudgetLimits } from './tenantBudget.js';
import type { TenantLedger, TenantSpend } from './TenantLedger.js';
import { windowName } from './windows.js';

/**
 * What a tenant level counts against: the tenant's limits and what its window holds. A server's
 * `TenantLedger` (the run store's counters), or a worker's lease of a tenant's window in Redis.
 */
export interface TenantWindow {
  readonly tenant: string;
  readonly limits: TenantBudgetLimits;
  /** What the window holds now (without the live runs of this level). */
  spent(): TenantSpend;
  /** Charges a finished run's spend to the window. */
  charge(amounts: Partial<TenantSpend>): void;
  /** A lease of the window (a worker's): what it counts as spent includes what the tenant's other runs hold. */
  readonly leased?: boolean;
}

/** What one run spent, as its tenant's window is charged with it when it ends. */
export type RunSpend = Omit<TenantSpend, 'runs'>;

/** Gives a run of `tenant` its account on the tenant's level; undefined when the tenant has no budget on a run's spend. */
export type TenantBudgetSource = (tenant: string) => TenantAccount | undefined;

/** How many settled runs a level remembers for their routes (see `takeSettled`). */
const MAX_SETTLED_RUNS = 10_000;

/** Does a tenant's budget limit anything a run spends (not only how many runs start)? */
export function limitsRunSpend(ledger: TenantLedger): boolean {
  return limitsSpend(ledger.limits);
}

/** Does a budget limit anything a run spends (steps, tokens, tool calls, cost)? */
export function limitsSpend(limits: TenantBudgetLimits): boolean {
  return limits.maxSteps !== undefined || limits.maxTokens !== undefined || limits.maxToolCalls !== undefined || limits.maxCostMicros !== undefined;
}

/**
 * The tenant level of the budget scope tree, in one process: what a tenant has left in its current
 * window is its limit, less what its window holds in the run store's counters (finished runs, of
 * every process), less what the live runs of this process have spent and hold. Every run of the
 * tenant that this process runs is given an account on this one level (`open()`), so two runs can
 * never both spend the same remainder. Spend of runs in other processes counts once they end.
 */
export class TenantLevel {
  readonly tenant: string;
  readonly #ledger: TenantWindow;
  /**
   * Set when the level refuses every run from its first step (a worker found nothing left of the
   * tenant's window to lease): the violation that step gets.
   */
  readonly refusal: PolicyViolation | undefined;
  /** `maxCostUsd` of the tenant's budget in integer micro-dollars; undefined without one. */
  readonly maxCostMicros: number | undefined;
  /** Spent by the live runs of this process (not yet in the window's counters). */
  steps = 0;
  tokens = 0;
  toolCalls = 0;
  costMicros = 0;
  /** Held by the running model calls of the live runs of this process. */
  reserved = 0;
  reservedCostMicros = 0;
  /** Runs whose account charged the window itself: their route does not charge them again. */
  readonly #settledRuns = new Set<string>();

  constructor(ledger: TenantWindow, refusal?: PolicyViolation) {
    this.tenant = ledger.tenant;
    this.#ledger = ledger;
    this.refusal = refusal;
    this.maxCostMicros = ledger.limits.maxCostMicros;
  }

  get ledger(): TenantWindow {
    return this.#ledger;
  }

  /** An account for one run: the run charges it, and it charges this level. */
  open(): TenantAccount {
    return new TenantAccount(this);
  }

  /** What the window holds now plus what live runs spent: the spend every check counts. */
  spentNow(): RunSpend {
    const settled = this.#ledger.spent();
    return {
      steps: settled.steps + this.steps,
      tokens: settled.tokens + this.tokens,
      toolCalls: settled.toolCalls + this.toolCalls,
      costMicros: settled.costMicros + this.costMicros,
    };
  }

  /** Charges a run's actual spend to the window and takes its live spend off this level, at once. */
  settle(executionId: string, actual: RunSpend, live: RunSpend & { readonly reserved: number; readonly reservedCostMicros: number }): void {
    this.steps = Math.max(0, this.steps - live.steps);
    this.tokens = Math.max(0, this.tokens - live.tokens);
    this.toolCalls = Math.max(0, this.toolCalls - live.toolCalls);
    this.costMicros = Math.max(0, this.costMicros - live.costMicros);
    this.reserved = Math.max(0, this.reserved - live.reserved);
    this.reservedCostMicros = Math.max(0, this.reservedCostMicros - live.reservedCostMicros);
    this.#ledger.charge(actual);
    this.#settledRuns.add(executionId);
    // A route that never learns a run's report (its request failed, the run was unloaded) never
    // asks: keep the most recent ones only, so the set cannot grow without bound.
    if (this.#settledRuns.size > MAX_SETTLED_RUNS) {
      for (const oldest of this.#settledRuns) {
        this.#settledRuns.delete(oldest);
        break;
      }
    }
  }

  /** Whether the run's account charged the window already (then its route must not); forgets it. */
  takeSettled(executionId: string): boolean {
    return this.#settledRuns.delete(executionId);
  }

  /** `day`, `month` or `rolling:<ms>`, for messages. */
  get windowName(): string {
    return windowName(this.#ledger.limits.window);
  }
}

/**
 * One run's account on its tenant's level: the run asks it before a step, a tool call or a model
 * call and charges it after, like a batch's shared budget; what it charged is taken off the level
 * when the run ends (`settle`), in the same moment as the run's report is charged to the window.
 * Violations carry `scope: 'tenant'`.
 */
export class TenantAccount {
  readonly scope = 'tenant' as const;
  readonly #level: TenantLevel;
  #steps = 0;
  #tokens = 0;
  #toolCalls = 0;
  #costMicros = 0;
  #reserved = 0;
  #reservedCostMicros = 0;
  #settled = false;
  /** What a continued run had spent before (see `chargePrior`). */
  #prior: RunSpend | undefined;

  constructor(level: TenantLevel) {
    this.#level = level;
  }

  get tenant(): string {
    return this.#level.tenant;
  }

  /** `maxCostUsd` of the tenant's budget in micro-dollars; undefined without one. */
  get maxCostMicros(): number | undefined {
    return this.#level.maxCostMicros;
  }

  /** How a check names what the window holds: a worker's lease counts what the tenant's other runs hold too. */
  get #used(): string {
    return this.#level.ledger.leased === true ? 'used or held by its other runs' : 'used';
  }

  get #limits(): TenantBudgetLimits {
    return this.#level.ledger.limits;
  }

  checkStep(): PolicyViolation | null {
    if (this.#level.refusal !== undefined) return this.#level.refusal;
    const max = this.#limits.maxSteps;
    if (max === undefined) return null;
    const steps = this.#level.spentNow().steps;
    if (steps + 1 <= max) return null;
    return this.#violation('max_steps', `Step would exceed the maxSteps (${max}) of tenant "${this.tenant}" in its ${this.#level.windowName} window: ${steps} ${this.#used}`, max, steps + 1);
  }

  checkToolCall(tool: string): PolicyViolation | null {
    const max = this.#limits.maxToolCalls;
    if (max === undefined) return null;
    const calls = this.#level.spentNow().toolCalls;
    if (calls + 1 <= max) return null;
    return { ...this.#violation('max_tool_calls', `Tool call would exceed the maxToolCalls (${max}) of tenant "${this.tenant}" in its ${this.#level.windowName} window: ${calls} ${this.#used}`, max, calls + 1), tool };
  }

  /** Would `tokens` more take the tenant past its token budget? */
  checkTokens(tokens: number): PolicyViolation | null {
    const max = this.#limits.maxTokens;
    if (max === undefined) return null;
    const attempted = this.#level.spentNow().tokens + tokens;
    if (attempted <= max) return null;
    return this.#violation('max_tokens', `Token usage ${attempted} exceeds the maxTokens (${max}) of tenant "${this.tenant}" in its ${this.#level.windowName} window`, max, attempted);
  }

  /** Is the tenant's token budget already spent (so no model call may start)? */
  checkModelCall(): PolicyViolation | null {
    const max = this.#limits.maxTokens;
    if (max === undefined) return null;
    const tokens = this.#level.spentNow().tokens;
    if (tokens < max) return null;
    return this.#violation('max_tokens', `Model call refused: the token budget (${max}) of tenant "${this.tenant}" in its ${this.#level.windowName} window is spent`, max, tokens + 1);
  }

  /** Would a model call reserving `reservation` tokens fit in what the tenant has left (spent and held taken off)? */
  checkReservation(reservation: number): PolicyViolation | null {
    const max = this.#limits.maxTokens;
    if (max === undefined) return null;
    const committed = this.#level.spentNow().tokens + this.#level.reserved;
    if (committed + reservation <= max) return null;
    return this.#violation(
      'max_tokens',
      `Model call refused: it may use up to ${reservation} tokens, but ${Math.max(0, max - committed)} of the maxTokens (${max}) of tenant "${this.tenant}" in its ${this.#level.windowName} window are left`,
      max,
      committed + reservation,
    );
  }

  /** Would a model call whose worst case costs `micros` fit in the tenant's cost budget? */
  checkCostReservation(micros: number): PolicyViolation | null {
    const max = this.#level.maxCostMicros;
    return max === undefined ? null : checkCostReservation('tenant', max, this.#level.spentNow().costMicros + this.#level.reservedCostMicros, micros);
  }

  /** Tokens the tenant has left for new reservations; Infinity without a token limit. */
  tokensLeft(): number {
    const max = this.#limits.maxTokens;
    return max === undefined ? Number.POSITIVE_INFINITY : max - this.#level.spentNow().tokens - this.#level.reserved;
  }

  /** Micro-dollars the tenant has left for new reservations (0 without a cost limit: only asked after a refusal). */
  costLeft(): number {
    const max = this.#level.maxCostMicros;
    return max === undefined ? 0 : Math.max(0, max - this.#level.spentNow().costMicros - this.#level.reservedCostMicros);
  }

  reserve(tokens: number, costMicros = 0): void {
    if (this.#settled) return;
    this.#reserved += tokens;
    this.#reservedCostMicros += costMicros;
    this.#level.reserved += tokens;
    this.#level.reservedCostMicros += costMicros;
  }

  release(tokens: number, costMicros = 0): void {
    if (this.#settled) return;
    const heldTokens = Math.min(tokens, this.#reserved);
    const heldCost = Math.min(costMicros, this.#reservedCostMicros);
    this.#reserved -= heldTokens;
    this.#reservedCostMicros -= heldCost;
    this.#level.reserved = Math.max(0, this.#level.reserved - heldTokens);
    this.#level.reservedCostMicros = Math.max(0, this.#level.reservedCostMicros - heldCost);
  }

  /**
   * A run continued from its log had spent `spent` before. On a worker's lease of the window that
   * spend came out of the run's chunk (taken again under its id), so it counts in every check from
   * the start. On a server's ledger it is in the window already when the run was unloaded to wait
   * for a decision (it was charged as the run left its process), so it is not counted again. Either
   * way `settle` charges only what the run spent since. What a run spent in a process that died is
   * not in the ledger's window (no process saw it end); see docs/budgets.md.
   */
  chargePrior(spent: RunSpend): void {
    if (this.#settled) return;
    this.#prior = spent;
    if (this.#level.ledger.leased !== true) return;
    this.#steps += spent.steps;
    this.#tokens += spent.tokens;
    this.#toolCalls += spent.toolCalls;
    this.#costMicros += spent.costMicros;
    this.#level.steps += spent.steps;
    this.#level.tokens += spent.tokens;
    this.#level.toolCalls += spent.toolCalls;
    this.#level.costMicros += spent.costMicros;
  }

  chargeStep(): void {
    if (this.#settled) return;
    this.#steps += 1;
    this.#level.steps += 1;
  }

  chargeToolCall(): void {
    if (this.#settled) return;
    this.#toolCalls += 1;
    this.#level.toolCalls += 1;
  }

  /** Adds spent tokens; returns the violation when the tenant is now past its token budget. */
  chargeTokens(tokens: number): PolicyViolation | null {
    if (this.#settled) return null;
    this.#tokens += tokens;
    this.#level.tokens += tokens;
    const max = this.#limits.maxTokens;
    if (max === undefined) return null;
    const spent = this.#level.spentNow().tokens;
    if (spent <= max) return null;
    return this.#violation('max_tokens', `Token usage ${spent} exceeds the maxTokens (${max}) of tenant "${this.tenant}" in its ${this.#level.windowName} window`, max, spent);
  }

  /** Adds spent micro-dollars; returns the violation when the tenant is now past its cost budget. */
  chargeCost(micros: number): PolicyViolation | null {
    if (this.#settled) return null;
    this.#costMicros += micros;
    this.#level.costMicros += micros;
    const max = this.#level.maxCostMicros;
    return max === undefined ? null : checkCostSpent('tenant', max, this.#level.spentNow().costMicros);
  }

  /**
   * The run has ended: its actual spend (its report's; for a continued run, what it spent since it
   * was continued) is charged to the tenant's window and what this account charged the level is taken off, in one synchronous step, so no check in between
   * counts it twice or not at all. Later charges are ignored.
   */
  settle(executionId: string, actual: RunSpend): void {
    if (this.#settled) return;
    this.#settled = true;
    const prior = this.#prior;
    const charged =
      prior === undefined
        ? actual
        : {
            steps: Math.max(0, actual.steps - prior.steps),
            tokens: Math.max(0, actual.tokens - prior.tokens),
            toolCalls: Math.max(0, actual.toolCalls - prior.toolCalls),
            costMicros: Math.max(0, actual.costMicros - prior.costMicros),
          };
    this.#level.settle(executionId, charged, {
      steps: this.#steps,
      tokens: this.#tokens,
      toolCalls: this.#toolCalls,
      costMicros: this.#costMicros,
      reserved: this.#reserved,
      reservedCostMicros: this.#reservedCostMicros,
    });
  }

  #violation(rule: PolicyViolation['rule'], message: string, limit: number, attempted: number): PolicyViolation {
    return { rule, message, limit, attempted, scope: 'tenant' };
  }
}
