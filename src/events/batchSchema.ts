import { z } from 'zod';
import { terminationSchema } from '../report/schema.js';
import { oaoEventSchema } from './schema.js';

export const jobRefSchema = z.object({
  /** Position of the job in the submitted list. */
  index: z.number().int().nonnegative(),
  /** The job's name (the key in `runMulti`'s agents, or `job-<index>`). */
  name: z.string(),
});
export type JobRef = z.infer<typeof jobRefSchema>;

export const batchProgressSchema = z.object({
  total: z.number().int().nonnegative(),
  queued: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  finished: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});
export type BatchProgress = z.infer<typeof batchProgressSchema>;

export const haltKindSchema = z.enum(['cancelled', 'fail_fast', 'shared_budget', 'timeout']);
export type HaltKind = z.infer<typeof haltKindSchema>;

function batchEvent<T extends string, P extends z.ZodType>(type: T, payload: P) {
  return z.object({
    batchId: z.string(),
    /** Position in the batch's stream, from 0, without gaps. */
    seq: z.number().int().nonnegative(),
    timestamp: z.number(),
    type: z.literal(type),
    payload,
  });
}

/**
 * The events of a supervised batch: its own lifecycle, plus every event of every child run,
 * wrapped in RUN_EVENT and tagged with the job it belongs to.
 */
export const batchEventSchema = z.discriminatedUnion('type', [
  batchEvent('BATCH_START', z.object({ total: z.number().int().nonnegative(), maxConcurrency: z.number().int().positive() })),
  batchEvent('JOB_QUEUED', z.object({ job: jobRefSchema, priority: z.number() })),
  batchEvent('JOB_STARTED', z.object({ job: jobRefSchema, executionId: z.string() })),
  batchEvent('RUN_EVENT', z.object({ job: jobRefSchema, event: oaoEventSchema })),
  batchEvent(
    'JOB_FINISHED',
    z.object({ job: jobRefSchema, executionId: z.string(), status: z.enum(['SUCCESS', 'FAILED']), termination: terminationSchema, started: z.boolean() }),
  ),
  batchEvent('BATCH_PROGRESS', batchProgressSchema),
  batchEvent('BATCH_HALTED', z.object({ kind: haltKindSchema, reason: z.string() })),
  batchEvent('BATCH_COMPLETE', batchProgressSchema),
]);

export type BatchEvent = z.infer<typeof batchEventSchema>;
export type BatchEventType = BatchEvent['type'];
export type BatchEventOf<T extends BatchEventType> = Extract<BatchEvent, { type: T }>;
export const batchEventTypes = batchEventSchema.options.map((option) => option.shape.type.value) as readonly BatchEventType[];
