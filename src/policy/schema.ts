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

export type PolicyOptions = z.input<typeof policyOptionsSchema>;
export type ToolRules = z.input<typeof toolRulesSchema>;
export type RetryOptions = z.input<typeof retryOptionsSchema>;

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
