import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Orchestrator, OaoError, createMemoryStore, type OaoEvent, type RunStore } from '../../src/index.js';
import { FAKE_EPOCH, altered, fakeRun, texts } from './fakeLog.js';
import { describeRunStoreConformance } from './runStoreConformance.js';

describeRunStoreConformance('memory', {
  open: async (options) => createMemoryStore(options),
  cleanup: async () => {},
});

/**
 * The same store behind handles that answer with promises, one microtask late, and close on their
 * own: runs the suite's asynchronous paths and its reopen test, which the plain memory store
 * (synchronous, nothing to reopen) does not reach.
 */
function asyncHandle(store: RunStore): RunStore {
  let closed = false;
  const later = async <R>(call: () => R): Promise<Awaited<R>> => {
    await Promise.resolve();
    if (closed) throw new OaoError('OAO_ERR_STORE', 'The run store is closed');
    return await call();
  };
  return {
    append: (...args) => later(() => store.append(...args)),
    events: (...args) => later(() => store.events(...args)),
    report: (...args) => later(() => store.report(...args)),
    get: (...args) => later(() => store.get(...args)),
    list: (...args) => later(() => store.list(...args)),
    prune: () => later(() => store.prune()),
    acquireLease: (...args) => later(() => store.acquireLease(...args)),
    renewLease: (...args) => later(() => store.renewLease(...args)),
    releaseLease: (...args) => later(() => store.releaseLease(...args)),
    charge: (...args) => later(() => store.charge(...args)),
    counters: (...args) => later(() => store.counters(...args)),
    appendWorkflow: (...args) => later(() => store.appendWorkflow!(...args)),
    workflowEvents: (...args) => later(() => store.workflowEvents!(...args)),
    close: async () => {
      closed = true;
    },
  };
}

let shared: RunStore | undefined;
describeRunStoreConformance('memory behind asynchronous handles', {
  open: async (options) => asyncHandle((shared = createMemoryStore(options))),
  reopen: async () => asyncHandle(shared!),
  cleanup: async () => {
    await shared?.close();
    shared = undefined;
  },
});

describe('createMemoryStore', { timeout: 20_000 }, () => {
  it('answers synchronously', () => {
    const store = createMemoryStore();
    expect(store.synchronous).toBe(true);
    const events = fakeRun('run-a');
    expect(store.append('run-a', events)).toBeUndefined();
    expect(store.get('run-a')?.status).toBe('SUCCESS');
    expect(store.events('run-a')).toHaveLength(13);
    expect(store.list().runs).toHaveLength(1);
    expect(store.charge('tenant-1', 'day', { tokens: 1 })).toEqual({ tokens: 1 });
    expect(store.prune()).toBe(0);
  });

  it('keeps the appended event objects, frozen, without copying them', () => {
    const store = createMemoryStore();
    const events = fakeRun('run-a');
    store.append('run-a', events);
    const stored = store.events('run-a');
    expect(stored[0]).toBe(events[0]);
    expect(Object.isFrozen(stored[5])).toBe(true);
    expect(() => {
      (stored[5] as { seq: number }).seq = 99;
    }).toThrow(TypeError);
  });

  it('compares a retried append by canonical text: an equal copy is a no-op, a deep difference a conflict', () => {
    const store = createMemoryStore();
    const events = fakeRun('run-a');
    store.append('run-a', events);
    // Same values, other objects, keys in another order.
    const copies = events.map((event) => reverseKeys(event) as OaoEvent);
    expect(() => store.append('run-a', structuredClone(events))).not.toThrow();
    expect(JSON.stringify(copies[0])).not.toBe(JSON.stringify(events[0]));
    expect(() => store.append('run-a', copies)).not.toThrow();
    const deep = structuredClone(events[7]!) as Extract<OaoEvent, { type: 'STEP_COMPLETE' }>;
    (deep.payload.output as { ok: boolean }).ok = false;
    expect(() => store.append('run-a', [deep])).toThrow(expect.objectContaining({ code: 'OAO_ERR_LOG_CONFLICT' }));
    expect(texts(store.events('run-a'))).toEqual(texts(events));
  });

  it('applies maxRuns whenever a run finishes, without prune()', () => {
    const store = createMemoryStore({ maxRuns: 2 });
    store.append('unfinished', fakeRun('unfinished', { status: 'running', startedAt: FAKE_EPOCH - 1 }));
    for (let i = 0; i < 5; i += 1) {
      const id = `done-${i}`;
      store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + i * 100 }));
      expect(store.list({ status: 'SUCCESS' }).runs.length).toBeLessThanOrEqual(2);
    }
    expect(store.list().runs.map((run) => run.executionId)).toEqual(['done-4', 'done-3', 'unfinished']);
    expect(store.events('done-0')).toEqual([]);
    expect(store.prune()).toBe(0);
  });

  it('stays bounded over many runs', () => {
    const store = createMemoryStore({ maxRuns: 100 });
    const events = fakeRun('template');
    for (let i = 0; i < 5_000; i += 1) {
      const id = `run-${i}`;
      store.append(
        id,
        events.map((event) => ({ ...event, id: `${id}:${event.seq}`, executionId: id })),
      );
    }
    const page = store.list({}, { limit: 1_000 });
    expect(page.runs).toHaveLength(100);
    expect(page.nextCursor).toBeNull();
  });

  it('lists exactly the runs retention keeps when runs finish out of their start order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ start: fc.integer({ min: 0, max: 3 }), duration: fc.integer({ min: 0, max: 40 }) }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 7 }),
        (runs, maxRuns, limit) => {
          const store = createMemoryStore({ maxRuns });
          const finished = runs.map(({ start, duration }, i) => {
            // Ids in no particular order against the start times, as random run ids are.
            const id = `run-${((i * 7919) % 1009).toString().padStart(4, '0')}-${i}`;
            store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + start, durationMs: duration }));
            // fakeRun's report finishes `durationMs` after its start.
            return { id, start: FAKE_EPOCH + start, finish: FAKE_EPOCH + start + duration };
          });
          const byFinish = [...finished].sort((a, b) => b.finish - a.finish || (a.id < b.id ? 1 : -1));
          const kept = byFinish.slice(0, maxRuns).sort((a, b) => b.start - a.start || (a.id < b.id ? 1 : -1));
          const listed: string[] = [];
          let cursor: string | undefined;
          do {
            const page = store.list({}, cursor === undefined ? { limit } : { limit, cursor });
            listed.push(...page.runs.map((run) => run.executionId));
            cursor = page.nextCursor ?? undefined;
          } while (cursor !== undefined);
          expect(listed).toEqual(kept.map((run) => run.id));
          for (const run of byFinish.slice(maxRuns)) expect(store.get(run.id)).toBeUndefined();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('records the runs of an Orchestrator (its TSDoc example)', async () => {
    const store = createMemoryStore({ maxRuns: 100 });
    const orchestrator = new Orchestrator({ store });
    const report = await orchestrator.run({ agent: { name: 'echo', invoke: (task: string) => ({ output: task }) }, task: 'hi' });

    expect(store.get(report.executionId)).toMatchObject({ agentName: 'echo', status: 'SUCCESS', eventCount: 13 });
    expect(store.list({ agentName: 'echo' }, { limit: 10 }).runs.map((run) => run.executionId)).toEqual([report.executionId]);
    const events = store.events(report.executionId);
    expect([events[0]?.type, events.at(-1)?.type]).toEqual(['EXECUTION_START', 'EXECUTION_COMPLETE']);
    expect(store.report(report.executionId)).toEqual(report);
  });

  it('checks its options eagerly, naming the option', () => {
    expect(() => createMemoryStore({ maxRuns: -1 })).toThrow(
      expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'maxRuns' }, message: expect.stringContaining('maxRuns') }),
    );
    expect(() => createMemoryStore(null as never)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
  });

  it('stores any split of a log into retried, overlapping batches as the log itself', () => {
    const log = fakeRun('run-a', { steps: 3 });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(log.length), fc.nat(log.length)), { maxLength: 30 }),
        (slices) => {
          const store = createMemoryStore();
          let stored = 0;
          for (const [a, b] of slices) {
            const from = Math.min(a, b);
            const to = Math.max(a, b);
            if (from === to) {
              store.append('run-a', []);
            } else if (from <= stored) {
              store.append('run-a', log.slice(from, to));
              stored = Math.max(stored, to);
            } else {
              expect(() => store.append('run-a', log.slice(from, to))).toThrow(expect.objectContaining({ code: 'OAO_ERR_LOG_CONFLICT' }));
            }
            expect(store.events('run-a')).toHaveLength(stored);
          }
          store.append('run-a', log);
          expect(texts(store.events('run-a'))).toEqual(texts(log));
          if (stored > 0) expect(() => store.append('run-a', [altered(log[stored - 1]!)])).toThrow(expect.objectContaining({ code: 'OAO_ERR_LOG_CONFLICT' }));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('lists any set of start times newest first, whole pages without gaps', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z]{1,3}$/), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 9 })), {
          selector: ([id]) => id,
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 7 }),
        (runs, limit) => {
          const store = createMemoryStore();
          for (const [id, ms, tenth] of runs) store.append(id, fakeRun(id, { startedAt: FAKE_EPOCH + ms + tenth / 10 }));
          const expected = [...runs].sort(([a, x], [b, y]) => y - x || (a < b ? 1 : a > b ? -1 : 0)).map(([id]) => id);
          const listed: string[] = [];
          let cursor: string | undefined;
          for (let page = 0; page <= runs.length; page += 1) {
            const result = store.list({}, cursor === undefined ? { limit } : { limit, cursor });
            listed.push(...result.runs.map((run) => run.executionId));
            if (result.nextCursor === null) break;
            expect(result.runs).toHaveLength(limit);
            cursor = result.nextCursor;
          }
          expect(listed).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});

function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([key, item]) => [key, reverseKeys(item)]));
}
