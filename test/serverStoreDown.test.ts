import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson, type AgentContext, type ExecutionReport } from '../src/index.js';
import { createServer, errorBodySchema, runStateSchema } from '../src/server/index.js';
import { createPostgresStore } from '../src/store/postgres/index.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { createGates } from './helpers.js';
import { startPrivatePostgres } from './store/pgTestDb.js';

/**
 * A store that is down: the server stays up, answers 503 OAO_ERR_STORE_UNAVAILABLE (retryable,
 * with Retry-After) to new runs and to reads it cannot serve, keeps what it knows of its own runs,
 * and works again as soon as the store is back, without a restart. Real stores: a private
 * PostgreSQL server stopped and started again, and a SQLite file whose write lock another
 * connection holds.
 */

const gates = createGates();
const agents = {
  echo: (task: string) => `echo: ${task}`,
  gated: async (task: string, ctx: AgentContext) => {
    await new Promise<void>((resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
      void gates.gate(task).promise.then(resolve);
    });
    return task;
  },
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  gates.openAll();
  gates.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function post(app: FastifyInstance, url: string, payload: unknown) {
  return app.inject({ method: 'POST', url, payload: payload as object });
}

function get(app: FastifyInstance, url: string) {
  return app.inject({ method: 'GET', url });
}

function expectUnavailable(response: LightMyRequestResponse, cause: string): Record<string, unknown> | undefined {
  expect(response.statusCode, response.body).toBe(503);
  expect(response.headers['retry-after']).toBe('1');
  const error = errorBodySchema.parse(response.json()).error;
  expect(error.code).toBe('OAO_ERR_STORE_UNAVAILABLE');
  expect(error.details?.cause).toBe(cause);
  return error.details;
}

/** Polls until `check` holds; bounded by the test's own timeout. */
async function waitFor(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('the run store is down', () => {
  it('PostgreSQL stopped: 503 for new runs and reads, the server stays up, and recovers when it is back', { timeout: 120_000 }, async () => {
    const pg = await startPrivatePostgres('server_down');
    cleanups.push(() => pg.destroy());
    const store = await createPostgresStore({ connectionString: pg.connectionString, connectionTimeoutMs: 5_000 });
    cleanups.push(() => store.close());
    const app = await createServer({ agents, store, runLeaseTtlMs: 600, apiKeys: [] });
    cleanups.push(() => app.close());

    const done = await post(app, '/run', { agent: 'echo', task: 'before', executionId: 'done-1' });
    expect(done.statusCode).toBe(200);
    const report = done.json<ExecutionReport>();
    expect((await post(app, '/runs', { agent: 'gated', task: 'live', executionId: 'live-1' })).statusCode).toBe(202);
    await waitFor(async () => (await get(app, '/runs/live-1')).json().state === 'EXECUTE');
    // Its first events are in the store before the outage.
    await waitFor(async () => (await store.get('live-1')) !== undefined);

    await pg.stop('fast');

    // New runs: refused before anything starts.
    expectUnavailable(await post(app, '/run', { agent: 'echo', task: 'while down' }), 'OAO_ERR_STORE_UNAVAILABLE');
    expectUnavailable(await post(app, '/runs', { agent: 'echo', task: 'while down', executionId: 'never-1' }), 'OAO_ERR_STORE_UNAVAILABLE');
    expectUnavailable(await post(app, '/run-multi', { agents: ['echo'], task: 'while down' }), 'OAO_ERR_STORE_UNAVAILABLE');
    // Reads of the store: 503 too, and the answer names no host.
    const listed = await get(app, '/runs');
    expectUnavailable(listed, 'OAO_ERR_STORE_UNAVAILABLE');
    expect(listed.body).not.toContain('127.0.0.1');
    expectUnavailable(await get(app, '/runs/done-1'), 'OAO_ERR_STORE_UNAVAILABLE');
    expectUnavailable(await get(app, '/runs/done-1/events'), 'OAO_ERR_STORE_UNAVAILABLE');
    // The server itself is up, and what needs no store still works.
    expect((await get(app, '/health')).statusCode).toBe(200);
    expect((await get(app, '/agents')).statusCode).toBe(200);
    // The live run cannot renew its lease: it ends FAILED with the store's code, and this process
    // still answers for it.
    await waitFor(async () => (await get(app, '/runs/live-1')).json().status === 'FAILED');
    const failed = runStateSchema.parse((await get(app, '/runs/live-1')).json());
    expect(failed.termination?.reason).toBe('error');
    expect(failed.report?.error?.code).toBe('OAO_ERR_STORE_UNAVAILABLE');
    // A refused run was never started: its id is free once the store is back.
    await pg.start();

    const after = await post(app, '/run', { agent: 'echo', task: 'after', executionId: 'never-1' });
    expect(after.statusCode, after.body).toBe(200);
    expect(after.json()).toMatchObject({ status: 'SUCCESS', finalOutput: 'echo: after' });
    // Nothing recorded before the outage is lost.
    const again = runStateSchema.parse((await get(app, '/runs/done-1')).json());
    expect(canonicalJson(again.report)).toBe(canonicalJson(report));
    const runs = (await get(app, '/runs')).json<{ runs: { executionId: string; status: string }[]; total: number }>();
    expect(runs.runs.map((run) => [run.executionId, run.status])).toEqual([
      ['never-1', 'SUCCESS'],
      ['live-1', 'FAILED'],
      ['done-1', 'SUCCESS'],
    ]);
    // The live run's log holds what was stored before the outage.
    const stored = await store.events('live-1');
    expect(stored[0]?.type).toBe('EXECUTION_START');
    expect(stored.some((event) => event.type === 'EXECUTION_COMPLETE')).toBe(false);
  });

  it('SQLite with its write lock held elsewhere: 503 for new runs, reads still served, new runs once it is free', { timeout: 30_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oao-store-down-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'runs.db');
    const store = createSqliteStore({ path, busyTimeoutMs: 20 });
    cleanups.push(() => store.close());
    const app = await createServer({ agents, store, apiKeys: [] });
    cleanups.push(() => app.close());
    const first = await post(app, '/run', { agent: 'echo', task: 'first', executionId: 'first-1' });
    expect(first.statusCode).toBe(200);

    // Another connection takes the file's write lock and keeps it.
    const locker = new Database(path);
    cleanups.push(() => {
      locker.close();
    });
    locker.exec('BEGIN IMMEDIATE');

    const refused = await post(app, '/run', { agent: 'echo', task: 'locked out', executionId: 'second-1' });
    expect(expectUnavailable(refused, 'OAO_ERR_STORE')?.code).toBe('SQLITE_BUSY');
    expect(refused.body).not.toContain(dir);
    // Readers never wait in WAL mode: what is stored is still served.
    expect((await get(app, '/runs')).json()).toMatchObject({ total: 1, runs: [{ executionId: 'first-1', status: 'SUCCESS' }] });
    expect((await get(app, '/runs/first-1')).json()).toMatchObject({ status: 'SUCCESS', report: { executionId: 'first-1' } });
    expect((await get(app, '/runs/second-1')).statusCode).toBe(404);

    locker.exec('ROLLBACK');
    const second = await post(app, '/run', { agent: 'echo', task: 'let in', executionId: 'second-1' });
    expect(second.statusCode, second.body).toBe(200);
    expect((await get(app, '/runs')).json().total).toBe(2);
  });
});
