// A tenant's budget window on a queue when a worker dies: a server in this process admits the
// tenant's runs in Redis, three worker processes take each run's chunk of what the tenant has left,
// runs are recorded in PostgreSQL, and one worker is killed with SIGKILL while runs holding chunks
// are in flight. Another worker takes each of its runs up with the same chunk (the tenant's record
// keeps it under the run's id) and gives it back when the run ends.
import type { ChildProcess } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionReport, OaoEvent } from '../../src/index.js';
import { createQueue, type RunQueue } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import type { PostgresRunStore } from '../../src/store/postgres/index.js';
import { spanAt } from '../../src/tenants/windows.js';
import type { TestDatabase } from '../store/pgTestDb.js';
import type { TestRedis } from './redisServer.js';
import { useQueueEnvironment, exitProcess, until, untilDrained } from './queueEnvironment.js';
import { startWorkerProcess } from './workerProcess.js';

const WORKERS = 3;
const CONCURRENCY = 4;
/**
 * Each of a `spender` run's three model calls waits this long: a run is in flight for about a
 * second, long enough for the kill to find the victim's runs mid-way.
 */
const STEP_MS = 300;
/** What one run of `spender` spends when nothing stops it: three model calls of 20 tokens (reserved before, spent as reserved). */
const RUN_TOKENS = 60;
/** Runs requested: unbounded they would spend 40 * 60 = 2,400 tokens. */
const RUNS = 40;
/** The tenant's daily maxTokens: 15 runs' worth, more than the 12 runs the workers run at once, so the victim's runs hold chunks. */
const LIMIT = 900;
const TENANT = 'acme';

let redis: TestRedis;
let db: TestDatabase;
let store: PostgresRunStore;

const env = useQueueEnvironment('queue_tenant_faults');
beforeAll(() => {
  ({ redis, db, store } = env);
});

/** A worker process with the `spender` agent (lockDuration and stalledInterval 2 s: a dead worker's jobs are handed on within about 6 s). */
async function startWorker(queueName: string): Promise<ChildProcess> {
  return startWorkerProcess('test/fixtures/batchBudgetWorkerChild.ts', [redis.url, db.connectionString, queueName, String(CONCURRENCY), String(STEP_MS)], env.children);
}



/** The token chunks runs hold in a tenant's record (`run:<id>` -> `tokens=60`), by run id. */
function chunksHeld(record: Record<string, string>): Map<string, number> {
  const held = new Map<string, number>();
  for (const [field, value] of Object.entries(record)) {
    if (!field.startsWith('run:')) continue;
    const amounts = Object.fromEntries(value.split(',').map((item) => item.split('='))) as Record<string, string | undefined>;
    held.set(field.slice('run:'.length), Number(amounts.tokens));
  }
  return held;
}

const count = (events: readonly OaoEvent[], type: OaoEvent['type']) => events.filter((event) => event.type === type).length;
const tokensOf = (reports: readonly ExecutionReport[]) => reports.reduce((sum, report) => sum + report.tokenUsage.total, 0);
const resumedBy = (events: readonly OaoEvent[]) =>
  events.filter((event) => event.type === 'EXECUTION_RESUMED').map((event) => (event.payload as { owner: string | null }).owner ?? '');

describe("a worker killed with SIGKILL while it runs runs of a tenant whose window is in Redis", () => {
  it("ends every run once, keeps the tenant's spend within its maxTokens, and the record ends holding nothing: the dead worker's chunks were taken again and given back once", { timeout: 120_000 }, async () => {
    const queueName = 'tenant-faults';
    const recordKey = `oao:${queueName}:tenant:${TENANT}`;
    const holdsKey = `oao:${queueName}:tenant-holds:${TENANT}`;
    const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(queueName)));
    const victim = workers[0] as ChildProcess;
    const survivors = workers.slice(1);
    const queue: RunQueue = await createQueue({ connection: redis.url, queueName, store });
    let app: FastifyInstance | undefined;
    try {
      app = await createServer({
        agents: { spender: () => 'never runs here' },
        store,
        queue,
        dashboard: false,
        apiKeys: { [`${TENANT}-key`]: { tenant: TENANT, budget: { window: 'day', maxTokens: LIMIT } } },
      });
      await app.ready();
      const server = app;
      // Each run's own maxTokens is what it spends: its chunk of the tenant's window is at most that.
      const answers = await Promise.all(
        Array.from({ length: RUNS }, () =>
          server.inject({
            method: 'POST',
            url: '/runs',
            headers: { authorization: `Bearer ${TENANT}-key` },
            payload: { agent: 'spender', task: { n: 1 }, policy: { maxTokens: RUN_TOKENS } },
          }),
        ),
      );
      // The window is charged as runs end: once it is spent, the server refuses more (429).
      for (const answer of answers) expect([202, 429]).toContain(answer.statusCode);
      const ids = answers.filter((answer) => answer.statusCode === 202).map((answer) => answer.json<{ executionId: string }>().executionId);
      // More runs are admitted than the window can pay for.
      expect(ids.length).toBeGreaterThan(LIMIT / RUN_TOKENS);

      // Kill the victim while it runs a run that holds a chunk of the window and has made a model
      // call, with at least one step still to go (a step takes STEP_MS: the kill comes well before).
      const inFlight = async (): Promise<boolean> => {
        const mine = (await queue.bullQueue.getActive()).filter((job) => job.processedBy?.includes(`:${String(victim.pid)}:`) === true);
        if (mine.length === 0) return false;
        const held = chunksHeld(await redis.client().hgetall(recordKey));
        for (const job of mine) {
          if ((held.get(String(job.id)) ?? 0) === 0) continue;
          const events = await store.events(String(job.id));
          if (count(events, 'MODEL_CALL') > 0 && count(events, 'STEP_COMPLETE') < 2) return true;
        }
        return false;
      };
      await until(inFlight, 30_000, 'the victim to run a run that holds a chunk and has made a model call');
      const killedAt = Date.now();
      await exitProcess(victim, 'SIGKILL');
      const victimJobs = (await queue.bullQueue.getActive()).filter((job) => job.processedBy?.includes(`:${String(victim.pid)}:`) === true).map((job) => String(job.id));
      // What the victim's runs hold in the tenant's record, under their run ids, for whoever continues them.
      const heldAtKill = chunksHeld(await redis.client().hgetall(recordKey));
      const victimHeld = victimJobs.filter((id) => (heldAtKill.get(id) ?? 0) > 0);
      // Those whose log the victim had not ended: another worker must end them.
      const cutShort: string[] = [];
      for (const id of victimHeld) if (count(await store.events(id), 'EXECUTION_COMPLETE') === 0) cutShort.push(id);
      expect(cutShort.length).toBeGreaterThan(0);

      const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
      const byId = new Map(reports.map((report) => [report.executionId, report]));

      // Every admitted run ended exactly once: one start, one EXECUTION_COMPLETE, last.
      let firstTakenUpAt = Number.POSITIVE_INFINITY;
      for (const id of ids) {
        const events = await store.events(id);
        expect(count(events, 'EXECUTION_START'), id).toBe(1);
        expect(count(events, 'EXECUTION_COMPLETE'), id).toBe(1);
        expect(events.at(-1)?.type, id).toBe('EXECUTION_COMPLETE');
      }
      // Each of the victim's runs that held a chunk ran under that chunk to its end, and those it
      // cut short were continued by a survivor: a run that held a whole run's worth (60 tokens)
      // finished with it, the spend before the kill counted in it; a run that took another chunk,
      // or was refused because the window looked spent while its own chunk was lost, fails here.
      for (const id of victimHeld) {
        const report = byId.get(id) as ExecutionReport;
        if (cutShort.includes(id)) {
          const events = await store.events(id);
          const owners = resumedBy(events);
          // A survivor continued it last (the victim may have died before its own EXECUTION_RESUMED was stored).
          expect(owners.length, id).toBeGreaterThanOrEqual(1);
          expect(owners.at(-1), id).not.toContain(`:${String(victim.pid)}:`);
          const takenUp = events.filter((event) => event.type === 'EXECUTION_RESUMED').at(-1);
          if (takenUp !== undefined) firstTakenUpAt = Math.min(firstTakenUpAt, takenUp.timestamp);
        }
        const chunk = heldAtKill.get(id) as number;
        if (chunk === RUN_TOKENS) {
          expect(report.status, id).toBe('SUCCESS');
          expect(report.tokenUsage.total, id).toBe(RUN_TOKENS);
        } else {
          expect(report.tokenUsage.total, id).toBeLessThanOrEqual(chunk);
        }
      }

      // The bound, with no slack: every model call of `spender` reserves its 20 tokens before it is
      // sent and spends exactly them, and it is refused unless the reservation fits the run's chunk;
      // chunks are taken atomically in Redis, each at most what is neither spent nor held by the
      // tenant's other runs, so the chunks live at once never add up to more than the limit less
      // what the window holds. A killed run keeps its chunk under its id: the worker that takes it
      // up takes the same chunk, with what the run spent before the kill (its log) counted in it,
      // and a model call in flight at the kill spent nothing and is made again inside the chunk. So
      // the kill adds nothing: all reports together spend at most the tenant's maxTokens.
      const tokens = tokensOf(reports);
      expect(tokens).toBeLessThanOrEqual(LIMIT);
      // The limit did bind: unbounded the admitted runs would have spent ids.length * 60 tokens.
      const succeeded = reports.filter((report) => report.status === 'SUCCESS');
      const refused = reports.filter((report) => report.status === 'FAILED');
      expect(succeeded.length).toBeGreaterThan(0);
      expect(succeeded.length).toBeLessThanOrEqual(Math.floor(LIMIT / RUN_TOKENS));
      expect(refused.length).toBeGreaterThan(0);
      // Every run stopped was stopped by its tenant's window, before a model call it could not afford.
      for (const report of refused) {
        expect(report.termination, report.executionId).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'tenant' });
      }

      // Every job is acknowledged, and every run's chunk given back before that: a run whose report
      // the victim stored just before the kill is acknowledged by the worker its job is handed to,
      // which charges its spend and releases its chunk then.
      await untilDrained(queue, 30_000, 'every job of the tenant to be acknowledged');

      // No run holds a chunk any more, nothing is held, no hold is left to expire, and the span of
      // today holds exactly what the reports spent: the victim's chunks were neither lost (they
      // would be held until their hold expires), nor released twice (held:tokens would go below 0),
      // nor charged twice (the span would hold more than the reports).
      const record = await redis.client().hgetall(recordKey);
      expect(Object.keys(record).filter((field) => field.startsWith('run:'))).toEqual([]);
      expect(Number(record['held:tokens'] ?? 0)).toBe(0);
      expect(record).toMatchObject({ window: 'day', 'max:tokens': String(LIMIT) });
      expect(await redis.client().zcard(holdsKey)).toBe(0);
      const span = await redis.client().hgetall(`oao:${queueName}:tenant-span:${TENANT}:${spanAt('day', Date.now()).key}`);
      expect(Number(span.tokens)).toBe(tokens);
      expect(Number(span.runs)).toBe(ids.length);
      console.log(
        `[tenant faults] ${ids.length} runs: ${succeeded.length} succeeded, ${refused.length} refused by the tenant; ` +
          `${victimHeld.length} of the victim's runs held chunks at the kill, ${cutShort.length} cut short (taken up from ${Math.round(firstTakenUpAt - killedAt)} ms after it); ` +
          `spent ${tokens}/${LIMIT} tokens`,
      );
    } finally {
      await app?.close();
      await queue.close();
      await Promise.all(survivors.map((child) => exitProcess(child, 'SIGTERM')));
    }
  });
});
