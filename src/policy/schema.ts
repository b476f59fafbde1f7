import { z } from 'zod';

const count = z.number().int().nonnegative();
const positiveCount = z.number().int().positive();
/** setTimeout cannot wait longer than this; a larger timeout would fire at once. */
export const MAX_TIMEOUT_MS = 2_147_483_647;

export const toolRulesSchema = z.strictObject({
  allow: z.array(z.string().min(1)).optional(),
  deny: z.array(z.string().min(1)).optional(),
  maxCalls: z.record(z.string().min(1), count).optional(),
});

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
});

/** Which tools a run may call, and how often. */
export interface ToolRules {
  /** When set, only these tools may be called. @default every tool */
  readonly allow?: readonly string[];
  /** These tools may never be called. @default [] */
  readonly deny?: readonly string[];
  /** Per-tool call limits, e.g. `{ search: 2 }`. @default {} */
  readonly maxCalls?: Readonly<Record<string, number>>;
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
  }),
  retry: z.object({
    maxRetries: count,
    initialDelayMs: count,
    backoffFactor: z.number(),
    maxDelayMs: count,
  }),
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
