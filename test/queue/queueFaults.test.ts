// Worker death on real processes: worker processes on a private redis-server, runs recorded in
// PostgreSQL, one worker killed with SIGKILL in the middle of a batch.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OaoEvent } from '../../src/index.js';
import type { PostgresRunStore } from '../../src/store/postgres/index.js';
import { createQueue, type RunQueue } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import { bodyRuns } from '../fixtures/queueAgents.js';
import type { TestDatabase } from '../store/pgTestDb.js';
import type { TestRedis } from './redisServer.js';
import { useQueueEnvironment } from './queueEnvironment.js';
import { startWorkerProcess } from './workerProcess.js';

/** Runs in the batch. */
const RUNS = 300;
const WORKERS = 3;
const CONCURRENCY = 8;
/** Each of a run's three steps waits this long after its tool call: runs are in flight when the kill comes. */
const STEP_MS = 40;
/** lockDuration and stalledInterval of the workers: the dead worker's jobs are handed on within about 2 s. */
const LOCK_MS = 1_000;

let redis: TestRedis;
let db: TestDatabase;
let store: PostgresRunStore;
let dir: string;

const env = useQueueEnvironment('queue_faults', { tempDir: true });
beforeAll(() => {
  ({ redis, db, store, dir } = env);
});

/** Starts a worker process and resolves once it takes jobs. */
async function startWorker(queueName: string, countFile: string, maxStalledCount?: number): Promise<ChildProcess> {
  return startWorkerProcess('test/fixtures/queueWorkerChild.ts', [
    ...[redis.url, db.connectionString, queueName, countFile, String(CONCURRENCY), String(STEP_MS), String(LOCK_MS)],
    ...(maxStalledCount === undefined ? [] : [String(maxStalledCount)]),
  ], env.children);
}

const count = (events: readonly OaoEvent[], type: OaoEvent['type']) => events.filter((event) => event.type === type).length;

describe('a worker killed with SIGKILL mid-batch loses nothing', () => {
  it('every run ends exactly once, continued from its log; tool bodies ran once per recorded call except those in flight at the kill', { timeout: 90_000 }, async () => {
    const queueName = 'faults';
    const countFile = join(dir, 'calls.txt');
    const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(queueName, countFile)));
    const queue: RunQueue = await createQueue({ connection: redis.url, queueName, store });
    try {
      // Half the runs have ids of their own; the queue makes the others', and a worker looks for no
      // log when it first starts those: their jobs handed on after the kill must still be continued.
      const ids = await Promise.all(
        Array.from({ length: RUNS }, (_, i) => queue.enqueue({ agent: 'counter', task: { n: 1 }, ...(i % 2 === 0 ? { executionId: `run-${i}` } : {}) })),
      );

      // Kill the first worker once a third of the batch's tool calls have run: it has runs in flight.
      const victim = workers[0] as ChildProcess;
      for (;;) {
        let calls = 0;
        for (const times of bodyRuns(countFile).values()) calls += times;
        if (calls >= RUNS) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      const exited = new Promise((resolve) => victim.once('exit', resolve));
      const killedAt = Date.now();
      victim.kill('SIGKILL');
      await exited;

      const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
      expect(reports.map((report) => report.status)).toEqual(ids.map(() => 'SUCCESS'));

      const ranTimes = bodyRuns(countFile);
      const ranTwice: string[] = [];
      let resumed = 0;
      let firstResumedAt = Number.POSITIVE_INFINITY;
      for (const id of ids) {
        const events = await store.events(id);
        // Ended exactly once, started once: a redelivered job was continued, never started afresh.
        expect(count(events, 'EXECUTION_START'), id).toBe(1);
        expect(count(events, 'EXECUTION_COMPLETE'), id).toBe(1);
        expect(events.at(-1)?.type, id).toBe('EXECUTION_COMPLETE');
        expect(count(events, 'STEP_COMPLETE'), id).toBe(3);
        const resumedEvent = events.find((event) => event.type === 'EXECUTION_RESUMED');
        if (resumedEvent !== undefined) {
          resumed += 1;
          firstResumedAt = Math.min(firstResumedAt, resumedEvent.timestamp);
        }
        // Every recorded call's body ran once, or twice when it was in flight at the kill (its
        // TOOL_CALL was stored, its result was not): the resumed run ran it again under its call id.
        const calls = events.filter((event) => event.type === 'TOOL_CALL').map((event) => (event.payload as { callId: string }).callId);
        expect(calls, id).toEqual(['t1', 't2', 't3']);
        for (const callId of calls) {
          const times = ranTimes.get(`${id} ${callId}`) ?? 0;
          expect(times, `${id} ${callId}`).toBeGreaterThanOrEqual(1);
          expect(times, `${id} ${callId}`).toBeLessThanOrEqual(2);
          if (times === 2) ranTwice.push(`${id} ${callId}`);
        }
      }
      // The kill hit runs in flight, and each one was continued by another worker.
      expect(resumed).toBeGreaterThan(0);
      // A body runs twice only in a run that was resumed, at most once per such run (its one call in flight).
      const runsWithRepeats = new Set(ranTwice.map((entry) => entry.split(' ')[0]));
      expect(ranTwice.length).toBe(runsWithRepeats.size);
      expect(runsWithRepeats.size).toBeLessThanOrEqual(resumed);
      console.log(
        `[queue faults] ${RUNS} runs, ${resumed} resumed after the kill (the first ${Math.round(firstResumedAt - killedAt)} ms after it), ` +
          `${ranTwice.length} tool bodies in flight at the kill ran again`,
      );
    } finally {
      await queue.close();
      for (const child of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  });
});

describe('control across processes', () => {
  it('a cancel published through Redis reaches the worker process that runs the run, and any server streams its events from the store', { timeout: 60_000 }, async () => {
    const queueName = 'control';
    const worker = await startWorker(queueName, join(dir, 'control-calls.txt'));
    const queue = await createQueue({ connection: redis.url, queueName, store });
    // A server in another role: it shares the store, and does not run the queue's runs itself.
    const app = await createServer({ agents: { waiter: () => 'unused' }, store, resumeInterrupted: false, dashboard: false });
    try {
      const id = await queue.enqueue({ agent: 'waiter', task: 'wait' });
      while (!(await store.events(id)).some((event) => event.type === 'STEP_START')) await new Promise((resolve) => setImmediate(resolve));

      // The stream is opened while the run executes in the worker process, then the run is cancelled.
      const streamed = app.inject({ method: 'GET', url: `/runs/${id}/events` });
      await queue.cancel(id, 'stopped from another process');
      const report = await queue.waitForReport(id);
      expect(report.status).toBe('FAILED');
      expect(report.termination.reason).toBe('cancelled');
      expect(report.termination.message).toContain('stopped from another process');

      const body = (await streamed).body;
      const ids = [...body.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
      const stored = await store.events(id);
      expect(ids).toEqual(stored.map((event) => event.seq));
      expect(body).toContain('event: EXECUTION_CANCELLED');
      expect(body).toContain('event: EXECUTION_COMPLETE');

      // Resuming after an event id sends only what came after it.
      const again = await app.inject({ method: 'GET', url: `/runs/${id}/events`, headers: { 'last-event-id': '3' } });
      expect([...again.body.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]))).toEqual(stored.slice(4).map((event) => event.seq));
    } finally {
      await app.close();
      await queue.close();
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.kill('SIGTERM');
      await exited;
    }
  });
});

describe('a job that stalls too often', () => {
  it('still ends its run, FAILED with OAO_ERR_INTERRUPTED, once its workers died more than maxStalledCount times', { timeout: 60_000 }, async () => {
    const queueName = 'stalls';
    const countFile = join(dir, 'stalls-calls.txt');
    const queue = await createQueue({ connection: redis.url, queueName, store });
    const kill = async (child: ChildProcess) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    };
    const until = async (holds: (events: readonly OaoEvent[]) => boolean) => {
      while (!holds(await store.events('stalls-twice'))) await new Promise((resolve) => setImmediate(resolve));
    };
    try {
      const first = await startWorker(queueName, countFile, 1);
      await queue.enqueue({ agent: 'waiter', task: 'forever', executionId: 'stalls-twice' });
      await until((events) => events.some((event) => event.type === 'STEP_START'));
      const second = await startWorker(queueName, countFile, 1);
      await kill(first);
      // The second worker takes the stalled job up and continues the run; then it dies too.
      await until((events) => events.some((event) => event.type === 'EXECUTION_RESUMED'));
      const third = await startWorker(queueName, countFile, 1);
      await kill(second);
      const report = await queue.waitForReport('stalls-twice');
      expect(report.status).toBe('FAILED');
      expect(report.error?.code).toBe('OAO_ERR_INTERRUPTED');
      expect(count(await store.events('stalls-twice'), 'EXECUTION_COMPLETE')).toBe(1);
      third.kill('SIGTERM');
    } finally {
      await queue.close();
    }
  });
});
