/**
 * What the queue tests on real processes share: a private redis-server, a PostgreSQL database of
 * their own with a store on it, optionally a temporary directory, and the worker processes they
 * start, all set up before the file's tests and torn down after them (workers still running are
 * killed).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createPostgresStore, type PostgresRunStore } from '../../src/store/postgres/index.js';
import { createTestDatabase, type TestDatabase } from '../store/pgTestDb.js';
import { startTestRedis, type TestRedis } from './redisServer.js';

export interface QueueEnvironment {
  readonly redis: TestRedis;
  readonly db: TestDatabase;
  readonly store: PostgresRunStore;
  /** A temporary directory (with `tempDir`), removed afterwards. */
  readonly dir: string;
  /** Worker processes started by the file: pass it to `startWorkerProcess`. */
  readonly children: ChildProcess[];
}

/**
 * Registers the file's `beforeAll` and `afterAll` and returns the environment they fill in: read
 * its fields inside tests and hooks only. `name` names the database (`oao_test_<name>_…`) and the
 * temporary directory.
 */
export function useQueueEnvironment(name: string, options: { readonly tempDir?: boolean } = {}): QueueEnvironment {
  const env = { children: [] as ChildProcess[] } as { -readonly [K in keyof QueueEnvironment]: QueueEnvironment[K] };
  beforeAll(async () => {
    env.redis = await startTestRedis();
    env.db = await createTestDatabase(name);
    env.store = await createPostgresStore({ connectionString: env.db.connectionString });
    if (options.tempDir === true) env.dir = await mkdtemp(join(tmpdir(), `oao-${name.replaceAll('_', '-')}-`));
  }, 30_000);
  afterAll(async () => {
    for (const child of env.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await env.store?.close();
    await env.db?.drop();
    await env.redis?.destroy();
    if (env.dir !== undefined) await rm(env.dir, { recursive: true, force: true });
  }, 30_000);
  return env;
}

/** Sends `signal` to a worker process (if it still runs) and resolves once it has exited. */
export async function exitProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** Stops worker processes with SIGTERM (they close their workers) and waits for them to exit. */
export async function stopWorkers(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(children.map((child) => exitProcess(child, 'SIGTERM')));
}

/** Polls `holds` until it is true; throws `message` once `timeoutMs` has passed without it. */
export async function until(holds: () => boolean | Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await holds())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Polls until the queue holds no job that is active, waiting, delayed or prioritized (every job
 * acknowledged), then expects none to have failed. Throws `message` after `timeoutMs`.
 */
export async function untilDrained(queue: { readonly bullQueue: { getJobCounts(...types: string[]): Promise<Record<string, number>> } }, timeoutMs: number, message: string): Promise<void> {
  await until(
    async () => {
      const counts = await queue.bullQueue.getJobCounts('active', 'waiting', 'delayed', 'prioritized');
      return Object.values(counts).every((n) => n === 0);
    },
    timeoutMs,
    message,
  );
  const { failed } = await queue.bullQueue.getJobCounts('failed');
  if (failed !== 0) throw new Error(`${failed} job(s) failed while waiting for ${message}`);
}
