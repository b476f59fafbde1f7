// A queued batch's shared budget across a server restart: the runs of POST /run-multi are recorded
// in a SQLite file, their jobs are lost before any worker took them, and a new server on the same
// file enqueues them again. Their jobs still name the batch (read from each run's log), so the
// workers charge the batch's budget in Redis and the runs past it are refused.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionReport } from '../../src/index.js';
import { createQueue, createWorker, type RunQueue } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oao-batch-restart-'));
}, 20_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const opened: { close(): unknown }[] = [];
afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
});

const workerAgents = { echo: (task: string) => `worker: ${task}` };
const serverAgents = { echo: (task: string) => `server: ${task}` };
/** How often each server's sweep looks for runs nobody holds. */
const LEASE_TTL_MS = 300;

/** One server process's parts on the same SQLite file and the same Redis. */
async function serverOn(path: string, queueName: string): Promise<{ app: FastifyInstance; queue: RunQueue; store: ReturnType<typeof createSqliteStore> }> {
  const store = createSqliteStore({ path });
  opened.push(store);
  const queue = await createQueue({ connection: redis.url, queueName, store });
  opened.push(queue);
  const app = await createServer({ agents: serverAgents, store, queue, dashboard: false, runLeaseTtlMs: LEASE_TTL_MS });
  opened.push(app);
  await app.ready();
  return { app, queue, store };
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('a queued batch after a server restart', () => {
  it('runs enqueued again by a new server on the same store still spend the batch\'s budget: runs past it are refused with scope shared', { timeout: 30_000 }, async () => {
    const queueName = 'batch-restart';
    const path = join(dir, 'runs.db');
    const before = await serverOn(path, queueName);
    const agents = { a: 'echo', b: 'echo', c: 'echo', d: 'echo', e: 'echo' };
    // No worker runs: every run is recorded and its job waits. Each run takes one step; the batch has two.
    const answered = before.app
      .inject({ method: 'POST', url: '/run-multi', payload: { agents, task: 'hi', policy: { maxSteps: 1 }, budget: { maxSteps: 2 } } })
      .catch(() => undefined);
    await until(async () => (await before.queue.bullQueue.getWaitingCount()) === 5);
    const jobs = await before.queue.bullQueue.getWaiting();
    const ids = jobs.map((job) => job.data.executionId);
    const batch = jobs[0]?.data.batch;
    expect(batch).toEqual(expect.any(String));
    for (const job of jobs) expect(job.data.batch).toBe(batch);
    for (const id of ids) {
      const start = before.store.events(id)[0];
      expect(start?.type === 'EXECUTION_START' ? start.payload.batch : undefined).toBe(batch);
    }

    // The server process ends; Redis loses the jobs, but not the batch's budget record.
    await before.app.close();
    await before.queue.bullQueue.drain(true);
    expect(await before.queue.bullQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).toEqual({ waiting: 0, active: 0, delayed: 0, prioritized: 0 });
    expect(await redis.client().exists(`oao:${queueName}:batch-budget:${batch}`)).toBe(1);
    await before.queue.close();
    before.store.close();

    // A new server on the same file: its sweep finds the runs nobody holds and enqueues them again.
    const after = await serverOn(path, queueName);
    await until(async () => (await after.queue.bullQueue.getWaitingCount()) === 5);
    for (const job of await after.queue.bullQueue.getWaiting()) expect(job.data.batch).toBe(batch);
    const worker = await createWorker({ connection: redis.url, queueName, store: after.store, agents: workerAgents, concurrency: 4, lockDuration: 2_000, stalledInterval: 2_000 });
    opened.push(worker);

    const reports: ExecutionReport[] = await Promise.all(ids.map((id) => after.queue.waitForReport(id)));
    // Unbounded, every run would take its step: five steps against the batch's two.
    expect(reports.reduce((sum, report) => sum + report.totalSteps, 0)).toBeLessThanOrEqual(2);
    expect(reports.filter((report) => report.status === 'SUCCESS').map((report) => report.finalOutput)).toEqual(['worker: hi', 'worker: hi']);
    const refused = reports.filter((report) => report.status === 'FAILED');
    expect(refused).toHaveLength(3);
    for (const report of refused) expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps', scope: 'shared' });
    // The new server knows each run's batch from its log, not from the old server's memory.
    for (const id of ids) expect((await after.app.inject({ method: 'GET', url: `/runs/${id}` })).json()).toMatchObject({ executionId: id, batchId: batch });
    await answered;
  });
});
