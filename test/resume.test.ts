// Continuing a run from its log after its process died: orch.resume().
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedClock } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, OaoError, Orchestrator, type ExecutionReport, type OaoEvent, type RunStore } from '../src/index.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { createPostgresStore } from '../src/store/postgres/index.js';
import { resumePoint } from '../src/log/resumePoint.js';
import { countedCalls, countTool, resumeAgent, stepTokens } from './fixtures/resumeAgent.js';
import { createTestDatabase, type TestDatabase } from './store/pgTestDb.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oao-resume-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
const countFile = () => join(dir, `count-${++fileCounter}.txt`);

const TOTAL = {
  input: [1, 2, 3].reduce((sum, step) => sum + stepTokens(step).input, 0),
  output: [1, 2, 3].reduce((sum, step) => sum + stepTokens(step).output, 0),
};

/** A complete recorded run of the counting agent, on a simulated clock. */
async function recordFullRun(): Promise<{ events: readonly OaoEvent[]; report: ExecutionReport; calls: string[] }> {
  const store = createMemoryStore();
  const file = countFile();
  const clock = new SimulatedClock();
  clock.set(1_000_000);
  const orch = new Orchestrator({ store, clock, owner: 'first' });
  const report = await orch.run({ executionId: 'r', agent: resumeAgent(), task: { n: 1 }, tools: { count: countTool(file) } });
  return { events: store.events('r'), report, calls: countedCalls(file) };
}

describe('resumePoint(): where a cut-short log continues', () => {
  it('names the step in flight and what it recorded', async () => {
    const { events } = await recordFullRun();
    const usage3 = events.findIndex((e) => e.type === 'TOKEN_USAGE' && e.payload.step === 3);
    const point = resumePoint(events.slice(0, usage3 + 1));
    expect(point.kind).toBe('step');
    expect(point.fold.steps).toBe(3);
    expect(point.input).toEqual({ n: 3 });
    expect(point.recorded?.tools.map((call) => [call.callId, call.result?.ok])).toEqual([['t3', true]]);
    expect(point.recorded?.usages).toEqual([{ input: 30, output: 5, total: 35 }]);
    expect(point.recorded?.toolSeqBefore).toBe(2);
  });

  it('refuses a finished log and an empty one with typed errors', async () => {
    const { events } = await recordFullRun();
    expect(() => resumePoint(events)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    expect(() => resumePoint([])).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    const gap = [events[0], events[2]] as OaoEvent[];
    expect(() => resumePoint(gap)).toThrow(expect.objectContaining({ code: 'OAO_ERR_LOG_CORRUPT' }));
  });
});

describe('orch.resume() from every point a log can be cut at', () => {
  it('ends as the uninterrupted run did, never runs a recorded tool call twice and never charges twice', { timeout: 60_000 }, async () => {
    const full = await recordFullRun();
    expect(full.report.status).toBe('SUCCESS');
    expect(full.calls).toEqual(['t1', 't2', 't3']);
    const complete = full.events.length - 1; // the index of EXECUTION_COMPLETE
    for (let cut = 1; cut < complete; cut++) {
      const prefix = full.events.slice(0, cut);
      const store = createMemoryStore();
      store.append('r', prefix);
      const file = countFile();
      const clock = new SimulatedClock();
      // An hour after the log's last event: idle time, not charged to the run's time limit.
      clock.set((prefix.at(-1) as OaoEvent).timestamp + 3_600_000);
      const orch = new Orchestrator({ store, clock, owner: 'heir' });
      const report = await orch.resume('r', { agent: resumeAgent(), tools: { count: countTool(file) } });
      const where = `cut at ${cut} (${prefix.at(-1)?.type})`;
      expect(report.status, where).toBe('SUCCESS');
      expect(report.totalSteps, where).toBe(3);
      expect(report.tokenUsage, where).toEqual({ ...TOTAL, total: TOTAL.input + TOTAL.output });
      expect(report.toolUsage, where).toEqual({ total: 3, byTool: { count: 3 } });
      expect(report.finalOutput, where).toEqual(full.report.finalOutput);
      expect(report.executionHash, where).toBe(full.report.executionHash);
      // Every call id's body ran once: before the cut (its result is in the log) or after it.
      const before = prefix.filter((e) => e.type === 'TOOL_RESULT').map((e) => (e.type === 'TOOL_RESULT' ? e.payload.callId : ''));
      expect([...before, ...countedCalls(file)].sort(), where).toEqual(['t1', 't2', 't3']);
      // The log continues without a gap, records the resume once, and folds to the report.
      const events = store.events('r');
      expect(events.map((e) => e.seq), where).toEqual(events.map((_, i) => i));
      expect(events.filter((e) => e.type === 'EXECUTION_RESUMED'), where).toHaveLength(1);
      expect(canonicalJson(await orch.replay('r')), where).toBe(canonicalJson(report));
      expect(report.wallTimeMs! - report.executionTimeMs, where).toBeGreaterThanOrEqual(3_600_000);
      expect(report.executionTimeMs, where).toBeLessThan(3_600_000);
    }
  });

  it('does not charge idle time to timeoutMs, but does charge live time on both sides of the gap', async () => {
    const full = await recordFullRun();
    const usage3 = full.events.findIndex((e) => e.type === 'TOKEN_USAGE' && e.payload.step === 3);
    const store = createMemoryStore();
    store.append('r', full.events.slice(0, usage3 + 1));
    const clock = new SimulatedClock();
    const lastAt = (full.events[usage3] as OaoEvent).timestamp;
    clock.set(lastAt + 10 * 60_000 * 60); // ten hours later; the policy's default timeout is far shorter
    const orch = new Orchestrator({ store, clock, owner: 'heir' });
    const report = await orch.resume('r', { agent: resumeAgent(), tools: { count: countTool(countFile()) } });
    expect(report.status).toBe('SUCCESS');
    expect(report.executionTimeMs).toBe(lastAt - full.events[0]!.timestamp);
    expect(report.wallTimeMs).toBe(report.executionTimeMs + 10 * 60_000 * 60);
    const resumed = store.events('r').find((e) => e.type === 'EXECUTION_RESUMED');
    expect(resumed?.payload).toEqual({ idleMs: 10 * 60_000 * 60, owner: 'heir', point: 'step' });
  });

  it('a recorded tool call without a result runs again under the same call id', async () => {
    const full = await recordFullRun();
    const call3 = full.events.findIndex((e) => e.type === 'TOOL_CALL' && e.payload.callId === 't3');
    const store = createMemoryStore();
    store.append('r', full.events.slice(0, call3 + 1));
    const seen: string[] = [];
    const orch = new Orchestrator({ store, owner: 'heir' });
    const report = await orch.resume('r', {
      agent: resumeAgent(),
      tools: { count: (args: { step: number }, ctx: { callId: string }) => (seen.push(ctx.callId), { callId: ctx.callId, step: args.step }) },
    });
    expect(seen).toEqual(['t3']);
    expect(report.toolUsage.total).toBe(3);
    expect(report.finalOutput).toEqual(full.report.finalOutput);
  });

  it('a re-run that departs from the recording is live from there: charged and numbered after it', async () => {
    const full = await recordFullRun();
    const usage3 = full.events.findIndex((e) => e.type === 'TOKEN_USAGE' && e.payload.step === 3);
    const store = createMemoryStore();
    store.append('r', full.events.slice(0, usage3 + 1));
    const changed = resumeAgent();
    const agent = {
      ...changed,
      async invoke(input: { n: number }, ctx: Parameters<typeof changed.invoke>[1]) {
        // Another tool call than the recorded one: a live call with a new id, counted.
        await ctx.callTool('count', { step: ctx.step, n: input.n, changed: true });
        ctx.usage({ input: 1, output: 1 });
        return { output: 'changed' };
      },
    };
    const seen: string[] = [];
    const orch = new Orchestrator({ store, owner: 'heir' });
    const report = await orch.resume('r', { agent, tools: { count: (_args: unknown, ctx: { callId: string }) => (seen.push(ctx.callId), 'ok') } });
    expect(seen).toEqual(['t4']);
    expect(report.toolUsage.total).toBe(4);
    expect(report.tokenUsage.total).toBe(TOTAL.input + TOTAL.output + 2);
  });

  it('limits count what was spent before the crash: a resumed run cannot spend its budget again', async () => {
    const full = await recordFullRun();
    const step2 = full.events.findIndex((e) => e.type === 'STEP_START' && e.payload.step === 2);
    const store = createMemoryStore();
    // The recorded policy allowed 3 steps; replace it by one that allows 2 to see the count carry over.
    const start = full.events[0] as Extract<OaoEvent, { type: 'EXECUTION_START' }>;
    const narrowed = { ...start, payload: { ...start.payload, policy: { ...start.payload.policy, maxSteps: 2 } } };
    store.append('r', [narrowed, ...full.events.slice(1, step2 + 1)]);
    const orch = new Orchestrator({ store, owner: 'heir' });
    const report = await orch.resume('r', { agent: resumeAgent(), tools: { count: countTool(countFile()) } });
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(report.totalSteps).toBe(2);
  });
});

describe('orch.resume(): ownership and bad input', () => {
  it('refuses a run another owner holds a live lease on, and never lets two resumes both continue it', async () => {
    const full = await recordFullRun();
    const store = createMemoryStore();
    store.append('r', full.events.slice(0, 10));
    expect(store.acquireLease('r', 'alive-elsewhere', 60_000)).toBeDefined();
    const orch = new Orchestrator({ store, owner: 'heir' });
    await expect(orch.resume('r', { agent: resumeAgent(), tools: { count: countTool(countFile()) } })).rejects.toMatchObject({
      code: 'OAO_ERR_LEASE_HELD',
      details: { executionId: 'r' },
    });

    const free = createMemoryStore();
    free.append('r', full.events.slice(0, 10));
    const file = countFile();
    const a = new Orchestrator({ store: free, owner: 'a' });
    const b = new Orchestrator({ store: free, owner: 'b' });
    const outcomes = await Promise.allSettled([
      a.resume('r', { agent: resumeAgent(), tools: { count: countTool(file) } }),
      b.resume('r', { agent: resumeAgent(), tools: { count: countTool(file) } }),
    ]);
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o) => o.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'OAO_ERR_LEASE_HELD' });
    expect(free.events('r').filter((e) => e.type === 'EXECUTION_RESUMED')).toHaveLength(1);
  });

  it('a finished run resolves with its stored report; an unknown one is OAO_ERR_RUN_NOT_FOUND; no store is a typed error', async () => {
    const full = await recordFullRun();
    const store = createMemoryStore();
    store.append('r', full.events);
    const orch = new Orchestrator({ store, owner: 'heir' });
    expect(canonicalJson(await orch.resume('r', { agent: resumeAgent() }))).toBe(canonicalJson(full.report));
    await expect(orch.startResumed('r', { agent: resumeAgent() })).rejects.toMatchObject({ code: 'OAO_ERR_RUN_FINISHED' });
    await expect(orch.resume('nope', { agent: resumeAgent() })).rejects.toMatchObject({ code: 'OAO_ERR_RUN_NOT_FOUND' });
    await expect(new Orchestrator({ store: false }).resume('r', { agent: resumeAgent() })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'store' } });
  });

  it('an invalid agent is a typed error and leaves the run resumable', async () => {
    const full = await recordFullRun();
    const store = createMemoryStore();
    store.append('r', full.events.slice(0, 10));
    const orch = new Orchestrator({ store, owner: 'heir' });
    const error = await orch.resume('r', { agent: 42 as never }).catch((e: unknown) => e);
    expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_INVALID_AGENT');
    // The lease was given back: the same owner (or another) resumes it now.
    const report = await new Orchestrator({ store, owner: 'other' }).resume('r', { agent: resumeAgent(), tools: { count: countTool(countFile()) } });
    expect(report.status).toBe('SUCCESS');
  });

  it('startResumed() hands back a live handle: cancel reaches the continued run', async () => {
    const full = await recordFullRun();
    const step3 = full.events.findIndex((e) => e.type === 'STEP_START' && e.payload.step === 3);
    const store = createMemoryStore();
    store.append('r', full.events.slice(0, step3 + 1));
    const orch = new Orchestrator({ store, owner: 'heir' });
    const handle = await orch.startResumed('r', { agent: resumeAgent({ hangAfterUsageInStep: 3 }), tools: { count: countTool(countFile()) } });
    await new Promise((resolve) => setImmediate(resolve));
    handle.cancel('enough');
    const report = await handle.report;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'enough' });
    expect(handle.events()[0]?.type).toBe('EXECUTION_RESUMED');
    expect(store.report('r')?.termination.reason).toBe('cancelled');
  });
});

// ---- real crashes: a child process killed with SIGKILL -----------------------------------------

/**
 * Starts the counting agent in a child process, waits until `ready(events)` holds for its stored
 * log (read through `store`, as a second process reading while the child writes), then kills the
 * child with SIGKILL.
 */
async function crashChild(storeUrl: string, executionId: string, file: string, mode: 'after-usage' | 'in-tool', store: RunStore, ready: (events: readonly OaoEvent[]) => boolean): Promise<void> {
  const child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', 'test/fixtures/resumeChild.ts', storeUrl, executionId, file, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let alive = true;
  void exited.then(() => (alive = false));
  try {
    for (;;) {
      if (!alive) throw new Error('the child exited before it reached the point to be killed at');
      const events = await store.events(executionId);
      if (events.length > 0 && ready(events)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Resumes once the dead child's lease has expired (its time to live is 300 ms). */
async function resumeWhenFree(orch: Orchestrator, executionId: string, file: string): Promise<ExecutionReport> {
  for (;;) {
    try {
      return await orch.resume(executionId, { agent: resumeAgent(), tools: { count: countTool(file) } });
    } catch (error) {
      if (!(OaoError.isInstance(error) && error.code === 'OAO_ERR_LEASE_HELD')) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const step3Charged = (events: readonly OaoEvent[]) => events.some((e) => e.type === 'TOKEN_USAGE' && e.payload.step === 3);
const step3ToolStarted = (events: readonly OaoEvent[]) => events.some((e) => e.type === 'TOOL_CALL' && e.payload.step === 3);

async function expectResumedAfterKill(store: RunStore, storeUrl: string, executionId: string): Promise<void> {
  const file = countFile();
  await crashChild(storeUrl, executionId, file, 'after-usage', store, step3Charged);
  const before = await store.events(executionId);
  expect(before.at(-1)?.type).not.toBe('EXECUTION_COMPLETE');
  expect(countedCalls(file)).toEqual(['t1', 't2', 't3']);

  const orch = new Orchestrator({ store, owner: 'parent', leaseTtlMs: 5_000 });
  const report = await resumeWhenFree(orch, executionId, file);
  expect(report.status).toBe('SUCCESS');
  expect(report.totalSteps).toBe(3);
  expect(report.tokenUsage).toEqual({ ...TOTAL, total: TOTAL.input + TOTAL.output });
  // Across both processes, the tool's body ran exactly once per call id.
  expect(countedCalls(file)).toEqual(['t1', 't2', 't3']);
  const events = await store.events(executionId);
  expect(events.slice(0, before.length).map((e) => e.id)).toEqual(before.map((e) => e.id));
  expect(events.find((e) => e.type === 'EXECUTION_RESUMED')?.seq).toBe(before.length);
  expect(canonicalJson(await orch.replay(executionId))).toBe(canonicalJson(report));
}

describe('a run killed with SIGKILL is resumed by another process', () => {
  it('SQLite: step 3 killed after its tool returned and its usage was charged', { timeout: 60_000 }, async () => {
    const path = join(dir, 'crash.db');
    const store = createSqliteStore({ path });
    try {
      await expectResumedAfterKill(store, `sqlite:${path}`, 'crashed-sqlite');
    } finally {
      store.close();
    }
  });

  it('SQLite: killed inside the tool body, the call runs again under the same call id', { timeout: 60_000 }, async () => {
    const path = join(dir, 'crash-in-tool.db');
    const store = createSqliteStore({ path });
    const file = countFile();
    try {
      await crashChild(`sqlite:${path}`, 'in-tool', file, 'in-tool', store, (events) => step3ToolStarted(events) && countedCalls(file).length === 3);
      const orch = new Orchestrator({ store, owner: 'parent' });
      const report = await resumeWhenFree(orch, 'in-tool', file);
      expect(report.status).toBe('SUCCESS');
      expect(report.toolUsage.total).toBe(3);
      // At least once: the body that was running when the process died runs again, with its id.
      expect(countedCalls(file)).toEqual(['t1', 't2', 't3', 't3']);
    } finally {
      store.close();
    }
  });

  describe('PostgreSQL', () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase('resume');
    }, 30_000);
    afterAll(async () => {
      await database?.drop();
    }, 30_000);

    it('step 3 killed after its tool returned and its usage was charged', { timeout: 60_000 }, async () => {
      const store = await createPostgresStore({ connectionString: database.connectionString });
      try {
        await expectResumedAfterKill(store, database.connectionString, 'crashed-pg');
      } finally {
        await store.close();
      }
    });
  });
});
