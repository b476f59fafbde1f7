/**
 * `open-agent-orchestrator/queue`: runs on workers in other processes and hosts, through BullMQ on
 * Redis, with every run's log in a shared store. Needs the optional peer dependencies `bullmq`
 * and `ioredis`, loaded by the first `createQueue()` or `createWorker()`. See docs/distributed.md.
 */
export { createQueue, type QueueOptions, type QueuedBatchBudget, type QueuedBatchOptions, type QueuedBatchRequest, type QueuedRunRequest, type RunQueue } from './createQueue.js';
export { createWorker, type RunWorker, type WorkerOptions } from './createWorker.js';
export { DEFAULT_QUEUE_NAME, type RedisConnection } from './redisConnection.js';
export type { RunJobData, RunJobResult } from './jobData.js';
