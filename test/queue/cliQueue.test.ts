// `oao worker` and `oao serve --redis` as real processes, on a private redis-server and PostgreSQL.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../store/pgTestDb.js';
import { postJson, startOao } from '../oaoProcess.js';
import { startTestRedis, type TestRedis } from './redisServer.js';

let redis: TestRedis;
let db: TestDatabase;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  redis = await startTestRedis();
  db = await createTestDatabase('cli_queue');
}, 30_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await db?.drop();
  await redis?.destroy();
}, 30_000);

describe('oao worker and oao serve --redis', () => {
  it('the server enqueues POST /run, a worker process runs it, and both stop cleanly on SIGTERM', { timeout: 60_000 }, async () => {
    const worker = startOao(['worker', 'test/fixtures/queueModule.ts', '--redis', redis.url, '--store', db.connectionString, '--concurrency', '2'], { children });
    while (!worker.output().includes('OAO worker')) {
      if (worker.child.exitCode !== null) throw new Error(`oao worker exited:\n${worker.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const server = startOao(['serve', 'test/fixtures/queueModule.ts', '--port', '0', '--redis', redis.url, '--store', db.connectionString, '--no-dashboard'], { children });
    const base = await server.listening;
    expect(server.output()).toContain(`runs enqueued on ${redis.url}`);

    const answer = await postJson(base, '/run', { agent: 'whoami', task: 'hello' });
    expect(answer.status).toBe(200);
    const report = (await answer.json()) as { status: string; finalOutput: string };
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe(`hello by pid ${String(worker.child.pid)}`);

    server.child.kill('SIGTERM');
    worker.child.kill('SIGTERM');
    const [served, worked] = await Promise.all([server.finished, worker.finished]);
    expect(served.code).toBe(0);
    expect(worked.code).toBe(0);
    expect(worked.stdout).toContain('OAO worker stopped');
  });

  it('refuses a worker without a shareable store, a --redis that is not a Redis URL, and says what to install without bullmq', { timeout: 45_000 }, async () => {
    const memory = await startOao(['worker', 'test/fixtures/queueModule.ts', '--redis', redis.url, '--store', 'memory'], { children }).finished;
    expect(memory.code).not.toBe(0);
    expect(memory.stderr).toContain('OAO_ERR_CLI_USAGE');
    const badUrl = await startOao(['worker', 'test/fixtures/queueModule.ts', '--redis', 'http://127.0.0.1:1', '--store', db.connectionString], { children }).finished;
    expect(badUrl.code).not.toBe(0);
    expect(badUrl.stderr).toContain('--redis must be a redis://');
    const missing = await startOao(['worker', 'test/fixtures/queueModule.ts', '--redis', redis.url, '--store', db.connectionString], {
      children,
      env: { OAO_HIDE_PACKAGES: 'bullmq,ioredis' },
      preload: ['./test/fixtures/hidePackages.ts'],
    }).finished;
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('OAO_ERR_MISSING_PACKAGE');
    expect(missing.stderr).toContain('npm install bullmq ioredis');
  });
});
