import type { RunStore } from '../store/RunStore.js';
import type { TenantBudgetLimits } from './tenantBudget.js';
import { spanAt, spanExpiresAt, spansAt, windowName, type WindowSpan } from './windows.js';

/** What a tenant spent in its current window. */
export interface TenantSpend {
  readonly runs: number;
  readonly steps: number;
  readonly tokens: number;
  readonly toolCalls: number;
  /** US dollars of model calls, in integer micro-dollars. */
  readonly costMicros: number;
}

type SpendKey = keyof TenantSpend;
const SPEND_KEYS: readonly SpendKey[] = ['runs', 'steps', 'tokens', 'toolCalls', 'costMicros'];

/** Which limit of a tenant's budget a refusal is about. */
export type TenantLimitKind = 'maxRuns' | 'maxSteps' | 'maxTokens' | 'maxToolCalls' | 'maxCostUsd';

/** Why a tenant may not start another run now, and when it may again. */
export interface TenantRefusal {
  readonly tenant: string;
  readonly limit: TenantLimitKind;
  /** The limit (micro-dollars for `maxCostUsd`). */
  readonly max: number;
  /** What the window holds already (micro-dollars for `maxCostUsd`). */
  readonly spent: number;
  /** Milliseconds until spend leaves the window (its end, or the oldest rolling bucket's exit). */
  readonly retryAfterMs: number;
  readonly message: string;
}

/** The answer of `GET /tenants/:id/usage`: spend against limits in the current window. */
export interface TenantUsage {
  readonly tenant: string;
  /** `day`, `month` or `rolling:<ms>`. */
  readonly window: string;
  /** Where the counted spend starts and (for a calendar window) ends, as ISO-8601 UTC. */
  readonly windowStart: string;
  readonly windowEnd: string | null;
  readonly spent: TenantSpend & { readonly costUsd: number };
  readonly limits: {
    readonly maxRuns: number | null;
    readonly maxSteps: number | null;
    readonly maxTokens: number | null;
    readonly maxToolCalls: number | null;
    readonly maxCostUsd: number | null;
  };
}

interface SpanTotals {
  readonly span: WindowSpan;
  readonly totals: Record<SpendKey, number>;
  /** Charges of this process on their way to an asynchronous store. */
  pending: number;
}

/**
 * One tenant's spend per window, kept in the run store's counters (scope `tenant:<id>`, one
 * counter set per calendar window or rolling bucket) so that a restart does not reset it, and
 * mirrored in memory so that every check is synchronous. Each charge is written through: with a
 * synchronous store (memory, SQLite) the store's answer, which includes what other processes on the
 * same file charged, replaces the mirror at once; with an asynchronous one (PostgreSQL) when it
 * arrives.
 */
export class TenantLedger {
  readonly tenant: string;
  readonly limits: TenantBudgetLimits;
  readonly #scope: string;
  readonly #store: RunStore | undefined;
  readonly #now: () => number;
  readonly #onError: (error: unknown) => void;
  readonly #spans = new Map<string, SpanTotals>();
  #writes: Promise<void> = Promise.resolve();

  constructor(tenant: string, limits: TenantBudgetLimits, store: RunStore | undefined, now: () => number, onError: (error: unknown) => void) {
    this.tenant = tenant;
    this.limits = limits;
    this.#scope = `tenant:${tenant}`;
    this.#store = store;
    this.#now = now;
    this.#onError = onError;
  }

  /** Reads the current window's counters from the store (at startup, before any check). */
  async load(): Promise<void> {
    const store = this.#store;
    if (store === undefined) return;
    for (const span of spansAt(this.limits.window, this.#now())) {
      const counters = await store.counters(this.#scope, span.key);
      const entry = this.#entry(span);
      if (entry.pending === 0) copyInto(entry.totals, counters);
    }
  }

  /** What the tenant spent in the window that holds now. */
  spent(): TenantSpend {
    const now = this.#now();
    const current = new Set(spansAt(this.limits.window, now).map((span) => span.key));
    const sum: Record<SpendKey, number> = { runs: 0, steps: 0, tokens: 0, toolCalls: 0, costMicros: 0 };
    for (const [key, entry] of this.#spans) {
      if (!current.has(key)) {
        // A span that left the window never counts again.
        if (entry.span.endMs <= now) this.#spans.delete(key);
        continue;
      }
      for (const name of SPEND_KEYS) sum[name] += entry.totals[name];
    }
    return sum;
  }

  /** Adds spend in the window that holds now, and writes it to the store. */
  charge(amounts: Partial<TenantSpend>): void {
    const changes: Record<string, number> = {};
    for (const name of SPEND_KEYS) {
      const amount = amounts[name];
      if (amount !== undefined && amount !== 0) changes[name] = amount;
    }
    if (Object.keys(changes).length === 0) return;
    const entry = this.#entry(spanAt(this.limits.window, this.#now()));
    for (const [name, amount] of Object.entries(changes)) entry.totals[name as SpendKey] += amount;
    const store = this.#store;
    if (store === undefined) return;
    if (store.synchronous === true) {
      try {
        const after = store.charge(this.#scope, entry.span.key, changes) as Readonly<Record<string, number>>;
        copyInto(entry.totals, after);
      } catch (error) {
        this.#onError(error);
      }
      return;
    }
    entry.pending += 1;
    this.#writes = this.#writes.then(async () => {
      try {
        const after = await store.charge(this.#scope, entry.span.key, changes);
        // Only the answer to the last charge in flight is the whole truth for this process.
        if (entry.pending === 1) copyInto(entry.totals, after);
      } catch (error) {
        this.#onError(error);
      } finally {
        entry.pending -= 1;
      }
    });
  }

  /** Settles when every charge made so far has reached the store (or failed, reported). */
  flushed(): Promise<void> {
    return this.#writes;
  }

  /**
   * Why `runs` more runs of the tenant may not start now (a limit is reached already), or
   * undefined. A run that starts is charged one run at once.
   */
  refusal(runs = 1): TenantRefusal | undefined {
    const spent = this.spent();
    const limits = this.limits;
    const over = (limit: TenantLimitKind, max: number | undefined, value: number, reached: boolean): TenantRefusal | undefined =>
      max === undefined || !reached ? undefined : this.refusalOf(limit, max, value);
    return (
      over('maxRuns', limits.maxRuns, spent.runs, spent.runs + runs > (limits.maxRuns ?? Infinity)) ??
      over('maxSteps', limits.maxSteps, spent.steps, spent.steps >= (limits.maxSteps ?? Infinity)) ??
      over('maxTokens', limits.maxTokens, spent.tokens, spent.tokens >= (limits.maxTokens ?? Infinity)) ??
      over('maxToolCalls', limits.maxToolCalls, spent.toolCalls, spent.toolCalls >= (limits.maxToolCalls ?? Infinity)) ??
      over('maxCostUsd', limits.maxCostMicros, spent.costMicros, spent.costMicros >= (limits.maxCostMicros ?? Infinity))
    );
  }

  /** The refusal of a run because `limit` (whose value is `max`) is reached with `spent` in the window. */
  refusalOf(limit: TenantLimitKind, max: number, spent: number): TenantRefusal {
    return {
      tenant: this.tenant,
      limit,
      max,
      spent,
      retryAfterMs: this.retryAfterMs(),
      message:
        limit === 'maxCostUsd'
          ? `Tenant "${this.tenant}" has spent $${(spent / 1_000_000).toFixed(6)} of its ${windowName(this.limits.window)} budget of $${(max / 1_000_000).toFixed(6)}`
          : `Tenant "${this.tenant}" has reached its ${windowName(this.limits.window)} ${limit} (${max}): ${spent} used`,
    };
  }

  /** What this process knows the window's `span` holds (the run store's counters as last read or written). */
  spanSpent(span: WindowSpan): TenantSpend {
    const totals = this.#spans.get(span.key)?.totals;
    return totals === undefined ? { runs: 0, steps: 0, tokens: 0, toolCalls: 0, costMicros: 0 } : { ...totals };
  }

  /**
   * Milliseconds until some of the counted spend leaves the window: the end of a calendar window,
   * or when the oldest rolling bucket holding spend leaves it (at least one second).
   */
  retryAfterMs(): number {
    const now = this.#now();
    const window = this.limits.window;
    let earliest = Infinity;
    for (const span of spansAt(window, now)) {
      const entry = this.#spans.get(span.key);
      const holds = typeof window === 'string' || (entry !== undefined && SPEND_KEYS.some((name) => entry.totals[name] !== 0));
      if (holds) earliest = Math.min(earliest, spanExpiresAt(window, span));
    }
    return Number.isFinite(earliest) ? Math.max(1_000, earliest - now) : 1_000;
  }

  /** Spend against limits in the current window. */
  usage(): TenantUsage {
    const now = this.#now();
    const window = this.limits.window;
    const spans = spansAt(window, now);
    const first = spans[0] as WindowSpan;
    const spent = this.spent();
    const limits = this.limits;
    return {
      tenant: this.tenant,
      window: windowName(window),
      windowStart: new Date(typeof window === 'string' ? first.startMs : now - window.rollingMs).toISOString(),
      windowEnd: typeof window === 'string' ? new Date(first.endMs).toISOString() : null,
      spent: { ...spent, costUsd: spent.costMicros / 1_000_000 },
      limits: {
        maxRuns: limits.maxRuns ?? null,
        maxSteps: limits.maxSteps ?? null,
        maxTokens: limits.maxTokens ?? null,
        maxToolCalls: limits.maxToolCalls ?? null,
        maxCostUsd: limits.maxCostMicros === undefined ? null : limits.maxCostMicros / 1_000_000,
      },
    };
  }

  #entry(span: WindowSpan): SpanTotals {
    let entry = this.#spans.get(span.key);
    if (entry === undefined) {
      entry = { span, totals: { runs: 0, steps: 0, tokens: 0, toolCalls: 0, costMicros: 0 }, pending: 0 };
      this.#spans.set(span.key, entry);
    }
    return entry;
  }
}

function copyInto(totals: Record<SpendKey, number>, counters: Readonly<Record<string, number>>): void {
  for (const name of SPEND_KEYS) totals[name] = counters[name] ?? 0;
}
