import { invalidOption, typeOf } from '../options.js';
import { checkWindow, type BudgetWindow } from './windows.js';

/**
 * What one tenant may spend per window, over all of its runs. A limit left out is not enforced;
 * `window` is required.
 */
export interface TenantBudgetOptions {
  /** `'day'` or `'month'` (calendar, UTC), or `{ rollingMs }`: the last so many milliseconds. */
  readonly window: BudgetWindow;
  /** Tokens (input and output) of every run of the tenant in the window. */
  readonly maxTokens?: number;
  /** US dollars of model calls in the window, priced by the server's policy `pricing`. */
  readonly maxCostUsd?: number;
  /** Tool calls of every run of the tenant in the window. */
  readonly maxToolCalls?: number;
  /** Steps of every run of the tenant in the window. */
  readonly maxSteps?: number;
  /** Runs the tenant may start in the window. */
  readonly maxRuns?: number;
}

/** A checked tenant budget: money in integer micro-dollars. */
export interface TenantBudgetLimits {
  readonly window: BudgetWindow;
  readonly maxTokens?: number;
  readonly maxCostMicros?: number;
  readonly maxToolCalls?: number;
  readonly maxSteps?: number;
  readonly maxRuns?: number;
}

const COUNT_LIMITS = ['maxTokens', 'maxToolCalls', 'maxSteps', 'maxRuns'] as const;
const KNOWN = new Set<string>(['window', 'maxCostUsd', ...COUNT_LIMITS]);

/** US dollars to integer micro-dollars, or undefined for a negative, non-finite or too large amount. */
export function dollarsToMicros(usd: unknown): number | undefined {
  if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) return undefined;
  const micros = Math.round(usd * 1_000_000);
  return Number.isSafeInteger(micros) ? micros : undefined;
}

/** `value` as a tenant budget, or the typed error naming the field under `field`. */
export function checkTenantBudget(value: unknown, field: string): TenantBudgetLimits {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption(field, `Expected ${field} to be a budget ({ window, maxTokens?, maxCostUsd?, maxToolCalls?, maxSteps?, maxRuns? }), got ${typeOf(value)}`);
  }
  const budget = value as Record<string, unknown>;
  for (const key of Object.keys(budget)) {
    if (!KNOWN.has(key)) throw invalidOption(`${field}.${key}`, `Unknown budget field "${key}" in ${field}: expected window, maxTokens, maxCostUsd, maxToolCalls, maxSteps or maxRuns`);
  }
  if (budget.window === undefined) throw invalidOption(`${field}.window`, `${field} needs a window: "day", "month" or { rollingMs }`);
  const limits: { -readonly [K in keyof TenantBudgetLimits]: TenantBudgetLimits[K] } = { window: checkWindow(budget.window, `${field}.window`) };
  for (const key of COUNT_LIMITS) {
    const limit = budget[key];
    if (limit === undefined) continue;
    if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0) {
      throw invalidOption(`${field}.${key}`, `Expected ${field}.${key} to be a non-negative integer, got ${typeof limit === 'number' ? limit : typeOf(limit)}`);
    }
    limits[key] = limit;
  }
  if (budget.maxCostUsd !== undefined) {
    const micros = dollarsToMicros(budget.maxCostUsd);
    if (micros === undefined) {
      throw invalidOption(
        `${field}.maxCostUsd`,
        `Expected ${field}.maxCostUsd to be a finite, non-negative number of US dollars, got ${typeof budget.maxCostUsd === 'number' ? budget.maxCostUsd : typeOf(budget.maxCostUsd)}`,
      );
    }
    limits.maxCostMicros = micros;
  }
  return Object.freeze(limits);
}

/** Two checked budgets say the same thing. */
export function sameBudget(a: TenantBudgetLimits, b: TenantBudgetLimits): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
