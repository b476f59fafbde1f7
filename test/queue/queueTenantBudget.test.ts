// A tenant's budget window on a queue, on real processes: three worker processes and two servers
// share one private redis-server, runs are recorded in PostgreSQL. Servers admit a tenant's runs
// atomically in Redis; workers take each run's chunk of what the tenant has left and charge what
// it spent when it ends.
import type { ChildProcess } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionReport } from '../../src/index.js';
import { createQueue, type RunQueue } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import type { PostgresRunStore } from '../../src/store/postgres/index.js';
import type { TenantBudgetOptions } from '../../src/tenants/tenantBudget.js';
import { spanAt } from '../../src/tenants/windows.js';
import type { TestDatabase } from '../store/pgTestDb.js';
import type { TestRedis } from './redisServer.js';
import { useQueueEnvironment, stopWorkers, untilDrained } from './queueEnvironment.js';
import { startWorkerProcess } from './workerProcess.js';

const WORKERS = 3;
/** What one run of the `spender` agent spends when nothing stops it: three model calls of 20 tokens. */
const RUN_TOKENS = 60;

let redis: TestRedis;
let db: TestDatabase;
let store: PostgresRunStore;

const env = useQueueEnvironment('queue_tenant_budget');
beforeAll(() => {
  ({ redis, db, store } = env);
});

async function startWorkers(queueName: string): Promise<ChildProcess[]> {
  return Promise.all(Array.from({ length: WORKERS }, () => startWorkerProcess('test/fixtures/batchBudgetWorkerChild.ts', [redis.url, db.connectionString, queueName, '4', '15'], env.children)));
}


/**
 * A server whose runs go to the queue's workers; the key `<tenant>-key` belongs to `tenant` with
 * `budget`. Each test has a tenant of its own: the store's counters are per tenant, not per queue.
 */
async function serve(queue: RunQueue, tenant: string, budget: TenantBudgetOptions, runLeaseTtlMs?: number): Promise<FastifyInstance> {
  const app = await createServer({
    agents: { spender: () => 'never runs here' },
    store,
    queue,
    dashboard: false,
    ...(runLeaseTtlMs === undefined ? {} : { runLeaseTtlMs }),
    apiKeys: { [`${tenant}-key`]: { tenant, budget } },
  });
  await app.ready();
  return app;
}

const tokensOf = (reports: readonly ExecutionReport[]) => reports.reduce((sum, report) => sum + report.tokenUsage.total, 0);

describe("a tenant's window on a queue", () => {
  it("never lets the tenant's runs on three workers together spend more than its maxTokens; runs past it end with scope tenant", { timeout: 90_000 }, async () => {
    const queueName = 'tenant-tight';
    const limit = 430;
    const workers = await startWorkers(queueName);
    const queue = await createQueue({ connection: redis.url, queueName, store });
    const app = await serve(queue, 'acme', { window: 'day', maxTokens: limit });
    const KEY = { authorization: 'Bearer acme-key' };
    try {
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        // Each run's own maxTokens is what it spends: its chunk of the tenant's window is at most that.
        const answer = await app.inject({ method: 'POST', url: '/runs', headers: KEY, payload: { agent: 'spender', task: { n: 1 }, policy: { maxTokens: RUN_TOKENS } } });
        if (answer.statusCode === 429) break;
        expect(answer.statusCode).toBe(202);
        ids.push(answer.json<{ executionId: string }>().executionId);
      }
      const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
      // Unbounded, 30 runs would spend 1,800 tokens.
      expect(tokensOf(reports)).toBeLessThanOrEqual(limit);
      const succeeded = reports.filter((report) => report.status === 'SUCCESS');
      expect(succeeded.length).toBeGreaterThan(0);
      expect(succeeded.length).toBeLessThanOrEqual(Math.floor(limit / RUN_TOKENS));
      const refused = reports.filter((report) => report.status === 'FAILED');
      expect(refused.length).toBeGreaterThan(0);
      for (const report of refused) expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' });

      // A report can be read as soon as its log is stored; the worker gives the run's chunk back
      // after that, then acknowledges the job: wait for every job before reading the window.
      await untilDrained(queue, 20_000, 'every run acknowledged, its chunk given back');
      // Every run gave its chunk back, and the window's span holds exactly what the runs spent.
      const record = await redis.client().hgetall(`oao:${queueName}:tenant:acme`);
      expect(Object.keys(record).filter((field) => field.startsWith('run:'))).toEqual([]);
      expect(Number(record['held:tokens'] ?? 0)).toBe(0);
      expect(record).toMatchObject({ window: 'day', 'max:tokens': String(limit) });
      const span = await redis.client().hgetall(`oao:${queueName}:tenant-span:acme:${spanAt('day', Date.now()).key}`);
      expect(Number(span.tokens)).toBe(tokensOf(reports));
      expect(Number(span.runs)).toBe(ids.length);
      expect(await redis.client().zcard(`oao:${queueName}:tenant-holds:acme`)).toBe(0);
    } finally {
      await app.close();
      await queue.close();
      await stopWorkers(workers);
    }
  });

  it("admits the tenant's runs atomically over two servers: maxRuns holds whichever server a request reaches", { timeout: 60_000 }, async () => {
    const queueName = 'tenant-runs';
    const queue = await createQueue({ connection: redis.url, queueName, store });
    const budget: TenantBudgetOptions = { window: 'day', maxRuns: 10 };
    const apps = [await serve(queue, 'beta', budget), await serve(queue, 'beta', budget)];
    const KEY = { authorization: 'Bearer beta-key' };
    try {
      // No worker runs: the runs stay queued; only their admission is counted.
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          (apps[i % 2] as FastifyInstance).inject({ method: 'POST', url: '/runs', headers: KEY, payload: { agent: 'spender', task: { n: 1 } } }),
        ),
      );
      const codes = answers.map((answer) => answer.statusCode);
      expect(codes.filter((code) => code === 202)).toHaveLength(10);
      const refused = answers.filter((answer) => answer.statusCode === 429);
      expect(refused).toHaveLength(20);
      for (const answer of refused) {
        expect(answer.json()).toMatchObject({ error: { code: 'OAO_ERR_TENANT_BUDGET', details: { tenant: 'beta', limit: 'maxRuns', max: 10, scope: 'tenant' } } });
        expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
      }
    } finally {
      for (const app of apps) await app.close();
      await queue.close();
    }
  });

  it('keeps the window when the server restarts and Redis loses its data: the run store seeds it again', { timeout: 90_000 }, async () => {
    const queueName = 'tenant-restart';
    // Two runs spend exactly the window's 120 tokens.
    const budget: TenantBudgetOptions = { window: 'day', maxTokens: 2 * RUN_TOKENS };
    const workers = await startWorkers(queueName);
    const KEY = { authorization: 'Bearer gamma-key' };
    try {
      let queue = await createQueue({ connection: redis.url, queueName, store });
      let app = await serve(queue, 'gamma', budget);
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const answer = await app.inject({ method: 'POST', url: '/runs', headers: KEY, payload: { agent: 'spender', task: { n: 1 }, policy: { maxTokens: RUN_TOKENS } } });
        expect(answer.statusCode).toBe(202);
        ids.push(answer.json<{ executionId: string }>().executionId);
      }
      const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
      expect(reports.map((report) => report.status)).toEqual(['SUCCESS', 'SUCCESS']);
      // Both chunks given back (after the reports were stored) before Redis loses everything.
      await untilDrained(queue, 20_000, 'both runs acknowledged, their chunks given back');
      // The server charged the store's counters from the reports once they reached it.
      await expect.poll(async () => (await app.inject({ method: 'GET', url: '/tenants/gamma/usage', headers: KEY })).json().spent.tokens, { timeout: 10_000 }).toBe(2 * RUN_TOKENS);
      await app.close();
      await queue.close();

      // Redis loses everything (no persistence); a new server starts on the same store.
      await redis.client().flushall();
      queue = await createQueue({ connection: redis.url, queueName, store });
      app = await serve(queue, 'gamma', budget);
      try {
        const refused = await app.inject({ method: 'POST', url: '/runs', headers: KEY, payload: { agent: 'spender', task: { n: 1 }, policy: { maxTokens: RUN_TOKENS } } });
        expect(refused.statusCode).toBe(429);
        expect(refused.json()).toMatchObject({ error: { code: 'OAO_ERR_TENANT_BUDGET', details: { limit: 'maxTokens', max: 2 * RUN_TOKENS, spent: 2 * RUN_TOKENS } } });
        const span = await redis.client().hgetall(`oao:${queueName}:tenant-span:gamma:${spanAt('day', Date.now()).key}`);
        expect(span).toMatchObject({ seeded: '1', tokens: String(2 * RUN_TOKENS), runs: '2' });
      } finally {
        await app.close();
        await queue.close();
      }
    } finally {
      await stopWorkers(workers);
    }
  });

  it("a run enqueued again from its log (its job lost) still runs under its tenant's window", { timeout: 60_000 }, async () => {
    const queueName = 'tenant-requeue';
    const budget: TenantBudgetOptions = { window: 'day', maxTokens: 100 };
    const KEY = { authorization: 'Bearer delta-key' };
    let queue = await createQueue({ connection: redis.url, queueName, store });
    let app = await serve(queue, 'delta', budget, 300);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const answer = await app.inject({ method: 'POST', url: '/runs', headers: KEY, payload: { agent: 'spender', task: { n: 1 }, policy: { maxTokens: RUN_TOKENS } } });
      expect(answer.statusCode).toBe(202);
      ids.push(answer.json<{ executionId: string }>().executionId);
    }
    // No worker took them; the server goes, and Redis loses the jobs (not the tenant's window).
    await app.close();
    await queue.bullQueue.drain(true);
    await queue.close();

    queue = await createQueue({ connection: redis.url, queueName, store });
    app = await serve(queue, 'delta', budget, 300);
    const workers: ChildProcess[] = [];
    try {
      // The new server's sweep enqueues the runs again, with the tenant their logs name.
      await expect.poll(async () => (await queue.bullQueue.getWaiting()).map((job) => job.data.tenant), { timeout: 20_000 }).toEqual(['delta', 'delta', 'delta']);
      workers.push(...(await startWorkers(queueName)));
      const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
      // Unbounded, the three runs would spend 180 tokens.
      expect(tokensOf(reports)).toBeLessThanOrEqual(100);
      expect(reports.filter((report) => report.status === 'SUCCESS')).toHaveLength(1);
      for (const report of reports.filter((entry) => entry.status === 'FAILED')) expect(report.termination).toMatchObject({ rule: 'max_tokens', scope: 'tenant' });
    } finally {
      await app.close();
      await queue.close();
      await stopWorkers(workers);
    }
  });
});
