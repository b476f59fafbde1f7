import { z } from 'zod';
import { maxCostUsdSchema, pricingLimitsSchema, pricingSchema, type Pricing } from './pricing.js';

const count = z.number().int().nonnegative();
const positiveCount = z.number().int().positive();
/** setTimeout cannot wait longer than this; a larger timeout would fire at once. */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * Per-tool limits keyed by tool name. Not `z.record`: it drops an own `__proto__` key, and a tool
 * may be named after any `Object.prototype` member. Every own key is kept as data.
 */
const toolLimitsSchema = z.custom<Record<string, number>>().transform((value, ctx) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: `Expected an object of tool names to call limits, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}` });
    return z.NEVER;
  }
  const entries: [string, number][] = [];
  for (const key of Object.keys(value)) {
    const limit = (value as Record<string, unknown>)[key];
    if (key.length === 0) {
      ctx.addIssue({ code: 'custom', path: [key], message: 'A tool name must not be empty' });
      continue;
    }
    const parsed = count.safeParse(limit);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', path: [key], message: parsed.error.issues[0]?.message ?? 'Expected a non-negative integer' });
      continue;
    }
    entries.push([key, parsed.data]);
  }
  return ownRecord(entries);
});

/** A plain object whose keys are all own data properties, `__proto__` included. */
export function ownRecord<V>(entries: Iterable<readonly [string, V]>): Record<string, V> {
  return Object.fromEntries(entries);
}

/** `tools.approve`: names of tools whose calls wait for a person's decision, or (in code) a predicate. */
const approveSchema = z.union([
  z.array(z.string().min(1)),
  z.custom<ApprovalPredicate>((value) => typeof value === 'function', { message: 'Expected a list of tool names or a function' }),
]);

export const toolRulesSchema = z.strictObject({
  allow: z.array(z.string().min(1)).optional(),
  deny: z.array(z.string().min(1)).optional(),
  maxCalls: toolLimitsSchema.optional(),
  approve: approveSchema.optional(),
});

/** Decides, in code, whether a tool call waits for approval. Not part of the JSON limits or the hash. */
export type ApprovalPredicate = (call: { readonly tool: string; readonly args: unknown }) => boolean;

export const retryOptionsSchema = z.strictObject({
  maxRetries: count.optional(),
  initialDelayMs: count.optional(),
  backoffFactor: z.number().min(1).max(100).optional(),
  maxDelayMs: count.optional(),
});

/** Options accepted by `new StrictPolicy(...)` and by every per-run `policy` override. */
export const policyOptionsSchema = z.strictObject({
  maxSteps: positiveCount.optional(),
  maxTokens: count.optional(),
  maxToolCalls: count.optional(),
  timeoutMs: positiveCount.max(MAX_TIMEOUT_MS).optional(),
  tools: toolRulesSchema.optional(),
  retry: retryOptionsSchema.optional(),
  approvalTimeoutMs: positiveCount.max(MAX_TIMEOUT_MS).optional(),
  onLimit: z
    .strictObject({
      maxSteps: z.enum(['pause', 'fail']).optional(),
      maxToolCalls: z.enum(['pause', 'fail']).optional(),
      maxTokens: z.enum(['pause', 'fail']).optional(),
    })
    .optional(),
  budgetDecisionTimeoutMs: positiveCount.max(MAX_TIMEOUT_MS).optional(),
  reserveOutputTokens: count.optional(),
  maxCostUsd: maxCostUsdSchema.optional(),
  pricing: pricingSchema.optional(),
});

/** Limits that can pause a run instead of failing it. */
export type PausableLimit = 'maxSteps' | 'maxToolCalls' | 'maxTokens';

/** Which tools a run may call, and how often. */
export interface ToolRules {
  /** When set, only these tools may be called. @default every tool */
  readonly allow?: readonly string[];
  /** These tools may never be called. @default [] */
  readonly deny?: readonly string[];
  /** Per-tool call limits, e.g. `{ search: 2 }`. @default {} */
  readonly maxCalls?: Readonly<Record<string, number>>;
  /**
   * Calls of these tools wait for a person's decision (`handle.approve()` / `deny()`) before their
   * body runs; in code also a predicate over `{ tool, args }`. Over HTTP and in hashes only the
   * list form. @default none
   */
  readonly approve?: readonly string[] | ApprovalPredicate;
}

/** How failed steps are retried (transient agent errors only; never policy violations). */
export interface RetryOptions {
  /** @default 0 */
  readonly maxRetries?: number;
  /** @default 100 */
  readonly initialDelayMs?: number;
  /** @default 2 */
  readonly backoffFactor?: number;
  /** @default 10000 */
  readonly maxDelayMs?: number;
}

/** Options of `new StrictPolicy()`, and of every per-run `policy` override (fields left out keep the parent's). */
export interface PolicyOptions {
  /** Steps a run may start. @default 10 */
  readonly maxSteps?: number;
  /** Tokens a run may spend. @default 4000 */
  readonly maxTokens?: number;
  /** Tool bodies a run may run, all tools together. @default 5 */
  readonly maxToolCalls?: number;
  /** Wall time of a run in milliseconds. @default 30000 */
  readonly timeoutMs?: number;
  readonly tools?: ToolRules;
  readonly retry?: RetryOptions;
  /**
   * How long a tool call waits for its approval; then it is denied (rule `approval_timeout`).
   * @default no limit
   */
  readonly approvalTimeoutMs?: number;
  /**
   * What reaching a limit does: `'fail'` ends the run `policy_violation`; `'pause'` moves it to
   * AWAITING_BUDGET (event BUDGET_EXHAUSTED) until someone raises the limit (`handle.raise()`) or
   * cancels it. A per-run policy can turn `'pause'` into `'fail'`, never the reverse.
   * @default 'fail' for every limit
   */
  readonly onLimit?: { readonly maxSteps?: 'pause' | 'fail'; readonly maxToolCalls?: 'pause' | 'fail'; readonly maxTokens?: 'pause' | 'fail' };
  /** How long a paused run waits for a raise; then it ends `policy_violation` with the limit's rule. @default no limit */
  readonly budgetDecisionTimeoutMs?: number;
  /**
   * The output tokens a model call reserves when neither the call nor its model states a maximum
   * (see docs/budgets.md). A per-run policy can raise it, never lower it. @default 1024
   */
  readonly reserveOutputTokens?: number;
  /**
   * US dollars a run may spend on model calls, priced by `pricing` (see docs/budgets.md#money).
   * A per-run policy can lower it, never raise it. @default no cost limit
   */
  readonly maxCostUsd?: number;
  /**
   * Prices in USD per million tokens, by the model name a call reports; the entry `default`
   * prices models the table does not name. Set by the orchestrator's (or server's) policy only:
   * a per-run policy that sets other prices is `OAO_ERR_INVALID_POLICY`. @default none
   */
  readonly pricing?: Pricing;
}

/** The fully resolved, JSON-safe limits of a policy, as they appear in reports and events. */
export const policyLimitsSchema = z.object({
  maxSteps: positiveCount,
  maxTokens: count,
  maxToolCalls: count,
  timeoutMs: positiveCount,
  tools: z.object({
    allow: z.array(z.string()).nullable(),
    deny: z.array(z.string()),
    maxCalls: z.record(z.string(), count),
    /** Present only when a policy names tools whose calls need approval. */
    approve: z.array(z.string()).optional(),
  }),
  retry: z.object({
    maxRetries: count,
    initialDelayMs: count,
    backoffFactor: z.number(),
    maxDelayMs: count,
  }),
  /** Present only when set. */
  approvalTimeoutMs: positiveCount.optional(),
  /** The limits that pause instead of failing; present only when one does. */
  onLimit: z
    .object({ maxSteps: z.literal('pause').optional(), maxToolCalls: z.literal('pause').optional(), maxTokens: z.literal('pause').optional() })
    .optional(),
  budgetDecisionTimeoutMs: positiveCount.optional(),
  /** Present only when set; a model call of unknown maximum output reserves 1024 otherwise. */
  reserveOutputTokens: count.optional(),
  /** Present only when set: US dollars a run may spend. */
  maxCostUsd: z.number().nonnegative().optional(),
  /** Present only when set: the price table, USD per million tokens by model name. */
  pricing: pricingLimitsSchema.optional(),
});

export type PolicyLimits = z.infer<typeof policyLimitsSchema>;

export const DEFAULT_LIMITS: PolicyLimits = deepFreeze({
  maxSteps: 10,
  maxTokens: 4000,
  maxToolCalls: 5,
  timeoutMs: 30_000,
  tools: { allow: null, deny: [], maxCalls: {} },
  retry: { maxRetries: 0, initialDelayMs: 100, backoffFactor: 2, maxDelayMs: 10_000 },
});

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
