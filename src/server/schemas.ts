import { z } from 'zod';
import { eventCountersSchema } from '../events/schema.js';
import { parseTimeBound, TIME_BOUND_FORMS } from '../log/parseTimeBound.js';
import { policyLimitsSchema, policyOptionsSchema } from '../policy/schema.js';
import {
  costSchema,
  executionReportSchema,
  jsonValueSchema,
  lifecycleStateSchema,
  policyRuleSchema,
  terminationSchema,
} from '../report/schema.js';

/**
 * The zod schemas of every body, parameter, query and response of the HTTP service. Fastify
 * validates requests with them (fastify-type-provider-zod) and @fastify/swagger turns them into the
 * OpenAPI document, so the documentation cannot drift from what the server accepts.
 *
 * Metadata for the document (component ids, descriptions) lives in a registry private to the
 * server, so importing this module never changes zod's global registry.
 */
export const apiSchemaRegistry = z.registry<{ id?: string; description?: string; [key: string]: unknown }>();

function component<T extends z.ZodType>(schema: T, id: string, description?: string): T {
  apiSchemaRegistry.add(schema, description === undefined ? { id } : { id, description });
  return schema;
}

function described<T extends z.ZodType>(schema: T, description: string): T {
  apiSchemaRegistry.add(schema, { description });
  return schema;
}

/**
 * A JSON object of `value`s that keeps every own key as data, `__proto__` included: z.record
 * drops that key (on the way in and on the way out), and data must reach the run, and the client,
 * as it was sent. It checks every own key and value and passes the object on unchanged: an object
 * from JSON.parse (or Object.fromEntries) holds `__proto__` as an own data property, never as its
 * prototype. `jsonSchema` is what the OpenAPI document shows for it.
 */
function ownKeyRecord<V extends z.ZodType>(
  value: V,
  jsonSchema: Readonly<Record<string, unknown>>,
  key: z.ZodType<string> = z.string(),
): z.ZodType<Record<string, z.output<V>>> {
  const schema = z
    .custom<Record<string, z.output<V>>>((input) => typeof input === 'object' && input !== null && !Array.isArray(input), 'Expected an object')
    .superRefine((input, ctx) => {
      for (const name of Object.keys(input)) {
        const checkedKey = key.safeParse(name);
        if (!checkedKey.success) {
          for (const issue of checkedKey.error.issues) ctx.addIssue({ code: 'custom', path: [name], message: `Key "${name.slice(0, 40)}": ${issue.message}` });
        }
        const checked = value.safeParse(input[name]);
        if (!checked.success) {
          for (const issue of checked.error.issues) ctx.addIssue({ code: 'custom', path: [name, ...issue.path], message: issue.message });
        }
      }
    });
  apiSchemaRegistry.add(schema, { ...jsonSchema });
  return schema;
}

/** Jobs one POST /run-multi may name. */
export const MAX_AGENTS_PER_BATCH = 1_000;
/** How deeply a JSON task may nest (arrays and objects). */
export const MAX_TASK_DEPTH = 64;
/**
 * How many runs GET /runs counts at most for its `total`: counting walks the store's index, so a
 * list of a store of millions of runs stays as cheap as one of ten thousand.
 */
export const MAX_COUNTED_RUNS = 10_000;

// Recursive: it must be a component, so that its self-references resolve inside the document.
component(jsonValueSchema, 'JsonValue', 'Any JSON value.');
component(executionReportSchema, 'ExecutionReport', 'The structured account of one finished run.');

export const errorBodySchema = component(
  z.object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  }),
  'Error',
  'Every error answer has this shape; `code` is an OAO_ERR_* code and fixes the HTTP status.',
);
export type ErrorBody = z.infer<typeof errorBodySchema>;

export const agentNameSchema = described(z.string().min(1).max(200), 'The name an agent is registered under on this server.');

/** Longest run id a request may give (fewer when the router's maxParamLength is smaller). */
export const MAX_EXECUTION_ID_LENGTH = 128;

export const executionIdSchema = described(
  z
    .string()
    .regex(
      new RegExp(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,${MAX_EXECUTION_ID_LENGTH - 1}}$`),
      `Expected 1 to ${MAX_EXECUTION_ID_LENGTH} characters: letters, digits, ".", "_", ":" or "-"`,
    ),
  'The id of a run.',
);

export const taskSchema = described(
  z.union([z.string(), z.number(), z.boolean(), z.array(z.unknown()), ownKeyRecord(z.unknown(), { type: 'object', additionalProperties: {} })]),
  `What the agent is asked to do: a string, or any JSON value nested at most ${MAX_TASK_DEPTH} deep. ` +
    'Its length (a string\'s characters, or its JSON\'s) is capped by the server\'s maxTaskLength (default 100000).',
);

/** Policy options a request may send: everything but prices, which are the server's own policy. */
const requestPolicyOptionsSchema = policyOptionsSchema.omit({ pricing: true });

export const requestPolicySchema = component(
  requestPolicyOptionsSchema,
  'PolicyOptions',
  'Limits for this run. They can only narrow the server\'s policy: every limit is the smaller of the two, allow lists intersect, deny lists combine.',
);

export const runRequestSchema = component(
  z.strictObject({
    agent: agentNameSchema,
    task: taskSchema,
    policy: requestPolicySchema.optional(),
    executionId: executionIdSchema.optional(),
  }),
  'RunRequest',
);
export type RunRequestBody = z.infer<typeof runRequestSchema>;

const agentListSchema = z
  .array(agentNameSchema)
  .min(1)
  .max(MAX_AGENTS_PER_BATCH);
const jobNameSchema = z.string().min(1).max(200);
const agentMapSchema = ownKeyRecord(
  agentNameSchema,
  { type: 'object', additionalProperties: { type: 'string', minLength: 1, maxLength: 200 }, minProperties: 1, maxProperties: MAX_AGENTS_PER_BATCH },
  jobNameSchema,
)
  .refine((map) => Object.keys(map).length >= 1, 'Expected at least one agent')
  .refine((map) => Object.keys(map).length <= MAX_AGENTS_PER_BATCH, `Expected at most ${MAX_AGENTS_PER_BATCH} agents`);

export const runMultiRequestSchema = component(
  z.strictObject({
    agents: described(
      z.union([agentListSchema, agentMapSchema]),
      'The agents to run on the task: a list of registered names, or a map of job name to registered name (to run one agent more than once).',
    ),
    task: taskSchema,
    policy: requestPolicySchema.optional(),
    maxConcurrency: described(
      z.number().int().min(1).optional(),
      'Runs of this batch at once; the server\'s own maxConcurrency is the ceiling.',
    ),
    budget: described(
      z
        .strictObject({
          maxSteps: z.number().int().positive().optional(),
          maxTokens: z.number().int().nonnegative().optional(),
          maxToolCalls: z.number().int().nonnegative().optional(),
          maxCostUsd: z.number().nonnegative().optional(),
          timeoutMs: z.number().int().positive().max(2_147_483_647).optional(),
        })
        .optional(),
      'Totals over every run of the batch (a shared budget). With a queue the workers charge it in Redis, and timeoutMs is refused.',
    ),
  }),
  'RunMultiRequest',
);
export type RunMultiRequestBody = z.infer<typeof runMultiRequestSchema>;

/**
 * The limits a run ran under: the server's policy narrowed by the request's. The core's schema,
 * with per-tool limits that keep every tool name on the way out (`__proto__` included).
 */
export const effectivePolicySchema = component(
  policyLimitsSchema.extend({
    tools: policyLimitsSchema.shape.tools.extend({
      maxCalls: ownKeyRecord(z.number().int().nonnegative(), { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } }),
    }),
  }),
  'PolicyLimits',
  'The limits that apply: the server\'s policy narrowed by the request\'s `policy`. A requested limit above the server\'s is not an error; ' +
    'the server\'s applies, and this says so.',
);

export const runMultiResponseSchema = z.object({
  batchId: z.string(),
  maxConcurrency: z.number().int().positive(),
  effectivePolicy: effectivePolicySchema,
  reports: ownKeyRecord(executionReportSchema, { type: 'object', additionalProperties: { $ref: '#/components/schemas/ExecutionReport' } }),
});

export const runStatusSchema = described(
  z.enum(['running', 'interrupted', 'SUCCESS', 'FAILED']),
  '`running` until the run has its report (queued runs of a batch included); `interrupted` when the process that ran it stopped ' +
    'before the run ended (its lease expired), so nobody runs it any more; `SUCCESS` or `FAILED` once it has its report.',
);
export type RunStatus = z.infer<typeof runStatusSchema>;

export const startRunResponseSchema = z.object({
  executionId: z.string(),
  status: z.literal('running'),
  statusUrl: z.string(),
  eventsUrl: z.string(),
  cancelUrl: z.string(),
  effectivePolicy: effectivePolicySchema,
});

const runSummaryShape = {
  executionId: z.string(),
  agent: z.string(),
  status: runStatusSchema,
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  batchId: z.string().nullable(),
  termination: terminationSchema.nullable(),
  tenant: described(
    z.string().optional(),
    'The tenant the run belongs to: the one of the API key that started it, on a server whose keys map to tenants (absent otherwise). ' +
      'GET /runs/{id} reads it from the run\'s log; the list knows it for the runs this server process started.',
  ),
};

export const runSummarySchema = component(z.object(runSummaryShape), 'RunSummary');
export type RunSummary = z.infer<typeof runSummarySchema>;

export const runListQuerySchema = z.object({
  limit: described(z.coerce.number().int().min(1).max(1000).default(50), 'At most this many runs (1 to 1000).'),
  offset: described(z.coerce.number().int().min(0).optional(), 'Skip this many runs (newest first); not with `cursor`.'),
  cursor: described(z.string().min(1).max(256).optional(), 'Continue after the previous page: its `nextCursor`.'),
  status: runStatusSchema.optional(),
  agent: agentNameSchema.optional(),
});

export const runListResponseSchema = z.object({
  runs: z.array(runSummarySchema),
  total: described(
    z.number().int().nonnegative(),
    `Runs that match the filter, over all pages, counted up to ${MAX_COUNTED_RUNS} (then \`totalCapped\` is true and there are more).`,
  ),
  totalCapped: described(
    z.literal(true).optional(),
    `Present (true) only when more runs match than \`total\` counts (${MAX_COUNTED_RUNS}): page on with \`nextCursor\`.`,
  ),
  nextCursor: z.string().nullable(),
});

export const runStateSchema = component(
  z.object({
    ...runSummaryShape,
    state: lifecycleStateSchema.nullable(),
    counters: eventCountersSchema,
    cost: described(
      costSchema.nullable(),
      'What the run has spent so far in money (integer micro-dollars, and US dollars for display), from its events; null when its policy has no prices or cost limit.',
    ),
    events: z.number().int().nonnegative(),
    report: executionReportSchema.nullable(),
    effectivePolicy: described(
      effectivePolicySchema.nullable(),
      'The limits the run runs under (beside the report, never inside it); null only when the store kept neither them nor the run\'s events.',
    ),
  }),
  'Run',
  'A run: its live state and spend while it runs, its report once finished.',
);
export type RunState = z.infer<typeof runStateSchema>;

export const runIdParamsSchema = z.object({ id: executionIdSchema });

export const cancelRequestSchema = z
  .strictObject({ reason: z.string().min(1).max(1_000).optional() })
  // No body at all is fine: Fastify hands the route null.
  .nullish();

export const cancelResponseSchema = z.object({
  executionId: z.string(),
  cancelled: z.boolean(),
  status: runStatusSchema,
  message: z.string(),
  termination: terminationSchema.nullable(),
});

export const lastEventIdSchema = z.string().regex(/^\d{1,15}$/, 'Expected the seq of an event (a non-negative integer)');

export const eventsQuerySchema = z.object({
  lastEventId: described(lastEventIdSchema.optional(), 'Resume after this event seq (the Last-Event-ID header wins).'),
});

export const eventsHeadersSchema = z.looseObject({
  'last-event-id': lastEventIdSchema.optional(),
});

export const agentsResponseSchema = z.object({
  agents: z.array(z.object({ name: z.string(), description: z.string().optional() })),
});

export const healthResponseSchema = z.object({ status: z.literal('ok'), version: z.string() });

export const serverPolicyResponseSchema = z.object({
  /** The ceiling of every run: a request's `policy` can only narrow it. */
  policy: effectivePolicySchema,
  maxConcurrency: described(z.number().int().positive(), 'Runs of one POST /run-multi at once, at most.'),
  limits: z.object({
    bodyLimit: described(z.number().int().positive(), 'Largest request body, in bytes.'),
    maxTaskLength: described(z.number().int().positive(), 'Longest task: characters of a string task, or of the JSON of any other.'),
    maxConcurrentRuns: described(z.number().int().positive(), 'Runs executing at once, over all endpoints.'),
    maxExecutionIdLength: described(z.number().int().positive(), 'Longest `executionId` a request may give.'),
  }),
});
export type ServerPolicyResponse = z.infer<typeof serverPolicyResponseSchema>;

/** Execution ids one POST /what-if may name. */
export const MAX_WHAT_IF_RUNS = 1_000;

function timeBoundSchema(description: string) {
  return described(
    z
      .string()
      .min(1)
      .max(64)
      // The form only: a duration is read against the server's clock when the request is served.
      .refine((value) => parseTimeBound(value, 0) !== undefined, `Expected ${TIME_BOUND_FORMS}`),
    description,
  );
}

export const whatIfRequestSchema = component(
  z.strictObject({
    policy: component(
      // A copy: the same checks as a run's `policy`, described as what it is here.
      requestPolicyOptionsSchema.clone(),
      'WhatIfPolicy',
      'The policy to evaluate, as every run\'s effective policy: options as `new StrictPolicy()` takes them (a limit left out takes its ' +
        'default, not the recorded one). It is not narrowed by the server\'s policy: it may be wider or narrower. `maxCostUsd` is judged ' +
        'over the costs the runs recorded; prices cannot be sent.',
    ),
    agent: described(z.string().min(1).max(200).optional(), 'Only runs of this agent (the `agentName` the run recorded).'),
    since: timeBoundSchema(`Only runs that started at or after this time: ${TIME_BOUND_FORMS}.`).optional(),
    until: timeBoundSchema(`Only runs that started before this time: ${TIME_BOUND_FORMS}.`).optional(),
    runs: described(
      z.array(executionIdSchema).min(1).max(MAX_WHAT_IF_RUNS).optional(),
      `These runs (at most ${MAX_WHAT_IF_RUNS}), in this order, instead of every run the store lists; the filters apply to them too. ` +
        'An id the store has no events of is 404 OAO_ERR_RUN_NOT_FOUND.',
    ),
  }),
  'WhatIfRequest',
);
export type WhatIfRequestBody = z.infer<typeof whatIfRequestSchema>;

const whatIfCountsShape = {
  steps: z.number().int().nonnegative(),
  tokens: z.number().nonnegative(),
  toolCalls: z.number().int().nonnegative(),
  costMicros: z.number().int().nonnegative().optional(),
};
const whatIfCountsSchema = described(
  z.object(whatIfCountsShape),
  'Steps started, tokens (total) and tool calls; and micro-dollars (`costMicros`) for runs whose policy had prices or a cost limit.',
);

export const whatIfRunSchema = component(
  z.object({
    executionId: z.string(),
    agentName: z.string(),
    same: described(
      z.boolean().nullable(),
      'Whether the run would have ended the same way having spent the same; null when its log cannot tell (see `reason`).',
    ),
    wouldStop: described(
      z
        .object({
          seq: z.number().int().nonnegative(),
          rule: z.union([policyRuleSchema, z.enum(['timeout', 'max_retries'])]),
          message: z.string(),
        })
        .nullable(),
      'Where the policy would have stopped the run: the `seq` of the refused event and the rule that refused it; null when it would not have.',
    ),
    saved: described(whatIfCountsSchema, 'What stopping at `wouldStop` would have saved; zeros without a stop.'),
    reason: described(z.string().optional(), 'Why `same` is null: present exactly then.'),
    recorded: described(
      z.object({ ...whatIfCountsShape, termination: terminationSchema.nullable() }),
      'How the recorded run ended (null while its log has no ending) and what it spent.',
    ),
  }),
  'WhatIfRun',
  'The verdict of the policy on one recorded run.',
);

export const whatIfResponseSchema = component(
  z.object({
    runs: z.array(whatIfRunSchema),
    totals: z.object({
      runs: z.number().int().nonnegative(),
      same: z.number().int().nonnegative(),
      changed: z.number().int().nonnegative(),
      unknown: z.number().int().nonnegative(),
      saved: whatIfCountsSchema,
    }),
  }),
  'WhatIfResult',
  'One verdict per run (newest first, or in the order of `runs`) and the totals: runs evaluated, how many would have ended the same, ' +
    'otherwise, or cannot be judged, and the sum of `saved`.',
);
export type WhatIfResponse = z.infer<typeof whatIfResponseSchema>;

// ---- approvals ----------------------------------------------------------------------------------

/** Longest `by` and `reason` of a decision over HTTP (the core takes up to 2000 characters). */
export const MAX_DECISION_TEXT = 1_000;

export const callIdParamsSchema = z.object({
  id: executionIdSchema,
  callId: described(z.string().min(1).max(200), 'The id of the waiting tool call (`callId` in GET /approvals and in APPROVAL_REQUESTED).'),
});

export const pendingApprovalSchema = component(
  z.object({
    executionId: z.string(),
    agentName: z.string(),
    callId: z.string(),
    tool: z.string(),
    args: described(z.unknown(), 'The arguments the agent called the tool with (JSON).'),
    step: z.number().int().nonnegative(),
    requestedAt: described(z.string(), 'When the call began to wait (ISO 8601).'),
  }),
  'PendingApproval',
  'A tool call that waits for a person to approve or deny it.',
);
export type PendingApprovalBody = z.infer<typeof pendingApprovalSchema>;

export const pendingApprovalsResponseSchema = z.object({
  approvals: described(z.array(pendingApprovalSchema), 'Oldest first.'),
});

export const decisionRequestSchema = component(
  z
    .strictObject({
      decision: z.enum(['approve', 'deny']),
      reason: described(z.string().min(1).max(MAX_DECISION_TEXT).optional(), 'Why; recorded with the decision.'),
      by: described(
        z.string().min(1).max(200).optional(),
        'Who decided. With a named API key the record says both: `<by> (key <name>)`; without `by` it is the key\'s name.',
      ),
      args: described(
        z.unknown().optional(),
        'Approve only: JSON arguments to run the tool with instead of the requested ones. They go through the tool\'s schema and the policy again.',
      ),
    })
    .refine((body) => body.args === undefined || body.decision === 'approve', {
      path: ['args'],
      message: 'Only an approval can edit the arguments: leave args out of a denial',
    }),
  'DecisionRequest',
  'A decision on a waiting tool call.',
);
export type DecisionRequestBody = z.infer<typeof decisionRequestSchema>;

export const decisionResponseSchema = component(
  z.object({
    executionId: z.string(),
    callId: z.string(),
    decision: z.enum(['approved', 'denied']),
    by: described(z.string().nullable(), 'Who the run records as having decided.'),
    reason: z.string().nullable(),
    applied: described(
      z.enum(['live', 'resumed', 'logged']),
      '`live`: the run is live in this server and went on at once. `resumed`: no process held the run; the decision was appended to its log ' +
        'and this server resumed it. `logged`: the decision was appended to the run\'s log; the run goes on when a process resumes it.',
    ),
  }),
  'Decision',
);
export type DecisionResponse = z.infer<typeof decisionResponseSchema>;

// ---- raising a paused run's budget -----------------------------------------------------------------

export const budgetRaiseRequestSchema = component(
  z.strictObject({
    limits: described(
      z
        .strictObject({
          maxSteps: z.number().int().positive().optional(),
          maxToolCalls: z.number().int().nonnegative().optional(),
          maxTokens: z.number().int().nonnegative().optional(),
        })
        .refine((limits) => limits.maxSteps !== undefined || limits.maxToolCalls !== undefined || limits.maxTokens !== undefined, {
          message: 'Name at least one limit to raise',
        }),
      'The new values: each above the run\'s current limit and at most the server\'s own policy.',
    ),
    reason: described(z.string().min(1).max(MAX_DECISION_TEXT).optional(), 'Why; recorded with the raise.'),
    by: described(z.string().min(1).max(200).optional(), 'Who raised it; recorded as for approvals.'),
  }),
  'BudgetRaiseRequest',
  'Raises the limits of a run paused at a limit (`onLimit: { maxSteps: \'pause\' }`).',
);

export const budgetRaiseResponseSchema = component(
  z.object({
    executionId: z.string(),
    limits: z.object({ maxSteps: z.number().int().optional(), maxToolCalls: z.number().int().optional(), maxTokens: z.number().int().optional() }),
    by: z.string().nullable(),
    reason: z.string().nullable(),
    applied: described(
      z.enum(['live', 'logged']),
      '`live`: the run is live in this server and went on at once. `logged`: the raise was appended to the run\'s log; the run goes on when a process resumes it (this server\'s sweep does, when it has the agent).',
    ),
  }),
  'BudgetRaise',
);
export type BudgetRaiseResponse = z.infer<typeof budgetRaiseResponseSchema>;

const tenantSpendSchema = z.object({
  runs: z.number().int(),
  steps: z.number().int(),
  tokens: z.number().int(),
  toolCalls: z.number().int(),
  costMicros: described(z.number().int(), 'US dollars of model calls, in integer micro-dollars.'),
});

export const tenantParamsSchema = z.object({ id: described(z.string().min(1).max(100), 'The tenant id.') });

export const tenantUsageSchema = component(
  z.object({
    tenant: z.string(),
    window: described(z.string(), '`day` or `month` (calendar, UTC), or `rolling:<ms>`.'),
    windowStart: described(z.string(), 'Where the counted spend starts (ISO-8601, UTC).'),
    windowEnd: described(z.string().nullable(), 'When a calendar window ends (ISO-8601, UTC); null for a rolling one.'),
    spent: tenantSpendSchema.extend({ costUsd: z.number() }),
    limits: z.object({
      maxRuns: z.number().int().nullable(),
      maxSteps: z.number().int().nullable(),
      maxTokens: z.number().int().nullable(),
      maxToolCalls: z.number().int().nullable(),
      maxCostUsd: z.number().nullable(),
    }),
  }),
  'TenantUsage',
  "A tenant's spend in its current budget window, against its limits (null: no limit).",
);
