import { z } from 'zod';
import { policyLimitsSchema } from '../policy/schema.js';
import {
  executionReportSchema,
  isJsonValue,
  lifecycleStateSchema,
  policyRuleSchema,
  serializedErrorSchema,
  tokenUsageSchema,
  type JsonValue,
} from '../report/schema.js';

/** Spend so far, at the moment the event was emitted. */
export const eventCountersSchema = z.object({
  steps: z.number().int().nonnegative(),
  tokens: z.number().int().nonnegative(),
  toolCalls: z.number().int().nonnegative(),
});
export type EventCounters = z.infer<typeof eventCountersSchema>;

const phaseSchema = z.enum(['plan', 'step', 'review']);

/** A model call's reservation: its prompt tokens (counted, or `estimated`) and its most output tokens. */
export const modelReservationSchema = z.object({
  input: z.number().int().nonnegative(),
  output: z.number().int().nonnegative(),
  estimated: z.boolean(),
  /** The worst case in integer micro-dollars, when the run is costed and the model priced. */
  costMicros: z.number().int().nonnegative().optional(),
});
export type ModelReservation = z.infer<typeof modelReservationSchema>;

function event<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.object({
    /** `${executionId}:${seq}`: unique across runs. */
    id: z.string(),
    executionId: z.string(),
    /** Position in the run's stream: from 0, no gaps. */
    seq: z.number().int().nonnegative(),
    /** Milliseconds since the epoch, from the run's clock. */
    timestamp: z.number(),
    type: z.literal(type),
    /** The lifecycle state the run was in when the event was emitted. */
    state: lifecycleStateSchema,
    counters: eventCountersSchema,
    payload,
  });
}

/**
 * Every event a run emits. Inputs the runtime cannot reproduce (plans, agent outputs, review
 * decisions, token usage, tool results) are all carried in payloads, so a run's events are a
 * complete record of it.
 */
export const oaoEventSchema = z.discriminatedUnion('type', [
  event(
    'EXECUTION_START',
    z.object({
      agentName: z.string(),
      task: z.unknown(),
      policy: policyLimitsSchema,
      tools: z.array(z.string()),
      executionHash: z.string(),
      /** The tenant the run belongs to (the server's API key's); absent for a run started without one. Not part of executionHash. */
      tenant: z.string().optional(),
      /**
       * The queued batch whose shared budget the run spends (see `RunQueue.createBatch`); absent for a
       * run of none. A job of the run enqueued again names it, so the run keeps spending that budget. Not part of executionHash.
       */
      batch: z.string().optional(),
    }),
  ),
  event('STATE_ENTER', z.object({ state: lifecycleStateSchema })),
  event('STATE_EXIT', z.object({ state: lifecycleStateSchema, durationMs: z.number().nonnegative() })),
  event('PLAN_COMPLETE', z.object({ input: z.unknown() })),
  event('STEP_START', z.object({ step: z.number().int().positive(), attempt: z.number().int().positive(), input: z.unknown() })),
  event(
    'STEP_COMPLETE',
    z.object({
      step: z.number().int().positive(),
      attempt: z.number().int().positive(),
      output: z.unknown(),
      usage: tokenUsageSchema.nullable(),
    }),
  ),
  event(
    'REVIEW_DECISION',
    z.object({ step: z.number().int().positive(), done: z.boolean(), input: z.unknown().optional() }),
  ),
  event(
    'TOKEN_USAGE',
    z.object({
      step: z.number().int().nonnegative(),
      input: z.number().int().nonnegative(),
      output: z.number().int().nonnegative(),
      total: z.number().int().nonnegative(),
      source: z.enum(['reported', 'output', 'model']),
      /** The model that spent it, when known and the run is costed (its policy has prices or a cost limit). */
      model: z.string().optional(),
      /** What it cost in integer micro-dollars, rounded up; present when the model is priced. */
      costMicros: z.number().int().nonnegative().optional(),
    }),
  ),
  event(
    'MODEL_CALL',
    z.object({
      step: z.number().int().nonnegative(),
      callId: z.string(),
      model: z.string().nullable(),
      input: z.unknown(),
      /** The tokens held against every budget while the call runs: its prompt (counted, or estimated) and its most output. */
      reserved: modelReservationSchema.optional(),
    }),
  ),
  event(
    'MODEL_CALL_DENIED',
    z.object({
      step: z.number().int().nonnegative(),
      model: z.string().nullable(),
      /** What the call would have reserved; null when the budget was already spent. */
      reserved: modelReservationSchema.nullable(),
      /** Tokens left in the budget that refused it (spent and reserved by other calls taken off). */
      remaining: z.number().int().nonnegative(),
      /** For a `max_cost` refusal: micro-dollars left in the budget that refused it. */
      remainingCostMicros: z.number().int().nonnegative().optional(),
      rule: policyRuleSchema,
      message: z.string(),
      scope: z.enum(['run', 'shared', 'tenant']).optional(),
    }),
  ),
  event(
    'MODEL_RESULT',
    z.object({
      step: z.number().int().nonnegative(),
      callId: z.string(),
      model: z.string().nullable(),
      ok: z.boolean(),
      output: z.unknown().optional(),
      error: serializedErrorSchema.optional(),
      usage: tokenUsageSchema.nullable(),
      /** The response carried no usage: the call was charged its whole reservation instead. */
      unmetered: z.literal(true).optional(),
      /** The call was still running when its step was aborted or its run ended: charged its whole reservation, its answer ignored. */
      abandoned: z.literal(true).optional(),
      durationMs: z.number().nonnegative(),
    }),
  ),
  event('TOOL_CALL', z.object({ step: z.number().int(), callId: z.string(), tool: z.string(), args: z.unknown() })),
  event(
    'TOOL_RESULT',
    z.object({
      step: z.number().int(),
      callId: z.string(),
      tool: z.string(),
      ok: z.boolean(),
      result: z.unknown().optional(),
      error: serializedErrorSchema.optional(),
      durationMs: z.number().nonnegative(),
    }),
  ),
  event(
    'TOOL_DENIED',
    z.object({
      step: z.number().int(),
      callId: z.string(),
      tool: z.string(),
      args: z.unknown(),
      rule: policyRuleSchema,
      message: z.string(),
    }),
  ),
  event(
    'POLICY_VIOLATION',
    z.object({
      rule: policyRuleSchema,
      message: z.string(),
      limit: z.number().nullable(),
      attempted: z.number().nullable(),
      tool: z.string().optional(),
      scope: z.enum(['run', 'shared', 'tenant']).optional(),
    }),
  ),
  event(
    'ERROR',
    z.object({
      phase: phaseSchema,
      step: z.number().int().nonnegative(),
      attempt: z.number().int().positive(),
      error: serializedErrorSchema,
      willRetry: z.boolean(),
      retryInMs: z.number().nonnegative().nullable(),
    }),
  ),
  event('EXECUTION_TIMEOUT', z.object({ timeoutMs: z.number().int().positive(), message: z.string().optional() })),
  event('EXECUTION_FAILED', z.object({ error: serializedErrorSchema })),
  event('EXECUTION_CANCELLED', z.object({ reason: z.string() })),
  event('APPROVAL_REQUESTED', z.object({ step: z.number().int(), callId: z.string(), tool: z.string(), args: z.unknown() })),
  event(
    'APPROVAL_GRANTED',
    z.object({
      step: z.number().int(),
      callId: z.string(),
      tool: z.string(),
      by: z.string().nullable(),
      reason: z.string().nullable(),
      /** The arguments the approver put in place of the requested ones, when they edited them. */
      args: z.unknown().optional(),
    }),
  ),
  event(
    'APPROVAL_DENIED',
    z.object({
      step: z.number().int(),
      callId: z.string(),
      tool: z.string(),
      by: z.string().nullable(),
      reason: z.string().nullable(),
      /** True when nobody decided within `approvalTimeoutMs`. */
      timedOut: z.boolean(),
    }),
  ),
  event(
    'BUDGET_EXHAUSTED',
    z.object({
      step: z.number().int().nonnegative(),
      rule: policyRuleSchema,
      message: z.string(),
      limit: z.number().nullable(),
      attempted: z.number().nullable(),
      /** The tool whose call waits, when a tool call reached the limit. */
      tool: z.string().optional(),
    }),
  ),
  event(
    'BUDGET_RAISED',
    z.object({
      /** The new values of the limits that were raised. */
      limits: z.object({
        maxSteps: z.number().int().positive().optional(),
        maxToolCalls: z.number().int().nonnegative().optional(),
        maxTokens: z.number().int().nonnegative().optional(),
      }),
      by: z.string().nullable(),
      reason: z.string().nullable(),
    }),
  ),
  event(
    'EXECUTION_RESUMED',
    z.object({
      /** Milliseconds between the log's last event and the resume: not charged to `timeoutMs`. */
      idleMs: z.number().nonnegative(),
      /** Who holds the run now (the lease owner), or null without a lease. */
      owner: z.string().nullable(),
      /** Where the lifecycle continues (see docs/suspend-resume.md). */
      point: z.enum(['start', 'plan', 'step', 'retry', 'review', 'next', 'terminate', 'failed']),
    }),
  ),
  event('EXECUTION_COMPLETE', z.object({ report: executionReportSchema })),
]);

/**
 * EXECUTION_COMPLETE as a store checks it when it reads a log back: the same schema, except that
 * the report's `finalOutput` is checked with {@link isJsonValue} rather than `jsonValueSchema`,
 * whose union tries each kind of value in turn at every level and copies the whole value: for a
 * 14 KB output that alone took about 0.6 ms of every read of the run.
 */
export const storedCompleteEventSchema = event(
  'EXECUTION_COMPLETE',
  z.object({
    report: executionReportSchema.extend({
      finalOutput: z.custom<JsonValue>(isJsonValue, { message: 'Invalid input: expected a JSON value (finite numbers, plain objects and arrays)' }),
    }),
  }),
);

export type OaoEvent = z.infer<typeof oaoEventSchema>;
export type OaoEventType = OaoEvent['type'];
export type OaoEventOf<T extends OaoEventType> = Extract<OaoEvent, { type: T }>;
export type OaoEventPayload<T extends OaoEventType> = OaoEventOf<T>['payload'];

export const oaoEventTypes = oaoEventSchema.options.map((option) => option.shape.type.value) as readonly OaoEventType[];
