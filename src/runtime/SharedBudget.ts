import { OaoError, type PolicyViolation } from '../errors.js';
import { checkCostReservation, checkCostSpent, usdToMicros } from '../policy/pricing.js';

/** Totals across every run of a batch. A limit left out is not enforced. */
export interface SharedBudgetLimits {
  readonly maxSteps?: number;
  readonly maxTokens?: number;
  readonly maxToolCalls?: number;
  /** Wall time of the whole batch, from its start. */
  readonly timeoutMs?: number;
  /**
   * US dollars the batch's runs may spend together on model calls, priced by their policy's
   * `pricing` (see docs/budgets.md#money).
   */
  readonly maxCostUsd?: number;
}

type Tripwire = (violation: PolicyViolation, runId: string) => void;

/**
 * Spend shared by sibling runs. Each run's ledger asks it before a step or tool call and charges it
 * after; the first spend past a total trips it, and the supervisor then stops every other run.
 */
export class SharedBudget {
  readonly limits: Readonly<SharedBudgetLimits>;
  steps = 0;
  tokens = 0;
  toolCalls = 0;
  #tripped: PolicyViolation | undefined;
  #onTrip: Tripwire | undefined;

  constructor(limits: SharedBudgetLimits, onTrip?: Tripwire) {
    for (const key of ['maxSteps', 'maxTokens', 'maxToolCalls', 'timeoutMs'] as const) {
      const value = limits[key];
      if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < (key === 'maxSteps' || key === 'timeoutMs' ? 1 : 0))) {
        throw new OaoError('OAO_ERR_INVALID_POLICY', `Invalid shared budget "${key}": expected a ${key === 'maxSteps' || key === 'timeoutMs' ? 'positive' : 'non-negative'} integer, got ${String(value)}`, {
          details: { field: `budget.${key}` },
        });
      }
    }
    if (limits.maxCostUsd !== undefined) {
      const micros = usdToMicros(limits.maxCostUsd);
      if (micros === undefined) {
        throw new OaoError('OAO_ERR_INVALID_POLICY', `Invalid shared budget "maxCostUsd": expected a finite, non-negative number of US dollars, got ${String(limits.maxCostUsd)}`, {
          details: { field: 'budget.maxCostUsd' },
        });
      }
      this.maxCostMicros = micros;
    }
    this.limits = Object.freeze({ ...limits });
    this.#onTrip = onTrip;
  }

  /** `maxCostUsd` in integer micro-dollars; undefined without a shared cost limit. */
  readonly maxCostMicros: number | undefined;
  /** Micro-dollars spent by every run of the batch. */
  costMicros = 0;
  /** Micro-dollars held by the running model calls of every run of the batch. */
  reservedCostMicros = 0;

  /** Would a model call whose worst case costs `micros` fit in the shared cost budget? */
  checkCostReservation(micros: number): PolicyViolation | null {
    const max = this.maxCostMicros;
    return max === undefined ? null : checkCostReservation('shared', max, this.costMicros + this.reservedCostMicros, micros);
  }

  /** Adds spent micro-dollars; returns the violation when the total is now past the shared cost budget. */
  chargeCost(micros: number): PolicyViolation | null {
    this.costMicros += micros;
    const max = this.maxCostMicros;
    return max === undefined ? null : checkCostSpent('shared', max, this.costMicros);
  }

  get tripped(): PolicyViolation | undefined {
    return this.#tripped;
  }

  checkStep(): PolicyViolation | null {
    const max = this.limits.maxSteps;
    if (max === undefined || this.steps + 1 <= max) return null;
    return shared('max_steps', `Step would exceed the shared maxSteps (${max}) of the batch`, max, this.steps + 1);
  }

  checkToolCall(tool: string): PolicyViolation | null {
    const max = this.limits.maxToolCalls;
    if (max === undefined || this.toolCalls + 1 <= max) return null;
    return { ...shared('max_tool_calls', `Tool call would exceed the shared maxToolCalls (${max}) of the batch`, max, this.toolCalls + 1), tool };
  }

  /** Would `tokens` more take the batch past its shared token budget? */
  checkTokens(tokens: number): PolicyViolation | null {
    const max = this.limits.maxTokens;
    if (max === undefined || this.tokens + tokens <= max) return null;
    return shared('max_tokens', `Token usage ${this.tokens + tokens} exceeds the shared maxTokens (${max}) of the batch`, max, this.tokens + tokens);
  }

  /** Is the shared token budget already spent (so no model call may start)? */
  checkModelCall(): PolicyViolation | null {
    const max = this.limits.maxTokens;
    if (max === undefined || this.tokens < max) return null;
    return shared('max_tokens', `Model call refused: the shared token budget (${max}) of the batch is spent`, max, this.tokens + 1);
  }

  /**
   * Would a model call reserving `reservation` tokens fit in the shared token budget, with what
   * sibling runs spent and hold already? The batch's worst case must fit, like a run's.
   */
  checkReservation(reservation: number): PolicyViolation | null {
    const max = this.limits.maxTokens;
    const attempted = this.tokens + this.reserved + reservation;
    if (max === undefined || attempted <= max) return null;
    return shared(
      'max_tokens',
      `Model call refused: it may use up to ${reservation} tokens, but ${Math.max(0, max - this.tokens - this.reserved)} of the batch's shared maxTokens (${max}) are left`,
      max,
      attempted,
    );
  }

  /** Tokens the batch has left for new reservations (spent and held taken off); Infinity without a limit. */
  tokensLeft(): number {
    const max = this.limits.maxTokens;
    return max === undefined ? Number.POSITIVE_INFINITY : max - this.tokens - this.reserved;
  }

  /** Tokens held by the model calls of every run of the batch that are still running. */
  reserved = 0;

  reserve(tokens: number, costMicros = 0): void {
    this.reserved += tokens;
    this.reservedCostMicros += costMicros;
  }

  release(tokens: number, costMicros = 0): void {
    this.reserved = Math.max(0, this.reserved - tokens);
    this.reservedCostMicros = Math.max(0, this.reservedCostMicros - costMicros);
  }

  chargeStep(): void {
    this.steps += 1;
  }

  chargeToolCall(): void {
    this.toolCalls += 1;
  }

  /** Adds spent tokens; returns the violation when the total is now past the shared budget. */
  chargeTokens(tokens: number): PolicyViolation | null {
    this.tokens += tokens;
    const max = this.limits.maxTokens;
    if (max === undefined || this.tokens <= max) return null;
    return shared('max_tokens', `Token usage ${this.tokens} exceeds the shared maxTokens (${max}) of the batch`, max, this.tokens);
  }

  /** Called by the run that crossed a total; only the first call counts. */
  trip(violation: PolicyViolation, runId: string): void {
    if (this.#tripped !== undefined) return;
    this.#tripped = violation;
    this.#onTrip?.(violation, runId);
  }
}

function shared(rule: PolicyViolation['rule'], message: string, limit: number, attempted: number): PolicyViolation {
  return { rule, message, limit, attempted, scope: 'shared' };
}
