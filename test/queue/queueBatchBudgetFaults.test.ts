// A queued batch's shared budget when a worker dies: three worker processes on a private
// redis-server, runs recorded in PostgreSQL, one worker killed with SIGKILL while runs holding
// chunks of the batch's budget are in flight.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionReport, OaoEvent } from '../../src/index.js';
import type { PostgresRunStore } from '../../src/store/postgres/index.js';
import { createQueue, type RunQueue } from '../../src/queue/index.js';
import { bodyRuns } from '../fixtures/queueAgents.js';
import type { TestDatabase } from '../store/pgTestDb.js';
import type { TestRedis } from './redisServer.js';
import { useQueueEnvironment, exitProcess, until, untilDrained } from './queueEnvironment.js';
import { startWorkerProcess } from './workerProcess.js';

const RUNS = 120;
const WORKERS = 3;
const CONCURRENCY = 8;
/** Each of a run's three steps waits this long after its tool call: runs are in flight when the kill comes. */
const STEP_MS = 40;
/** lockDuration and stalledInterval of the workers: the dead worker's jobs are handed on within about 2 s. */
const LOCK_MS = 1_000;
/** What a `counter` step reports with `ctx.usage()` after its tool call: 10 in, 5 out. */
const STEP_TOKENS = 15;
/** Each run's own limits, so each chunk it takes: its three steps' tool calls and tokens. */
const RUN_POLICY = { maxToolCalls: 3, maxTokens: 3 * STEP_TOKENS };
/**
 * The batch's budget: unbounded, the runs would want 120 * 45 = 5400 tokens and 360 tool calls.
 * The tokens run out after about 53 runs; the tool calls never do, but their record must still
 * come out exact.
 */
const BUDGET = { maxTokens: 2_400, maxToolCalls: 300 };
/** The kill comes once this many tool calls have run: the budget is far from spent then. */
const KILL_AT_TOOL_CALLS = 45;

let redis: TestRedis;
let db: TestDatabase;
let store: PostgresRunStore;
let dir: string;

const env = useQueueEnvironment('queue_batch_budget_faults', { tempDir: true });
beforeAll(() => {
  ({ redis, db, store, dir } = env);
});

async function startWorker(queueName: string, countFile: string): Promise<ChildProcess> {
  return startWorkerProcess('test/fixtures/queueWorkerChild.ts', [redis.url, db.connectionString, queueName, countFile, String(CONCURRENCY), String(STEP_MS), String(LOCK_MS)], env.children);
}



/** The chunks runs hold in a batch's record (`run:<id>` -> `tokens=45,toolCalls=3`), by run id. */
function chunksHeld(record: Record<string, string>): Map<string, { tokens: number; toolCalls: number }> {
  const held = new Map<string, { tokens: number; toolCalls: number }>();
  for (const [field, value] of Object.entries(record)) {
    if (!field.startsWith('run:')) continue;
    const amounts = Object.fromEntries(value.split(',').map((item) => item.split('='))) as Record<string, string | undefined>;
    held.set(field.slice('run:'.length), { tokens: Number(amounts.tokens), toolCalls: Number(amounts.toolCalls) });
  }
  return held;
}

const count = (events: readonly OaoEvent[], type: OaoEvent['type']) => events.filter((event) => event.type === type).length;
const sum = (reports: readonly ExecutionReport[], of: (report: ExecutionReport) => number) => reports.reduce((total, report) => total + of(report), 0);

describe('a worker killed with SIGKILL in the middle of a queued batch with a shared budget', () => {
  it('ends every run once, keeps the spend within the budget, and the record ends holding the budget minus the spend, no chunk lost or given back twice', { timeout: 120_000 }, async () => {
    const queueName = 'budget-faults';
    const countFile = join(dir, 'calls.txt');
    const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(queueName, countFile)));
    const victim = workers[0] as ChildProcess;
    const survivors = workers.slice(1);
    const queue: RunQueue = await createQueue({ connection: redis.url, queueName, store });
    try {
      const { batchId, executionIds: ids } = await queue.enqueueBatch({
        budget: BUDGET,
        runs: Array.from({ length: RUNS }, (_, i) => ({ agent: 'counter', task: { n: 1 }, executionId: `${queueName}-${i}`, policy: RUN_POLICY })),
      });
      const recordKey = `oao:${queueName}:batch-budget:${batchId}`;

      // The victim has runs in flight holding chunks of the budget: kill it.
      await until(() => [...bodyRuns(countFile).values()].reduce((total, times) => total + times, 0) >= KILL_AT_TOOL_CALLS, 60_000, `${KILL_AT_TOOL_CALLS} tool calls to run`);
      const killedAt = Date.now();
      await exitProcess(victim, 'SIGKILL');
      // Its runs' chunks stay held in the record under their run ids, for whoever continues them.
      const heldAtKill = chunksHeld(await redis.client().hgetall(recordKey));

      const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
      expect(reports).toHaveLength(RUNS);

      // Every run ended exactly once: one start, one EXECUTION_COMPLETE, last; a redelivered job
      // was continued from its log, never started afresh nor ended a second time.
      const resumed: string[] = [];
      let firstResumedAt = Number.POSITIVE_INFINITY;
      for (const id of ids) {
        const events = await store.events(id);
        expect(count(events, 'EXECUTION_START'), id).toBe(1);
        expect(count(events, 'EXECUTION_COMPLETE'), id).toBe(1);
        expect(events.at(-1)?.type, id).toBe('EXECUTION_COMPLETE');
        const resumedEvent = events.find((event) => event.type === 'EXECUTION_RESUMED');
        if (resumedEvent !== undefined) {
          resumed.push(id);
          firstResumedAt = Math.min(firstResumedAt, resumedEvent.timestamp);
        }
      }
      // The kill hit runs that held chunks, and each was continued by another worker.
      expect(resumed.length).toBeGreaterThan(0);
      expect(resumed.filter((id) => heldAtKill.has(id)).length).toBeGreaterThan(0);

      // Every run that held a chunk at the kill, the victim's included, ran under that chunk to its
      // end: a full one (its own limits) let it finish; a smaller one (the rest of the budget)
      // stopped it past its chunk by at most its last usage report. A continued run that took
      // another chunk, or was refused because the budget had run out meanwhile, fails here.
      const byId = new Map(reports.map((report) => [report.executionId, report]));
      for (const [id, chunk] of heldAtKill) {
        const report = byId.get(id) as ExecutionReport;
        expect(report.toolUsage.total, id).toBeLessThanOrEqual(chunk.toolCalls);
        if (chunk.tokens === RUN_POLICY.maxTokens && chunk.toolCalls === RUN_POLICY.maxToolCalls) {
          expect(report.status, id).toBe('SUCCESS');
          expect(report.tokenUsage.total, id).toBe(RUN_POLICY.maxTokens);
        } else {
          expect(report.tokenUsage.total, id).toBeLessThanOrEqual(chunk.tokens + STEP_TOKENS);
        }
      }

      // Every run the batch stopped was stopped by the batch's budget: scope shared.
      const succeeded = reports.filter((report) => report.status === 'SUCCESS');
      const refused = reports.filter((report) => report.status === 'FAILED');
      expect(succeeded.length).toBeGreaterThan(0);
      expect(refused.length).toBeGreaterThan(0);
      for (const report of refused) {
        expect(report.termination, report.executionId).toMatchObject({ reason: 'policy_violation', scope: 'shared', rule: 'max_tokens' });
      }
      // Most found the budget spent before their first step, and never called their agent.
      expect(refused.filter((report) => report.totalSteps === 0).length).toBeGreaterThan(0);

      const tokens = sum(reports, (report) => report.tokenUsage.total);
      const toolCalls = sum(reports, (report) => report.toolUsage.total);
      // The bound. A tool call is checked against the run's chunk before its body runs, so the
      // runs' tool calls never pass the batch's maxToolCalls. Tokens reported with ctx.usage() are
      // charged after the fact: a run whose chunk is smaller than its own limit (the rest of the
      // budget) can pass its chunk by its last report, at most STEP_TOKENS, and that report ends
      // it FAILED max_tokens (scope shared) with steps taken. A run killed mid-step was continued
      // under the same chunk with what it spent before the kill counted against it, so the kill
      // adds nothing. Hence: spent <= maxTokens + STEP_TOKENS per run stopped past its chunk.
      const crossed = refused.filter((report) => report.totalSteps > 0).length;
      expect(toolCalls).toBeLessThanOrEqual(BUDGET.maxToolCalls);
      expect(tokens).toBeLessThanOrEqual(BUDGET.maxTokens + STEP_TOKENS * crossed);
      // Unbounded the runs would spend RUNS * 45 tokens: the budget stopped them well short of it.
      expect(tokens).toBeLessThan(RUNS * RUN_POLICY.maxTokens);

      // Every job is acknowledged, its chunk's rest given back before that: a run whose report
      // was stored by the victim just before the kill is acknowledged by the worker its job is
      // handed to, which gives back the chunk then.
      await untilDrained(queue, 30_000, 'every job of the batch to be acknowledged');
      // The survivors stop taking jobs and finish what they run (their give-backs included).
      await Promise.all(survivors.map((child) => exitProcess(child, 'SIGTERM')));

      // Exactly the budget minus what the reports say was spent: no chunk of the killed worker's
      // runs was lost, taken twice, or given back twice; no run holds a chunk any more.
      const record = await redis.client().hgetall(recordKey);
      expect(Object.keys(record).filter((field) => field.startsWith('run:'))).toEqual([]);
      expect(Number(record.tokens)).toBe(BUDGET.maxTokens - tokens);
      expect(Number(record.toolCalls)).toBe(BUDGET.maxToolCalls - toolCalls);
      console.log(
        `[batch budget faults] ${RUNS} runs: ${succeeded.length} succeeded, ${refused.length} refused by the batch (${crossed} past their chunk); ` +
          `${heldAtKill.size} chunks held at the kill, ${resumed.length} runs resumed (the first ${Math.round(firstResumedAt - killedAt)} ms after the kill); ` +
          `spent ${tokens}/${BUDGET.maxTokens} tokens, ${toolCalls}/${BUDGET.maxToolCalls} tool calls`,
      );
    } finally {
      await queue.close();
      for (const child of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  });
});
