// endInterrupted(): the events that end a run cut short, when nothing can continue it.
import { SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  createMemoryStore,
  endInterrupted,
  OaoError,
  oaoEventSchema,
  Orchestrator,
  type AgentContext,
  type OaoEvent,
  type SerializedError,
} from '../src/index.js';
import { foldRun, type RunFold } from '../src/log/foldRun.js';
import { replayLog } from '../src/log/replayLog.js';
import { countTool, resumeAgent } from './fixtures/resumeAgent.js';

const HOUR = 3_600_000;
const interrupted: SerializedError = new OaoError('OAO_ERR_INTERRUPTED', 'no agent named "counter" is registered here').toJSON();

/** A complete recorded run of the three-step counting agent, on a simulated clock. */
async function recordedRun(): Promise<readonly OaoEvent[]> {
  const store = createMemoryStore();
  const clock = new SimulatedClock();
  clock.set(1_000_000);
  await new Orchestrator({ store, clock, owner: 'first' }).run({
    executionId: 'r',
    agent: resumeAgent(),
    task: { n: 1 },
    tools: { count: countTool('/dev/null') },
  });
  return store.events('r');
}

describe('endInterrupted()', () => {
  it('ends a log cut at any point FAILED with the error given, and the ended log replays to its report', async () => {
    const full = await recordedRun();
    const complete = full.length - 1;
    for (let cut = 1; cut < complete; cut++) {
      const prefix = full.slice(0, cut);
      const where = `cut at ${cut} (${prefix.at(-1)?.type})`;
      const last = prefix.at(-1) as OaoEvent;
      const ending = endInterrupted(prefix, { now: last.timestamp + HOUR, owner: 'heir', error: interrupted });
      const log = [...prefix, ...ending];

      // Valid events, continuing the log without a gap, all at the time of the ending.
      for (const event of ending) expect(() => oaoEventSchema.parse(event), where).not.toThrow();
      expect(log.map((event) => event.seq), where).toEqual(log.map((_, index) => index));
      expect(new Set(ending.map((event) => event.timestamp)), where).toEqual(new Set([last.timestamp + HOUR]));
      expect(ending[0], where).toMatchObject({ type: 'EXECUTION_RESUMED', payload: { idleMs: HOUR, owner: 'heir' } });
      const done = ending.at(-1) as OaoEvent;
      expect(done.type, where).toBe('EXECUTION_COMPLETE');
      if (done.type !== 'EXECUTION_COMPLETE') continue;
      const report = done.payload.report;
      expect(canonicalJson(replayLog(log)), where).toBe(canonicalJson(report));

      // What the log had spent is what the report says; nothing is added.
      const before = foldRun(prefix) as RunFold;
      expect(report.totalSteps, where).toBe(before.steps);
      expect(report.tokenUsage, where).toEqual(before.tokens);
      expect(report.toolUsage.total, where).toBe(before.toolCalls);
      // The hour nobody held the run is wall time, not live time.
      expect(report.wallTimeMs! - report.executionTimeMs, where).toBe(HOUR);

      if (before.state === 'TERMINATE') {
        // The agent had finished: the run ends as it would have.
        expect(report.status, where).toBe('SUCCESS');
        expect(ending.map((event) => event.type), where).toEqual(['EXECUTION_RESUMED', 'EXECUTION_COMPLETE']);
        expect(ending[0]?.payload, where).toMatchObject({ point: 'terminate' });
        continue;
      }
      expect(report.status, where).toBe('FAILED');
      expect(report.termination, where).toEqual({ reason: 'error', message: interrupted.message });
      expect(report.error, where).toEqual(interrupted);
      expect(report.stateHistory.at(-1)?.state, where).toBe('FAILED');
      // The open state is closed, unless none was entered yet or the log ends with its STATE_EXIT.
      const closes = before.stateHistory.length > 0 && last.type !== 'STATE_EXIT';
      expect(ending.map((event) => event.type), where).toEqual(['EXECUTION_RESUMED', 'EXECUTION_FAILED', ...(closes ? ['STATE_EXIT'] : []), 'STATE_ENTER', 'EXECUTION_COMPLETE']);
      expect(ending[0]?.payload, where).toMatchObject({ point: 'failed' });
      // The state the run was in is closed with its live time only.
      const open = report.stateHistory.at(-2);
      if (open !== undefined) expect(open.durationMs, where).toBeLessThan(HOUR);
    }
  });

  it('keeps an ending the log had already decided (a cancel), and adds no EXECUTION_FAILED', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const handle = orch.start({
      executionId: 'c',
      agent: (_task: string, ctx: AgentContext) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      task: 'wait',
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    handle.cancel('stop now');
    await handle.report;
    const full = store.events('c');
    const cancelled = full.findIndex((event) => event.type === 'EXECUTION_CANCELLED');
    const prefix = full.slice(0, cancelled + 1);
    const ending = endInterrupted(prefix, { now: (prefix.at(-1) as OaoEvent).timestamp, owner: null, error: interrupted });
    expect(ending.map((event) => event.type)).toEqual(['EXECUTION_RESUMED', 'STATE_EXIT', 'STATE_ENTER', 'EXECUTION_COMPLETE']);
    expect(ending[0]?.payload).toEqual({ idleMs: 0, owner: null, point: 'failed' });
    const report = replayLog([...prefix, ...ending]);
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'stop now' });
    expect(report.error?.code).toBe('OAO_ERR_CANCELLED');
  });

  it('records a clock reading older than the log as the time of its last event', async () => {
    const full = await recordedRun();
    const prefix = full.slice(0, 8);
    const lastAt = (prefix.at(-1) as OaoEvent).timestamp;
    const ending = endInterrupted(prefix, { now: lastAt - 5_000, owner: 'heir', error: interrupted });
    expect(ending.every((event) => event.timestamp === lastAt)).toBe(true);
    expect(ending[0]?.payload).toMatchObject({ idleMs: 0 });
  });

  it('refuses an empty log, a finished one and one out of order with typed errors', async () => {
    const full = await recordedRun();
    const options = { now: 0, owner: 'heir', error: interrupted };
    expect(() => endInterrupted([], options)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    expect(() => endInterrupted(full, options)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
    expect(() => endInterrupted([full[0], full[2]] as OaoEvent[], options)).toThrow(
      expect.objectContaining({ code: 'OAO_ERR_LOG_CORRUPT', details: { executionId: 'r', seq: 2 } }),
    );
  });
});
