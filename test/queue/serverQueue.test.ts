// createServer({ queue }): the HTTP service enqueues runs for workers instead of running them itself.
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { AgentContext } from '../../src/index.js';
import { createMemoryStore } from '../../src/store/createMemoryStore.js';
import { createQueue, createWorker, type RunWorker } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import { deferred } from '../helpers.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();

const opened: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
});

const started = deferred();
async function waiting(_task: unknown, ctx: AgentContext): Promise<string> {
  started.resolve();
  await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
  return 'never';
}

async function approving(task: string, ctx: AgentContext): Promise<unknown> {
  return ctx.callTool('send', { to: task });
}

/** The worker's agents answer differently from the server's: a report shows who ran the run. */
const workerAgents = { echo: (task: string) => `worker: ${task}`, waiting, approving };
const serverAgents = { echo: (task: string) => `server: ${task}`, waiting: () => 'server', approving: () => 'server' };
/** Both sides load the same module: the same tools, and the same policy (calls of `send` wait for a person). */
const tools = { send: (args: { to: string }) => `sent to ${args.to}` };
const policy = { tools: { approve: ['send'] } };

let counter = 0;
async function setup(options: { worker?: boolean; runLeaseTtlMs?: number; enqueueTimeoutMs?: number } = {}) {
  const queueName = `http${++counter}`;
  const store = createMemoryStore();
  const queue = await createQueue({ connection: redis.url, queueName, store, enqueueTimeoutMs: options.enqueueTimeoutMs ?? 2_000 });
  opened.push(queue);
  const startWorker = async (): Promise<RunWorker> => {
    const worker = await createWorker({ connection: redis.url, queueName, store, agents: workerAgents, tools, policy, concurrency: 4, lockDuration: 2_000, stalledInterval: 2_000 });
    opened.push(worker);
    return worker;
  };
  if (options.worker !== false) await startWorker();
  const app: FastifyInstance = await createServer({ agents: serverAgents, tools, policy, store, queue, dashboard: false, ...(options.runLeaseTtlMs === undefined ? {} : { runLeaseTtlMs: options.runLeaseTtlMs }) });
  opened.push(app);
  return { app, store, queue, startWorker };
}

describe('createServer({ queue })', () => {
  it('POST /run is run by a worker and answers its report', { timeout: 20_000 }, async () => {
    const { app, store } = await setup();
    const answer = await app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'hi', executionId: 'via-queue' } });
    expect(answer.statusCode).toBe(200);
    expect(answer.json()).toMatchObject({ executionId: 'via-queue', status: 'SUCCESS', finalOutput: 'worker: hi' });
    // The server recorded the start before it enqueued; the worker continued from there.
    const types = store.events('via-queue').map((event) => event.type);
    expect(types[0]).toBe('EXECUTION_START');
    expect(types.filter((type) => type === 'EXECUTION_START')).toHaveLength(1);
    expect(types.at(-1)).toBe('EXECUTION_COMPLETE');
  });

  it('POST /runs answers 202 at once; GET and the event stream follow the run on the worker', { timeout: 20_000 }, async () => {
    const { app, queue } = await setup();
    const answer = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'echo', task: 'later', policy: { maxSteps: 2 } } });
    expect(answer.statusCode).toBe(202);
    const { executionId, effectivePolicy } = answer.json<{ executionId: string; effectivePolicy: { maxSteps: number } }>();
    expect(effectivePolicy.maxSteps).toBe(2);
    const streamed = await app.inject({ method: 'GET', url: `/runs/${executionId}/events` });
    expect(streamed.body).toContain('event: EXECUTION_COMPLETE');
    const report = await queue.waitForReport(executionId);
    expect(report.finalOutput).toBe('worker: later');
    const state = await app.inject({ method: 'GET', url: `/runs/${executionId}` });
    expect(state.json()).toMatchObject({ status: 'SUCCESS' });
  });

  it('POST /runs/:id/cancel reaches the worker that runs the run', { timeout: 20_000 }, async () => {
    const { app } = await setup();
    const answer = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'waiting', task: 'x' } });
    const { executionId } = answer.json<{ executionId: string }>();
    await started.promise;
    const cancelled = await app.inject({ method: 'POST', url: `/runs/${executionId}/cancel`, payload: { reason: 'enough' } });
    expect(cancelled.statusCode).toBe(202);
    expect(cancelled.json()).toMatchObject({ cancelled: true, status: 'FAILED', termination: { reason: 'cancelled' } });
  });

  it('answers 503 OAO_ERR_QUEUE_UNAVAILABLE while Redis is paused; the refused run is ended, not left to run', { timeout: 20_000 }, async () => {
    const { app, store } = await setup({ enqueueTimeoutMs: 300 });
    await redis.client().call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const refused = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'echo', task: 'paused', executionId: 'refused' } });
    expect(refused.statusCode).toBe(503);
    expect(refused.json()).toMatchObject({ error: { code: 'OAO_ERR_QUEUE_UNAVAILABLE' } });
    expect(store.report('refused')).toMatchObject({ status: 'FAILED', error: { code: 'OAO_ERR_QUEUE_UNAVAILABLE' } });
    // Once Redis is back, new runs are taken again.
    let answer;
    do answer = await app.inject({ method: 'POST', url: '/run', payload: { agent: 'echo', task: 'back' } });
    while (answer.statusCode === 503);
    expect(answer.json()).toMatchObject({ finalOutput: 'worker: back' });
  });

  it('a run accepted while no worker ran, whose job Redis lost in a restart, is enqueued again and runs', { timeout: 30_000 }, async () => {
    const { app, queue, startWorker } = await setup({ worker: false, runLeaseTtlMs: 300 });
    const answer = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'echo', task: 'kept', executionId: 'kept' } });
    expect(answer.statusCode).toBe(202);
    // Redis restarts without persistence: the job is gone, the store still has the run.
    await redis.stop();
    await redis.start();
    await startWorker();
    const report = await queue.waitForReport('kept');
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'worker: kept' });
  });

  it('a run waiting for approval leaves its worker; a decision on any server continues it on a worker', { timeout: 20_000 }, async () => {
    const { app, store, queue } = await setup();
    const answer = await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'approving', task: 'the ceo', executionId: 'needs-ok' } });
    expect(answer.statusCode).toBe(202);
    // The worker unloads the waiting run: its request is in the log, and nobody holds it.
    while (!(store.events('needs-ok').some((event) => event.type === 'APPROVAL_REQUESTED') && store.get('needs-ok')?.status === 'interrupted')) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const decided = await app.inject({ method: 'POST', url: '/runs/needs-ok/approvals/t1', payload: { decision: 'approve', by: 'alice' } });
    expect(decided.statusCode).toBe(200);
    const report = await queue.waitForReport('needs-ok');
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: 'sent to the ceo' });
    expect(report.approvals?.[0]).toMatchObject({ callId: 't1', decision: 'approved', by: 'alice' });
  });

  it('a cancel reaches a run that waits for approval, unloaded from its worker', { timeout: 20_000 }, async () => {
    const { app, store, queue } = await setup();
    await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'approving', task: 'nobody', executionId: 'drop-it' } });
    while (!(store.events('drop-it').some((event) => event.type === 'APPROVAL_REQUESTED') && store.get('drop-it')?.status === 'interrupted')) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const cancelled = await app.inject({ method: 'POST', url: '/runs/drop-it/cancel', payload: { reason: 'not needed' } });
    expect(cancelled.statusCode).toBe(202);
    const report = await queue.waitForReport('drop-it');
    expect(report).toMatchObject({ status: 'FAILED', termination: { reason: 'cancelled' } });
  });

  it('POST /run-multi runs each job on the workers and answers every report', { timeout: 20_000 }, async () => {
    const { app } = await setup();
    const answer = await app.inject({ method: 'POST', url: '/run-multi', payload: { agents: { first: 'echo', second: 'echo' }, task: 'both' } });
    expect(answer.statusCode).toBe(200);
    const body = answer.json<{ reports: Record<string, { status: string; finalOutput: string; executionId: string }> }>();
    expect(body.reports.first).toMatchObject({ status: 'SUCCESS', finalOutput: 'worker: both' });
    expect(body.reports.second).toMatchObject({ status: 'SUCCESS', finalOutput: 'worker: both' });
    expect(body.reports.first?.executionId).not.toBe(body.reports.second?.executionId);
  });
});
