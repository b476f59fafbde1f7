import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Orchestrator } from 'open-agent-orchestrator';
import { createPostgresStore, type PostgresRunStore } from 'open-agent-orchestrator/postgres';
import { createQueue, type RunQueue } from 'open-agent-orchestrator/queue';
import pg from 'pg';
import { quantile, summarize, type BenchEnv, type BenchRatio, type BenchRow, type CustomCase } from '../harness.js';

/**
 * Runs through the queue (BullMQ on a private redis-server, logs in PostgreSQL) against the same
 * trivial durable run executed in-process, measured in the same bench run:
 *
 * - `queue.inprocess.rps`: `orch.run()` with the PostgreSQL store, 64 callers at once, in this
 *   process (the baseline).
 * - `queue.w1.rps`, `queue.w2.rps`, `queue.w4.rps`: a batch enqueued at once with `queue.enqueue()`
 *   and awaited with `queue.waitForReport()`, executed by 1, 2 or 4 worker processes
 *   (`bench/queueWorker.ts`, 64 runs at once in total): runs/s from the first enqueue to the last
 *   report.
 * - `queue.first.p50`, `queue.first.p99`: enqueue to first step, one run at a time on one worker:
 *   from just before `enqueue()` to the run's STEP_START timestamp (one machine, one clock).
 *
 * redis-server (Debian's package) is started on a free loopback port and stopped here; when it or
 * PostgreSQL (127.0.0.1:5432) is missing, the rows are printed as skipped with the reason.
 */

const PG_ADMIN = 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_BINARY = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path));
/** Runs in flight at once, over every worker (and callers of the in-process baseline). */
const IN_FLIGHT = 64;
const WORKER_COUNTS = [1, 2, 4] as const;

const ROWS = [
  ['queue.inprocess.rps', `in-process durable runs/s (PostgreSQL, ${IN_FLIGHT} callers)`, 'throughput', 'runs/s'],
  ['queue.w1.rps', 'queue, 1 worker process: runs/s', 'throughput', 'runs/s'],
  ['queue.w2.rps', 'queue, 2 worker processes: runs/s', 'throughput', 'runs/s'],
  ['queue.w4.rps', 'queue, 4 worker processes: runs/s', 'throughput', 'runs/s'],
  ['queue.first.p50', 'queue: enqueue to first step, p50', 'time', 'ns/op'],
  ['queue.first.p99', 'queue: enqueue to first step, p99', 'time', 'ns/op'],
] as const;

const DESCRIPTION =
  'A trivial agent, every run recorded in PostgreSQL (127.0.0.1:5432, a database of its own); the queue rows run on worker processes ' +
  'taking jobs from BullMQ on a private redis-server (no persistence), 64 runs in flight in total.';

function rows(values: Readonly<Record<string, readonly number[]>>, skipped?: string): BenchRow[] {
  return ROWS.map(([id, label, kind, unit]): BenchRow => {
    const samples = values[id] ?? [];
    return {
      id,
      group: 'queue',
      label,
      description: DESCRIPTION,
      kind,
      unit,
      ...(samples.length > 0 ? summarize(samples) : { median: Number.NaN, min: Number.NaN, max: Number.NaN, p25: Number.NaN, p75: Number.NaN }),
      samples,
      size: 1,
      ...(skipped === undefined ? {} : { skipped }),
    };
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A private redis-server without persistence; `stop()` ends it and removes its directory. */
async function startRedis(binary: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'oao-bench-redis-'));
  const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}`)));
  });
  child.stdout.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function benchDatabase(): Promise<{ connectionString: string; drop(): Promise<void> }> {
  const name = `oao_bench_queue_${randomBytes(5).toString('hex')}`;
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 3_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query(sql);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  return { connectionString: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

const workerScript = fileURLToPath(new URL('../queueWorker.ts', import.meta.url));
/** Workers load the same code as the bench: the sources when it runs them, else the built package. */
const SOURCE_CONDITION = import.meta.resolve('open-agent-orchestrator').endsWith('.ts') ? ['--conditions=oao-source'] : [];

async function startWorkers(count: number, redisUrl: string, postgresUrl: string, queueName: string): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const child = spawn(process.execPath, [...SOURCE_CONDITION, '--import', 'tsx', workerScript, redisUrl, postgresUrl, queueName, String(Math.ceil(IN_FLIGHT / count))], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('ready')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`a bench worker exited with ${String(code)} before it was ready`)));
      });
      return child;
    }),
  );
}

async function stopWorkers(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

/** Enqueues `runs` runs at once and waits for every report: runs/s. */
async function queueSample(queue: RunQueue, runs: number, label: string): Promise<number> {
  const started = performance.now();
  const ids = await Promise.all(Array.from({ length: runs }, (_, i) => queue.enqueue({ agent: 'echo', task: `${label}-${i}` })));
  const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
  const elapsed = (performance.now() - started) / 1_000;
  if (reports.some((report) => report.status !== 'SUCCESS')) throw new Error('a queued run did not succeed');
  return runs / elapsed;
}

/** `runs` in-process durable runs, IN_FLIGHT at once: runs/s. */
async function inProcessSample(orch: Orchestrator, runs: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const caller = async (): Promise<void> => {
    while (next < runs) {
      next += 1;
      const report = await orch.run({ agent: (task: string) => `Processed: ${task}`, agentName: 'echo', task: 'x' });
      if (report.status !== 'SUCCESS') throw new Error('an in-process run did not succeed');
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, caller));
  return runs / ((performance.now() - started) / 1_000);
}

export const queueCase: CustomCase = {
  kind: 'custom',
  id: 'queue',
  group: 'queue',
  label: 'runs through the queue vs in-process',
  async run(env: BenchEnv): Promise<readonly BenchRow[]> {
    if (REDIS_BINARY === undefined) {
      env.log('skipping queue: redis-server is not installed');
      return rows({}, 'redis-server is not installed (apt-get install redis-server)');
    }
    let database: Awaited<ReturnType<typeof benchDatabase>>;
    try {
      database = await benchDatabase();
    } catch (error) {
      const reason = `PostgreSQL is not reachable at 127.0.0.1:5432 (${(error as Error).message})`;
      env.log(`skipping queue: ${reason}`);
      return rows({}, reason);
    }
    const redis = await startRedis(REDIS_BINARY);
    let store: PostgresRunStore | undefined;
    let queue: RunQueue | undefined;
    const runs = env.quick ? 300 : 1_000;
    const repetitions = env.quick ? 1 : 3;
    const values: Record<string, number[]> = {};
    const add = (id: string, value: number) => (values[id] ??= []).push(value);
    try {
      store = await createPostgresStore({ connectionString: database.connectionString });
      const orch = new Orchestrator({ store });
      await inProcessSample(orch, IN_FLIGHT);
      for (const count of WORKER_COUNTS) {
        const queueName = `bench-w${count}`;
        queue = await createQueue({ connection: redis.url, queueName, store });
        const workers = await startWorkers(count, redis.url, database.connectionString, queueName);
        try {
          env.log(`queue: warming up ${count} worker(s)`);
          await queueSample(queue, IN_FLIGHT, 'warm');
          for (let rep = 0; rep < repetitions; rep++) {
            env.log(`queue: ${count} worker(s), repetition ${rep + 1}/${repetitions}`);
            add(`queue.w${count}.rps`, await queueSample(queue, runs, `w${count}-${rep}`));
            add('queue.inprocess.rps', await inProcessSample(orch, runs));
          }
          if (count === 1) {
            const latencies: number[] = [];
            for (let i = 0; i < (env.quick ? 50 : 200); i++) {
              const before = Date.now();
              const id = await queue.enqueue({ agent: 'echo', task: `first-${i}` });
              await queue.waitForReport(id);
              const step = (await store.events(id)).find((event) => event.type === 'STEP_START');
              if (step !== undefined) latencies.push((step.timestamp - before) * 1e6);
            }
            add('queue.first.p50', quantile(latencies, 0.5));
            add('queue.first.p99', quantile(latencies, 0.99));
          }
        } finally {
          await stopWorkers(workers);
          await queue.close();
          queue = undefined;
        }
      }
      return rows(values);
    } finally {
      await queue?.close();
      await store?.close();
      await redis.stop();
      await database.drop();
    }
  },
};

export const queueRatios: readonly BenchRatio[] = [
  { id: 'queue w1/inprocess', label: 'queue with 1 worker process / in-process runs/s (runs per second, higher is better)', numerator: 'queue.w1.rps', denominator: 'queue.inprocess.rps' },
  { id: 'queue w4/inprocess', label: 'queue with 4 worker processes / in-process runs/s', numerator: 'queue.w4.rps', denominator: 'queue.inprocess.rps' },
];
