// A queued batch's shared budget on real processes: three worker processes on a private
// redis-server, runs recorded in PostgreSQL, the budget charged in Redis chunk by chunk.
import type { ChildProcess } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { OaoError, type AgentContext, type ExecutionReport, type OaoEvent, type RunStore, type StepResult } from '../../src/index.js';
import type { PostgresRunStore } from '../../src/store/postgres/index.js';
import { createQueue, createWorker, type RunQueue } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import { createMemoryStore } from '../../src/store/createMemoryStore.js';
import type { TestDatabase } from '../store/pgTestDb.js';
import type { TestRedis } from './redisServer.js';
import { useQueueEnvironment, stopWorkers } from './queueEnvironment.js';
import { startWorkerProcess } from './workerProcess.js';

const WORKERS = 3;
const CONCURRENCY = 4;
const RUNS = 30;
/** Each of a run's three model calls takes this long: runs of every worker overlap. */
const STEP_MS = 15;
/** What one run spends when nothing stops it: three model calls of 20 tokens. */
const RUN_TOKENS = 60;

let redis: TestRedis;
let db: TestDatabase;
let store: PostgresRunStore;

const env = useQueueEnvironment('queue_batch_budget');
beforeAll(() => {
  ({ redis, db, store } = env);
});

/** Starts a worker process and resolves once it takes jobs. */
async function startWorker(queueName: string): Promise<ChildProcess> {
  return startWorkerProcess('test/fixtures/batchBudgetWorkerChild.ts', [redis.url, db.connectionString, queueName, String(CONCURRENCY), String(STEP_MS)], env.children);
}


/** Enqueues the batch on three worker processes and waits for every report. */
async function runBatch(queueName: string, budget: { maxTokens: number; maxSteps?: number }): Promise<{ batchId: string; reports: ExecutionReport[] }> {
  const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(queueName)));
  const queue: RunQueue = await createQueue({ connection: redis.url, queueName, store });
  try {
    const { batchId, executionIds } = await queue.enqueueBatch({
      budget,
      // Each run's own token limit is what one run spends: its chunk is at most that.
      runs: Array.from({ length: RUNS }, (_, i) => ({ agent: 'spender', task: { n: 1 }, executionId: `${queueName}-${i}`, policy: { maxTokens: RUN_TOKENS } })),
    });
    expect(executionIds).toHaveLength(RUNS);
    const reports = await Promise.all(executionIds.map((id) => queue.waitForReport(id)));
    return { batchId, reports };
  } finally {
    await queue.close();
    await stopWorkers(workers);
  }
}

const spent = (reports: readonly ExecutionReport[]) => reports.reduce((sum, report) => sum + report.tokenUsage.total, 0);

describe('a queued batch\'s shared budget, charged in Redis by every worker', () => {
  it('never lets the runs of three workers together spend more than the batch\'s maxTokens; runs past it are refused with scope shared', { timeout: 60_000 }, async () => {
    const limit = 430;
    const { reports } = await runBatch('budget-tight', { maxTokens: limit });
    expect(reports).toHaveLength(RUNS);
    // Unbounded, the batch would spend RUNS * RUN_TOKENS = 1800 tokens.
    expect(spent(reports)).toBeLessThanOrEqual(limit);
    const succeeded = reports.filter((report) => report.status === 'SUCCESS');
    const refused = reports.filter((report) => report.status === 'FAILED');
    expect(succeeded.length).toBeGreaterThan(0);
    expect(succeeded.length).toBeLessThanOrEqual(Math.floor(limit / RUN_TOKENS));
    expect(refused.length).toBeGreaterThan(0);
    for (const report of refused) {
      expect(report.termination.reason).toBe('policy_violation');
      expect(report.termination.scope).toBe('shared');
      expect(report.termination.rule).toBe('max_tokens');
    }
    // Most runs found the budget spent and never called their agent.
    expect(refused.filter((report) => report.totalSteps === 0).length).toBeGreaterThan(0);
  });

  it('with a generous budget every run succeeds, and the record ends holding the limit minus what the runs spent', { timeout: 60_000 }, async () => {
    const budget = { maxTokens: 5_000, maxSteps: 200 };
    const { batchId, reports } = await runBatch('budget-generous', budget);
    expect(reports.map((report) => report.status)).toEqual(Array.from({ length: RUNS }, () => 'SUCCESS'));
    const tokens = spent(reports);
    const steps = reports.reduce((sum, report) => sum + report.totalSteps, 0);
    expect(tokens).toBe(RUNS * RUN_TOKENS);
    expect(steps).toBe(RUNS * 3);
    const record = await redis.client().hgetall(`oao:budget-generous:batch-budget:${batchId}`);
    expect(Number(record.tokens)).toBe(budget.maxTokens - tokens);
    expect(Number(record.steps)).toBe(budget.maxSteps - steps);
    // Every run gave its chunk back: no chunk is held any more.
    expect(Object.keys(record).filter((field) => field.startsWith('run:'))).toEqual([]);
    expect(await redis.client().pttl(`oao:budget-generous:batch-budget:${batchId}`)).toBeGreaterThan(0);
  });
});

describe('POST /run-multi with a queue and a budget', () => {
  it('charges the batch\'s budget on the workers: runs past it are refused with scope shared; a timeoutMs is refused', { timeout: 30_000 }, async () => {
    const queueName = 'budget-http';
    const memory = createMemoryStore();
    const queue = await createQueue({ connection: redis.url, queueName, store: memory });
    const worker = await createWorker({ connection: redis.url, queueName, store: memory, agents: { echo: (task: string) => `worker: ${task}` }, concurrency: 4, lockDuration: 2_000, stalledInterval: 2_000 });
    const app = await createServer({ agents: { echo: (task: string) => `server: ${task}` }, store: memory, queue, dashboard: false });
    try {
      const agents = { a: 'echo', b: 'echo', c: 'echo', d: 'echo', e: 'echo' };
      // Each run takes one step (its own maxSteps is 1): the batch's two steps go to two runs.
      const answer = await app.inject({ method: 'POST', url: '/run-multi', payload: { agents, task: 'hi', policy: { maxSteps: 1 }, budget: { maxSteps: 2 } } });
      expect(answer.statusCode).toBe(200);
      const { reports } = answer.json<{ reports: Record<string, ExecutionReport> }>();
      const all = Object.values(reports);
      expect(all).toHaveLength(5);
      expect(all.filter((report) => report.status === 'SUCCESS').map((report) => report.finalOutput)).toEqual(['worker: hi', 'worker: hi']);
      const refused = all.filter((report) => report.status === 'FAILED');
      expect(refused).toHaveLength(3);
      for (const report of refused) expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps', scope: 'shared' });
      expect(all.reduce((sum, report) => sum + report.totalSteps, 0)).toBe(2);

      const timed = await app.inject({ method: 'POST', url: '/run-multi', payload: { agents, task: 'hi', budget: { maxSteps: 2, timeoutMs: 1_000 } } });
      expect(timed.statusCode).toBe(400);
      expect(timed.json()).toMatchObject({ error: { code: 'OAO_ERR_INVALID_ARGUMENT' } });
    } finally {
      await app.close();
      await worker.close();
      await queue.close();
    }
  });
});

describe('a run of a queued batch whose log failed to be stored', () => {
  it('keeps its chunk for the attempt that continues it: the batch is charged once', { timeout: 30_000 }, async () => {
    const memory = createMemoryStore();
    // The store refuses the append of the run's second STEP_COMPLETE once, as a database that is
    // briefly unreachable would: the run ends without its log and BullMQ tries the job again.
    let failed = false;
    const failing = new Proxy(memory, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (key === 'append') {
          return (id: string, events: readonly OaoEvent[], options: unknown) => {
            if (!failed && events.some((event) => event.type === 'STEP_COMPLETE' && event.payload.step === 2)) {
              failed = true;
              throw new OaoError('OAO_ERR_STORE', 'the store refused one append');
            }
            return (value as (...args: unknown[]) => unknown).call(target, id, events, options);
          };
        }
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as RunStore;
    const agent = {
      async invoke(input: { n: number }, ctx: AgentContext) {
        await new Promise((resolve) => setImmediate(resolve));
        return { output: { step: ctx.step, n: input.n } };
      },
      review(result: StepResult) {
        return result.step >= 3 ? { done: true as const } : { done: false as const, input: { n: result.step + 1 } };
      },
    };
    const queueName = 'budget-store-failed';
    const queue = await createQueue({ connection: redis.url, queueName, store: failing });
    const worker = await createWorker({ connection: redis.url, queueName, store: failing, agents: { stepper: agent }, onError: () => {} });
    try {
      const { batchId, executionIds } = await queue.enqueueBatch({ budget: { maxSteps: 20 }, runs: [{ agent: 'stepper', task: { n: 1 }, policy: { maxSteps: 3 } }] });
      const report = await queue.waitForReport(executionIds[0] as string);
      expect(failed).toBe(true);
      expect(report).toMatchObject({ status: 'SUCCESS', totalSteps: 3 });
      await expect.poll(async () => (await queue.bullQueue.getJobCounts('active', 'waiting', 'delayed')), { timeout: 10_000 }).toEqual({ active: 0, waiting: 0, delayed: 0 });
      const record = await redis.client().hgetall(`oao:${queueName}:batch-budget:${batchId}`);
      // Charged twice, the steps before the failure would leave 14.
      expect(Number(record.steps)).toBe(20 - 3);
      expect(Object.keys(record).filter((field) => field.startsWith('run:'))).toEqual([]);
    } finally {
      await worker.close();
      await queue.close();
    }
  });
});
