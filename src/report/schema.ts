import { z } from 'zod';

export const lifecycleStates = ['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'TERMINATE', 'FAILED'] as const;
export const lifecycleStateSchema = z.enum(lifecycleStates);
export type LifecycleState = z.infer<typeof lifecycleStateSchema>;

export const terminationReasons = ['completed', 'policy_violation', 'timeout', 'cancelled', 'error'] as const;
export const terminationReasonSchema = z.enum(terminationReasons);
export type TerminationReason = z.infer<typeof terminationReasonSchema>;

/** A plugin's rule: `plugin:<plugin name>/<rule kind>`. */
export const pluginRuleNameSchema = z.templateLiteral(['plugin:', z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/), '/', z.enum(['stepStart', 'toolCall', 'modelCall', 'usage'])]);

export const policyRuleSchema = z.union([
  z.enum(['max_steps', 'max_tokens', 'max_cost', 'max_tool_calls', 'tool_max_calls', 'tool_not_allowed', 'tool_denied', 'approval_denied', 'approval_timeout']),
  pluginRuleNameSchema,
]);

export const serializedErrorSchema = z.object({
  name: z.string(),
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const terminationSchema = z.object({
  reason: terminationReasonSchema,
  rule: policyRuleSchema.optional(),
  /** 'shared' when a supervisor's total across sibling runs was spent; 'tenant' when the run's tenant's budget was. */
  scope: z.enum(['run', 'shared', 'tenant']).optional(),
  message: z.string().optional(),
});
export type Termination = z.infer<typeof terminationSchema>;

export const tokenUsageSchema = z.object({
  input: z.number().int().nonnegative(),
  output: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
});
export type TokenUsage = z.infer<typeof tokenUsageSchema>;

/** Money, in integer micro-dollars and (for display) US dollars. */
export const costSchema = z.object({
  micros: z.number().int().nonnegative(),
  usd: z.number().nonnegative(),
});
export type Cost = z.infer<typeof costSchema>;

export const stateHistoryEntrySchema = z.object({
  state: lifecycleStateSchema,
  enteredAt: z.number(),
  durationMs: z.number().nonnegative(),
});

/** Any JSON value: what reports may carry as task and output. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export const jsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([
    z.string(),
    z.number(),
    z.boolean(),
    z.null(),
    z.array(jsonValueSchema),
    z.record(z.string(), jsonValueSchema),
  ]),
);

/**
 * Whether `value` is a JSON value as {@link jsonValueSchema} accepts it: strings, finite numbers,
 * booleans, null, arrays without holes and plain objects of such values. Checked in one pass
 * without recursion (any depth) and without building the copy a schema's parse returns: on a 14 KB
 * output of 200 small objects, under a tenth of the schema's time. Stores use it for a report's
 * `finalOutput` as they read a log back, where the value comes straight from `JSON.parse`.
 */
export function isJsonValue(value: unknown): value is JsonValue {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    switch (typeof next) {
      case 'string':
      case 'boolean':
        continue;
      case 'number':
        if (!Number.isFinite(next)) return false;
        continue;
      case 'object': {
        if (next === null) continue;
        if (Array.isArray(next)) {
          // A hole reads as undefined, which is refused below.
          for (let i = 0; i < next.length; i++) pending.push(next[i]);
          continue;
        }
        const prototype = Object.getPrototypeOf(next) as unknown;
        if (prototype !== Object.prototype && prototype !== null) return false;
        if (Object.getOwnPropertySymbols(next).length > 0) return false;
        for (const key of Object.getOwnPropertyNames(next)) pending.push((next as Record<string, unknown>)[key]);
        continue;
      }
      default:
        return false;
    }
  }
  return true;
}

/** One decision on a tool call that waited for approval. */
export const approvalRecordSchema = z.object({
  callId: z.string(),
  tool: z.string(),
  decision: z.enum(['approved', 'denied', 'timeout']),
  by: z.string().nullable(),
  reason: z.string().nullable(),
  /** The arguments the approver put in place of the requested ones. */
  args: z.unknown().optional(),
  /** ISO 8601 time of the decision. */
  decidedAt: z.iso.datetime(),
});
export type ApprovalRecord = z.infer<typeof approvalRecordSchema>;

/** The structured, JSON-safe account of one run: what happened and why it stopped. */
export const executionReportSchema = z.object({
  executionId: z.string().min(1),
  agentName: z.string(),
  status: z.enum(['SUCCESS', 'FAILED']),
  termination: terminationSchema,
  totalSteps: z.number().int().nonnegative(),
  tokenUsage: tokenUsageSchema,
  /**
   * What the run's model calls cost, as its policy's `pricing` priced them: `micros` is exact
   * (integer micro-dollars, the sum of every usage event's cost), `usd` is derived from it for
   * display. Present when the policy has prices or a cost limit.
   */
  cost: costSchema.optional(),
  toolUsage: z.object({
    total: z.number().int().nonnegative(),
    byTool: z.record(z.string(), z.number().int().nonnegative()),
  }),
  /**
   * Live time: the time charged to `timeoutMs`. Time while no process held the run (between a
   * crash and its resume) is not counted.
   */
  executionTimeMs: z.number().nonnegative(),
  /**
   * The span from `startedAt` to `finishedAt`, live or not. Equal to `executionTimeMs` for a run
   * that was never interrupted. Absent in reports recorded before it existed.
   */
  wallTimeMs: z.number().nonnegative().optional(),
  stateHistory: z.array(stateHistoryEntrySchema),
  /** Every approval decision of the run, in order (the audit trail); absent when there was none. */
  approvals: z.array(approvalRecordSchema).optional(),
  finalOutput: jsonValueSchema,
  error: serializedErrorSchema.optional(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  executionHash: z.string().regex(/^[0-9a-f]{64}$/),
});

export type ExecutionReport = z.infer<typeof executionReportSchema>;
