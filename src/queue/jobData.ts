import { z } from 'zod';
import { policyOptionsSchema } from '../policy/schema.js';
import { BATCH_ID } from '../runtime/batchId.js';
import { TENANT_ID } from '../tenants/tenantKeys.js';

/**
 * What a queued job carries: a run request by name, never code. The worker looks the agent up in
 * its own module; the run's log, once started, lives in the store under `executionId`, which is
 * also the BullMQ job id (one job per run).
 */
export const runJobSchema = z.strictObject({
  executionId: z.string().min(1).max(128),
  agent: z.string().min(1).max(200),
  task: z.unknown().refine((task) => task !== undefined, 'a task is required'),
  policy: policyOptionsSchema.optional(),
  /** The run's tenant (see `RunRequest.tenant`). Workers older than this field refuse a job that has it. */
  tenant: z.string().regex(TENANT_ID, 'a tenant id: 1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit').optional(),
  /**
   * Set by `enqueue()` when it generated the execution id itself: no log of the run can exist
   * before the job first starts, so the worker skips looking for one then (a job started again
   * looks). Workers older than this field refuse a job that has it.
   */
  fresh: z.literal(true).optional(),
  /**
   * The queued batch the run belongs to (see `RunQueue.createBatch`): the worker takes the run's
   * chunk of the batch's shared budget from Redis before the run starts. Workers older than this
   * field refuse a job that has it.
   */
  batch: z.string().regex(BATCH_ID, 'a batch id: 1 to 128 letters, digits, ".", "_" or "-"').optional(),
});

export type RunJobData = z.infer<typeof runJobSchema>;

/**
 * A job's return value in BullMQ: the report itself is in the store. `WAITING`: the run waits for
 * a person's decision on a tool call, unloaded; the decision enqueues it again.
 */
export interface RunJobResult {
  readonly executionId: string;
  readonly status: 'SUCCESS' | 'FAILED' | 'WAITING';
}
