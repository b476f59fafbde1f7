import { z } from 'zod';
import { policyLimitsSchema } from '../policy/schema.js';
import { tokenUsageSchema } from '../report/schema.js';
import { oaoEventSchema } from './schema.js';

/** Why a node did not run. `node` names the node the reason comes from, where there is one. */
export const skipReasonSchema = z.object({
  /**
   * `dependency_failed`: a node it needs (directly or through skipped nodes) FAILED, named in `node`;
   * `condition`: its own `when` was false, or that of the node named in `node`;
   * `budget`: the workflow's shared budget (or its time limit) was spent;
   * `fail_fast`: another node failed under `onFailure: 'fail-fast'`;
   * `cancelled`: the workflow was cancelled.
   */
  kind: z.enum(['dependency_failed', 'condition', 'budget', 'fail_fast', 'cancelled']),
  node: z.string().optional(),
  message: z.string(),
});
export type SkipReason = z.infer<typeof skipReasonSchema>;

export const workflowHaltKindSchema = z.enum(['cancelled', 'fail_fast', 'budget']);
export type WorkflowHaltKind = z.infer<typeof workflowHaltKindSchema>;

export const sharedBudgetLimitsSchema = z.object({
  maxSteps: z.number().int().positive().optional(),
  maxTokens: z.number().int().nonnegative().optional(),
  maxToolCalls: z.number().int().nonnegative().optional(),
  timeoutMs: z.number().int().positive().optional(),
  maxCostUsd: z.number().nonnegative().optional(),
});

export const workflowCountsSchema = z.object({
  total: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  skipped: z.number().int().nonnegative(),
});
export type WorkflowCounts = z.infer<typeof workflowCountsSchema>;

function workflowEvent<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.object({
    workflowRunId: z.string(),
    /** The workflow definition's id. */
    workflow: z.string(),
    /** Position in the workflow run's stream, from 0, without gaps. */
    seq: z.number().int().nonnegative(),
    timestamp: z.number(),
    type: z.literal(type),
    payload,
  });
}

/**
 * The events of a workflow run: its own lifecycle, each node's, and every event of every node
 * run, wrapped in RUN_EVENT with the node name (and the item index for a fan-out node).
 */
export const workflowEventSchema = z.discriminatedUnion('type', [
  workflowEvent(
    'WORKFLOW_START',
    z.object({
      workflowHash: z.string(),
      nodes: z.array(z.object({ name: z.string(), needs: z.array(z.string()), fanOut: z.boolean(), conditional: z.boolean() })),
      maxConcurrency: z.number().int().positive(),
      onFailure: z.enum(['skip-dependents', 'fail-fast']),
      /** The workflow's input, the effective policy and the shared budget: what a resume needs to go on as the run began. */
      input: z.unknown(),
      policy: policyLimitsSchema,
      budget: sharedBudgetLimitsSchema.nullable(),
    }),
  ),
  /** A workflow continued from its log (`orch.resumeWorkflow()`): which nodes had finished, and which were in flight. */
  workflowEvent(
    'WORKFLOW_RESUMED',
    z.object({ owner: z.string().nullable(), settled: z.array(z.string()), inFlight: z.array(z.string()), idleMs: z.number().nonnegative() }),
  ),
  workflowEvent('NODE_READY', z.object({ node: z.string() })),
  /** The node's runs join the ready queue; `executionIds` are theirs (derived from the workflow run id, see docs/workflows.md). */
  workflowEvent('NODE_START', z.object({ node: z.string(), runs: z.number().int().nonnegative(), executionIds: z.array(z.string()) })),
  workflowEvent('RUN_EVENT', z.object({ node: z.string(), item: z.number().int().nonnegative().nullable(), event: oaoEventSchema })),
  workflowEvent(
    'NODE_COMPLETE',
    z.object({
      node: z.string(),
      status: z.enum(['SUCCESS', 'FAILED']),
      executionIds: z.array(z.string()),
      error: z.object({ name: z.string(), code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }).optional(),
    }),
  ),
  workflowEvent('NODE_SKIPPED', z.object({ node: z.string(), reason: skipReasonSchema })),
  workflowEvent('WORKFLOW_HALTED', z.object({ kind: workflowHaltKindSchema, reason: z.string(), /** The node whose failure halted a fail-fast run. */ node: z.string().optional() })),
  workflowEvent(
    'WORKFLOW_COMPLETE',
    z.object({ status: z.enum(['SUCCESS', 'FAILED']), counts: workflowCountsSchema, tokenUsage: tokenUsageSchema, executionTimeMs: z.number().nonnegative() }),
  ),
]);

/** The events a workflow run's durable log holds: its own, without the node runs' (each node run has its own log). */
export type StoredWorkflowEvent = Exclude<WorkflowEvent, { type: 'RUN_EVENT' }>;

export type WorkflowEvent = z.infer<typeof workflowEventSchema>;
export type WorkflowEventType = WorkflowEvent['type'];
export type WorkflowEventOf<T extends WorkflowEventType> = Extract<WorkflowEvent, { type: T }>;
export const workflowEventTypes = workflowEventSchema.options.map((option) => option.shape.type.value) as readonly WorkflowEventType[];
