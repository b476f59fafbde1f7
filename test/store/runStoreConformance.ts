import { afterEach, describe, expect, it } from 'vitest';
import { OaoError, StrictPolicy, type OaoErrorCode, type OaoEvent } from '../../src/index.js';
import type { AppendOptions, Lease, RunListFilter, RunStore, RunStoreOptions, StoredRun } from '../../src/store/RunStore.js';
import type { StoredWorkflowEvent } from '../../src/events/workflowSchema.js';
import { FAKE_EPOCH, altered, batches, fakeRun, reportOf, texts, type FakeRunOptions } from './fakeLog.js';

/**
 * How the suite reaches one store implementation.
 *
 * - `open(options)`: a new store over an empty data set of its own (a fresh file, schema or
 *   database); every call starts empty.
 * - `reopen()`: a new instance over the data of the most recent `open`, after every instance
 *   over it was closed (default options). Absent for stores that keep nothing (memory).
 * - `cleanup()`: called after each test, once the suite has closed every instance it opened:
 *   removes whatever that test's `open` calls created.
 */
export interface RunStoreFactory {
  open(options?: RunStoreOptions): Promise<RunStore>;
  reopen?(): Promise<RunStore>;
  cleanup(): Promise<void>;
}

/** A workflow log of six events: started, node a ready, started, complete, node b skipped, complete. */
export function fakeWorkflowLog(workflowRunId: string): StoredWorkflowEvent[] {
  const base = (seq: number) => ({ workflowRunId, workflow: 'fake', seq, timestamp: FAKE_EPOCH + seq });
  const limits = new StrictPolicy().limits;
  return [
    { ...base(0), type: 'WORKFLOW_START', payload: { workflowHash: 'h', nodes: [{ name: 'a', needs: [], fanOut: false, conditional: false }, { name: 'b', needs: ['a'], fanOut: false, conditional: true }], maxConcurrency: 4, onFailure: 'skip-dependents', input: { topic: 'x' }, policy: limits, budget: null } },
    { ...base(1), type: 'NODE_READY', payload: { node: 'a' } },
    { ...base(2), type: 'NODE_START', payload: { node: 'a', runs: 1, executionIds: [`${workflowRunId}:a`] } },
    { ...base(3), type: 'NODE_COMPLETE', payload: { node: 'a', status: 'SUCCESS', executionIds: [`${workflowRunId}:a`] } },
    { ...base(4), type: 'NODE_SKIPPED', payload: { node: 'b', reason: { kind: 'condition', message: 'The condition of "b" was false' } } },
    { ...base(5), type: 'WORKFLOW_COMPLETE', payload: { status: 'SUCCESS', counts: { total: 2, succeeded: 1, failed: 0, skipped: 1 }, tokenUsage: { input: 0, output: 0, total: 0 }, executionTimeMs: 5 } },
  ];
}

/** A clock the test moves by hand: the `now` option of a store. */
export function fakeClock(start = FAKE_EPOCH + 3_600_000) {
  let time = start;
  return {
    now: (): number => time,
    advance: (ms: number): number => (time += ms),
    set: (at: number): number => (time = at),
  };
}

/** The `OaoError` a call fails with (sync throw or rejection); fails the test if it succeeds. */
export async function failure(call: () => unknown): Promise<OaoError> {
  try {
    await call();
  } catch (error) {
    if (OaoError.isInstance(error)) return error;
    throw new Error(`Expected an OaoError, got ${String(error)}`, { cause: error });
  }
  throw new Error('Expected the call to fail, but it succeeded');
}

async function expectCode(call: () => unknown, code: OaoErrorCode, details?: Record<string, unknown>): Promise<OaoError> {
  const error = await failure(call);
  expect(error.code).toBe(code);
  if (details !== undefined) expect(error.details).toMatchObject(details);
  return error;
}

/** Every run matching `filter`, page by page; fails (never loops forever) past `maxPages`. */
async function listAll(store: RunStore, filter: RunListFilter, limit: number, maxPages = 1_000): Promise<StoredRun[]> {
  const runs: StoredRun[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page += 1) {
    const result = await store.list(filter, cursor === undefined ? { limit } : { limit, cursor });
    expect(result.runs.length).toBeLessThanOrEqual(limit);
    runs.push(...result.runs);
    if (result.nextCursor === null) return runs;
    cursor = result.nextCursor;
  }
  throw new Error(`list() still had a next page after ${maxPages} pages`);
}

const ids = (runs: readonly StoredRun[]): string[] => runs.map((run) => run.executionId);

/** A deep copy of `value` with every object's keys in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([key, item]) => [key, reverseKeys(item)]));
}

/** Ids that sort the same in every collation (lowercase ASCII, zero-padded numbers). */
const runName = (prefix: string, n: number): string => `${prefix}-${String(n).padStart(4, '0')}`;

/**
 * The one behaviour every `RunStore` must show. Each store's test file calls it with a factory
 * that opens that store over fresh data; store-specific faults (corrupt rows, read-only files,
 * a server going down) are tested beside it, in that file.
 */
export function describeRunStoreConformance(label: string, factory: RunStoreFactory): void {
  describe(`RunStore conformance: ${label}`, { timeout: 30_000 }, () => {
    const opened: RunStore[] = [];

    async function open(options?: RunStoreOptions): Promise<RunStore> {
      const store = await factory.open(options);
      opened.push(store);
      return store;
    }

    async function seed(store: RunStore, runs: ReadonlyArray<readonly [string, FakeRunOptions?]>): Promise<Map<string, OaoEvent[]>> {
      const logs = new Map<string, OaoEvent[]>();
      for (const [id, options] of runs) {
        const events = fakeRun(id, options);
        await store.append(id, events);
        logs.set(id, events);
      }
      return logs;
    }

    afterEach(async () => {
      for (const store of opened.splice(0)) {
        try {
          await store.close();
        } catch {
          // A test may have broken this instance on purpose; cleanup still runs.
        }
      }
      await factory.cleanup();
    });

    describe('workflow logs', () => {
      it('stores a workflow log beside the run logs, in seq order, from fromSeq, and never lists it as a run', async () => {
        const store = await open();
        const log = fakeWorkflowLog('wf-1');
        await store.appendWorkflow!('wf-1', log.slice(0, 2));
        await store.appendWorkflow!('wf-1', log.slice(2));
        await seed(store, [['wf-1:a']]);
        expect(await store.workflowEvents!('wf-1')).toEqual(log);
        expect(await store.workflowEvents!('wf-1', { fromSeq: 3 })).toEqual(log.slice(3));
        expect(await store.workflowEvents!('wf-1', { fromSeq: 99 })).toEqual([]);
        expect(await store.workflowEvents!('unknown')).toEqual([]);
        // A workflow run's id is not a run of the index.
        expect(await store.get('wf-1')).toBeUndefined();
        expect(ids((await store.list()).runs)).toEqual(['wf-1:a']);
      });

      it('skips a retried identical batch, and refuses a different event, a gap and a log not starting with WORKFLOW_START', async () => {
        const store = await open();
        const log = fakeWorkflowLog('wf-2');
        await store.appendWorkflow!('wf-2', log.slice(0, 3));
        await store.appendWorkflow!('wf-2', log.slice(1, 4));
        expect(await store.workflowEvents!('wf-2')).toEqual(log.slice(0, 4));
        const changed = { ...log[2]!, payload: { node: 'other' } } as StoredWorkflowEvent;
        await expectCode(() => store.appendWorkflow!('wf-2', [changed]), 'OAO_ERR_LOG_CONFLICT', { workflowRunId: 'wf-2', seq: 2 });
        await expectCode(() => store.appendWorkflow!('wf-2', log.slice(5)), 'OAO_ERR_LOG_CONFLICT', { seq: 5 });
        await expectCode(() => store.appendWorkflow!('wf-3', fakeWorkflowLog('wf-3').slice(1, 2)), 'OAO_ERR_LOG_CONFLICT', { seq: 1 });
        await expectCode(() => store.appendWorkflow!('wf-4', [{ ...fakeWorkflowLog('wf-4')[1]!, seq: 0 }]), 'OAO_ERR_LOG_CONFLICT', { seq: 0 });
        await expectCode(() => store.appendWorkflow!('wf-5', fakeWorkflowLog('wf-other').slice(0, 1)), 'OAO_ERR_LOG_CONFLICT');
        expect(await store.workflowEvents!('wf-2')).toEqual(log.slice(0, 4));
        expect(await store.workflowEvents!('wf-3')).toEqual([]);
      });

      it('refuses arguments that are not a workflow run id and an array of stored workflow events', async () => {
        const store = await open();
        await expectCode(() => store.appendWorkflow!('', []), 'OAO_ERR_INVALID_ARGUMENT', { field: 'workflowRunId' });
        await expectCode(() => store.appendWorkflow!('wf', 'nope' as never), 'OAO_ERR_INVALID_ARGUMENT', { field: 'events' });
        await expectCode(() => store.appendWorkflow!('wf', [{ type: 'RUN_EVENT', seq: 0 }] as never), 'OAO_ERR_INVALID_ARGUMENT', { field: 'events' });
        await expectCode(() => store.workflowEvents!(42 as never), 'OAO_ERR_INVALID_ARGUMENT', { field: 'workflowRunId' });
        await expectCode(() => store.workflowEvents!('wf', { fromSeq: -1 }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'fromSeq' });
      });

      it('keeps a workflow log across a reopen', async () => {
        if (factory.reopen === undefined) return;
        const store = await open();
        const log = fakeWorkflowLog('wf-kept');
        await store.appendWorkflow!('wf-kept', log);
        await store.close();
        const reopened = await factory.reopen();
        opened.push(reopened);
        expect(await reopened.workflowEvents!('wf-kept')).toEqual(log);
      });
    });

    describe('append and events', () => {
      it('returns a log appended in several batches in seq order', async () => {
        const store = await open();
        const events = fakeRun('run-a', { steps: 3 });
        for (const batch of batches(events, 1, 5, 2)) await store.append('run-a', batch);
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
        expect((await store.get('run-a'))?.eventCount).toBe(events.length);
      });

      it('reads from fromSeq inclusive, and nothing past the end', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events);
        expect(texts(await store.events('run-a', { fromSeq: 0 }))).toEqual(texts(events));
        expect(texts(await store.events('run-a', { fromSeq: 5 }))).toEqual(texts(events.slice(5)));
        expect((await store.events('run-a', { fromSeq: 5 }))[0]?.seq).toBe(5);
        expect(texts(await store.events('run-a', { fromSeq: events.length - 1 }))).toEqual(texts(events.slice(-1)));
        expect(await store.events('run-a', { fromSeq: events.length })).toEqual([]);
        expect(await store.events('run-a', { fromSeq: events.length + 100 })).toEqual([]);
      });

      it('refuses a fromSeq that is not an integer from 0 up', async () => {
        const store = await open();
        await store.append('run-a', fakeRun('run-a'));
        for (const fromSeq of [-1, 1.5, Number.NaN, '2' as unknown as number]) {
          await expectCode(() => store.events('run-a', { fromSeq }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'fromSeq' });
        }
      });

      it('knows nothing of a run it never stored', async () => {
        const store = await open();
        expect(await store.events('nobody')).toEqual([]);
        expect(await store.events('nobody', { fromSeq: 3 })).toEqual([]);
        expect(await store.report('nobody')).toBeUndefined();
        expect(await store.get('nobody')).toBeUndefined();
      });

      it('keeps runs whose ids are Object.prototype keys apart', async () => {
        const store = await open();
        const names = ['__proto__', 'constructor', 'hasOwnProperty', 'toString'];
        for (const id of names) await store.append(id, fakeRun(id, { agentName: `agent of ${id}` }));
        for (const id of names) {
          expect((await store.get(id))?.agentName).toBe(`agent of ${id}`);
          expect(texts(await store.events(id))).toEqual(texts(fakeRun(id, { agentName: `agent of ${id}` })));
        }
        expect(ids((await store.list()).runs).sort()).toEqual([...names].sort());
      });

      it('treats a retried identical append as a no-op, whole or overlapping', async () => {
        const store = await open();
        const events = fakeRun('run-a', { steps: 2 });
        await store.append('run-a', events.slice(0, 6));
        await store.append('run-a', events.slice(0, 6));
        await store.append('run-a', events.slice(2, 4));
        // Overlaps the stored end and continues it: only the new part is added.
        await store.append('run-a', events.slice(3, 10));
        await store.append('run-a', events.slice(10));
        await store.append('run-a', events);
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
        expect((await store.get('run-a'))?.eventCount).toBe(events.length);
      });

      it('compares a retried event by its value: keys in another order are the same event, a deep change is not', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events);
        const reordered = events.map((event) => reverseKeys(event) as OaoEvent);
        expect(JSON.stringify(reordered[7])).not.toBe(JSON.stringify(events[7]));
        await store.append('run-a', reordered);
        const deep = structuredClone(events[7]!) as Extract<OaoEvent, { type: 'STEP_COMPLETE' }>;
        (deep.payload.output as { ok: boolean }).ok = false;
        await expectCode(() => store.append('run-a', [deep]), 'OAO_ERR_LOG_CONFLICT', { executionId: 'run-a', seq: 7 });
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
      });

      it('refuses a different event at a seq the log holds, and keeps the log as it was', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events.slice(0, 6));
        const changed = altered(events[4]!);
        await expectCode(() => store.append('run-a', [changed]), 'OAO_ERR_LOG_CONFLICT', { executionId: 'run-a', seq: 4 });
        await expectCode(() => store.append('run-a', [altered(events[0]!)]), 'OAO_ERR_LOG_CONFLICT', { executionId: 'run-a', seq: 0 });
        expect(texts(await store.events('run-a'))).toEqual(texts(events.slice(0, 6)));
      });

      it('refuses a gap and stores nothing of that batch', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events.slice(0, 3));
        await expectCode(() => store.append('run-a', events.slice(4, 8)), 'OAO_ERR_LOG_CONFLICT', { executionId: 'run-a', seq: 4 });
        expect(texts(await store.events('run-a'))).toEqual(texts(events.slice(0, 3)));
        expect((await store.get('run-a'))?.eventCount).toBe(3);
      });

      it('refuses a run that does not start with EXECUTION_START at seq 0', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await expectCode(() => store.append('run-a', events.slice(1)), 'OAO_ERR_LOG_CONFLICT', { executionId: 'run-a' });
        const notStart: OaoEvent = { ...events[1]!, seq: 0, id: 'run-a:0' };
        await expectCode(() => store.append('run-a', [notStart]), 'OAO_ERR_LOG_CONFLICT', { executionId: 'run-a', seq: 0 });
        expect(await store.get('run-a')).toBeUndefined();
        expect(await store.events('run-a')).toEqual([]);
        expect((await store.list()).runs).toEqual([]);
      });

      it('refuses a batch out of seq order or holding another run\'s event', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await expectCode(() => store.append('run-a', [events[0]!, events[2]!]), 'OAO_ERR_LOG_CONFLICT');
        await expectCode(() => store.append('run-a', [events[1]!, events[0]!]), 'OAO_ERR_LOG_CONFLICT');
        await expectCode(() => store.append('run-b', events.slice(0, 2)), 'OAO_ERR_LOG_CONFLICT');
        expect(await store.get('run-a')).toBeUndefined();
        expect(await store.get('run-b')).toBeUndefined();
      });

      it('is atomic: a batch with a conflict in its middle stores none of its new events', async () => {
        const store = await open();
        const events = fakeRun('run-a', { steps: 2 });
        await store.append('run-a', events.slice(0, 5));
        // Held 3 is identical, held 4 differs, 5 and 6 would be new: nothing may be stored.
        await expectCode(
          () => store.append('run-a', [events[3]!, altered(events[4]!), events[5]!, events[6]!]),
          'OAO_ERR_LOG_CONFLICT',
          { seq: 4 },
        );
        // New 5 and 6 first, then a gap: 5 and 6 must not be stored either.
        await expectCode(() => store.append('run-a', [events[5]!, events[6]!, events[8]!]), 'OAO_ERR_LOG_CONFLICT');
        expect(texts(await store.events('run-a'))).toEqual(texts(events.slice(0, 5)));
        expect((await store.get('run-a'))?.eventCount).toBe(5);
        await store.append('run-a', events.slice(5));
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
      });

      it('treats an empty batch as a no-op', async () => {
        const store = await open();
        await store.append('run-a', []);
        expect(await store.get('run-a')).toBeUndefined();
        const events = fakeRun('run-a');
        await store.append('run-a', events.slice(0, 4));
        await store.append('run-a', []);
        expect((await store.get('run-a'))?.eventCount).toBe(4);
      });

      it('refuses arguments that are not a run id and an array of events', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await expectCode(() => store.append('', events), 'OAO_ERR_INVALID_ARGUMENT', { field: 'executionId' });
        await expectCode(() => store.append(42 as unknown as string, events), 'OAO_ERR_INVALID_ARGUMENT', { field: 'executionId' });
        await expectCode(() => store.append('run-a', 'events' as unknown as OaoEvent[]), 'OAO_ERR_INVALID_ARGUMENT', { field: 'events' });
        await expectCode(() => store.append('run-a', [null as unknown as OaoEvent]), 'OAO_ERR_INVALID_ARGUMENT', { field: 'events' });
        expect(await store.get('run-a')).toBeUndefined();
      });

      it('is not changed by later changes to the arrays passed in or handed out', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        const batch = events.slice(0, 6);
        await store.append('run-a', batch);
        batch.pop();
        batch.length = 0;
        const read = (await store.events('run-a')) as OaoEvent[];
        read.length = 0;
        expect(texts(await store.events('run-a'))).toEqual(texts(events.slice(0, 6)));
      });

      it('keeps every log intact under 50 runs appending at once', async () => {
        const store = await open();
        const logs = Array.from({ length: 50 }, (_, i) => {
          const id = runName('concurrent', i);
          return { id, events: fakeRun(id, { startedAt: FAKE_EPOCH + i, agentName: `agent-${i % 5}` }) };
        });
        expect(logs[0]!.events).toHaveLength(13);
        await Promise.all(
          logs.map(async ({ id, events }, i) => {
            for (const batch of batches(events, 1 + (i % 3), 4 + (i % 2), 3)) await store.append(id, batch);
          }),
        );
        for (const { id, events } of logs) {
          expect(texts(await store.events(id))).toEqual(texts(events));
          expect(await store.get(id)).toMatchObject({ eventCount: 13, status: 'SUCCESS' });
        }
        expect(await listAll(store, {}, 1_000)).toHaveLength(50);
      });

      it('accepts the same append racing with itself once (redelivery), and the log stays whole', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events.slice(0, 2));
        const results = await Promise.allSettled(Array.from({ length: 5 }, async () => store.append('run-a', events.slice(2))));
        expect(results.map((result) => result.status)).toEqual(Array(5).fill('fulfilled'));
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
      });

      it('lets exactly one of two different logs racing for the same run win', async () => {
        const store = await open();
        const logs = [fakeRun('run-a', { agentName: 'first' }), fakeRun('run-a', { agentName: 'second', steps: 2 })];
        const results = await Promise.allSettled(logs.map(async (events) => store.append('run-a', events)));
        const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
        expect(winners).toHaveLength(1);
        const loser = results.find((result) => result.status === 'rejected');
        expect(OaoError.isInstance(loser?.reason) && loser.reason.code).toBe('OAO_ERR_LOG_CONFLICT');
        expect(texts(await store.events('run-a'))).toEqual(texts(logs[winners[0]!]!));
      });
    });

    describe('synchronous stores', () => {
      it('answers every call without a promise when it says it is synchronous', async () => {
        const store = await open();
        if (store.synchronous !== true) return;
        const events = fakeRun('run-a');
        const lease = store.acquireLease('run-a', 'worker-1', 60_000) as Lease;
        const answers: Array<[string, unknown]> = [
          ['acquireLease', lease],
          ['append', store.append('run-a', events, { lease })],
          ['events', store.events('run-a')],
          ['report', store.report('run-a')],
          ['get', store.get('run-a')],
          ['list', store.list()],
          ['prune', store.prune()],
          ['renewLease', store.renewLease(lease, 60_000)],
          ['releaseLease', store.releaseLease(lease)],
          ['charge', store.charge('tenant-1', 'day', { tokens: 1 })],
          ['counters', store.counters('tenant-1', 'day')],
        ];
        for (const [name, answer] of answers) {
          expect([name, typeof (answer as { then?: unknown } | undefined)?.then]).toEqual([name, 'undefined']);
        }
        expect((await store.get('run-a'))?.eventCount).toBe(events.length);
        expect(store.close()).toBeUndefined();
      });
    });

    describe('reports and the index', () => {
      it('has no report until EXECUTION_COMPLETE, then the one it carries', async () => {
        const store = await open();
        const events = fakeRun('run-a', { agentName: 'writer', startedAt: FAKE_EPOCH + 0.75, durationMs: 40 });
        await store.append('run-a', events.slice(0, -1));
        expect(await store.report('run-a')).toBeUndefined();
        expect(await store.get('run-a')).toEqual({
          executionId: 'run-a',
          agentName: 'writer',
          status: 'running',
          startedAt: new Date(FAKE_EPOCH).toISOString(),
          eventCount: events.length - 1,
        });
        await store.append('run-a', events.slice(-1));
        expect(await store.report('run-a')).toEqual(reportOf(events));
        expect(await store.get('run-a')).toEqual({
          executionId: 'run-a',
          agentName: 'writer',
          status: 'SUCCESS',
          startedAt: new Date(FAKE_EPOCH).toISOString(),
          finishedAt: reportOf(events)!.finishedAt,
          eventCount: events.length,
        });
      });

      it('indexes a FAILED run with its report', async () => {
        const store = await open();
        const events = fakeRun('run-f', { status: 'FAILED', steps: 2 });
        await store.append('run-f', events);
        expect((await store.get('run-f'))?.status).toBe('FAILED');
        expect((await store.report('run-f'))?.status).toBe('FAILED');
        expect(await store.report('run-f')).toEqual(reportOf(events));
      });
    });

    describe('list', () => {
      it('answers an empty page when it holds nothing', async () => {
        const store = await open();
        expect(await store.list()).toEqual({ runs: [], nextCursor: null });
        expect(await store.list({ status: 'running' }, { limit: 1 })).toEqual({ runs: [], nextCursor: null });
      });

      it('lists newest first, ties by executionId, 50 per page by default', async () => {
        const store = await open();
        const runs = Array.from({ length: 60 }, (_, i) => [runName('r', i), { startedAt: FAKE_EPOCH + Math.floor(i / 2) * 1_000 }] as const);
        await seed(store, runs);
        const first = await store.list();
        expect(first.runs).toHaveLength(50);
        expect(first.nextCursor).not.toBeNull();
        const expected = runs.map(([id]) => id).reverse();
        expect(ids(first.runs)).toEqual(expected.slice(0, 50));
        const second = await store.list({}, { cursor: first.nextCursor! });
        expect(ids(second.runs)).toEqual(expected.slice(50));
        expect(second.nextCursor).toBeNull();
      });

      it('orders by the whole millisecond of the start, so runs started within one are not skipped', async () => {
        const store = await open();
        // Same millisecond, fractions in the opposite order of the ids.
        const runs = ['ms-a', 'ms-b', 'ms-c', 'ms-d', 'ms-e'].map((id, i) => [id, { startedAt: FAKE_EPOCH + 5 + 0.9 - i * 0.2 }] as const);
        await seed(store, [...runs, ['ms-early', { startedAt: FAKE_EPOCH + 4.99 }], ['ms-late', { startedAt: FAKE_EPOCH + 6 }]]);
        const listed = await listAll(store, {}, 1);
        expect(ids(listed)).toEqual(['ms-late', 'ms-e', 'ms-d', 'ms-c', 'ms-b', 'ms-a', 'ms-early']);
        expect(listed[1]?.startedAt).toBe(new Date(FAKE_EPOCH + 5).toISOString());
        expect(ids(await listAll(store, { since: FAKE_EPOCH + 5, until: FAKE_EPOCH + 6 }, 2))).toEqual(['ms-e', 'ms-d', 'ms-c', 'ms-b', 'ms-a']);
      });

      it('filters by agentName, status and start time, alone and together', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        await seed(store, [
          ['a-ok', { agentName: 'alpha', startedAt: FAKE_EPOCH }],
          ['a-failed', { agentName: 'alpha', startedAt: FAKE_EPOCH + 1_000, status: 'FAILED' }],
          ['b-ok', { agentName: 'beta', startedAt: FAKE_EPOCH + 2_000 }],
          ['b-running', { agentName: 'beta', startedAt: FAKE_EPOCH + 3_000, status: 'running' }],
          ['a-running', { agentName: 'alpha', startedAt: FAKE_EPOCH + 4_000, status: 'running' }],
        ]);
        const listed = async (filter: RunListFilter): Promise<string[]> => ids(await listAll(store, filter, 2));
        expect(await listed({ agentName: 'alpha' })).toEqual(['a-running', 'a-failed', 'a-ok']);
        expect(await listed({ agentName: 'gamma' })).toEqual([]);
        expect(await listed({ status: 'SUCCESS' })).toEqual(['b-ok', 'a-ok']);
        expect(await listed({ status: 'FAILED' })).toEqual(['a-failed']);
        expect(await listed({ status: 'running' })).toEqual(['a-running', 'b-running']);
        expect(await listed({ status: 'interrupted' })).toEqual([]);
        expect(await listed({ since: FAKE_EPOCH + 1_000 })).toEqual(['a-running', 'b-running', 'b-ok', 'a-failed']);
        expect(await listed({ until: FAKE_EPOCH + 2_000 })).toEqual(['a-failed', 'a-ok']);
        expect(await listed({ since: FAKE_EPOCH + 1_000, until: FAKE_EPOCH + 3_000 })).toEqual(['b-ok', 'a-failed']);
        expect(await listed({ agentName: 'alpha', status: 'running' })).toEqual(['a-running']);
        expect(await listed({ agentName: 'beta', since: FAKE_EPOCH + 2_500, status: 'running' })).toEqual(['b-running']);
        expect(await listed({ since: FAKE_EPOCH + 9_000 })).toEqual([]);
      });

      it('counts a run interrupted once its lease expires without a report, running again when leased', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const leased = fakeRun('leased', { status: 'running', startedAt: FAKE_EPOCH + 2 });
        const finished = fakeRun('finished', { startedAt: FAKE_EPOCH + 1 });
        const lease = await store.acquireLease('leased', 'worker-1', 1_000);
        const finishedLease = await store.acquireLease('finished', 'worker-1', 1_000);
        expect(lease && finishedLease).toBeDefined();
        await store.append('leased', leased, { lease: lease! });
        await store.append('finished', finished, { lease: finishedLease! });
        await seed(store, [['never-leased', { status: 'running', startedAt: FAKE_EPOCH }]]);

        clock.advance(999);
        expect((await store.get('leased'))?.status).toBe('running');
        expect(ids((await store.list({ status: 'interrupted' })).runs)).toEqual([]);

        clock.advance(1); // now === expiresAt: the lease is over
        expect((await store.get('leased'))?.status).toBe('interrupted');
        expect((await store.get('finished'))?.status).toBe('SUCCESS');
        expect((await store.get('never-leased'))?.status).toBe('running');
        expect(ids((await store.list({ status: 'interrupted' })).runs)).toEqual(['leased']);
        expect(ids((await store.list({ status: 'running' })).runs)).toEqual(['never-leased']);

        const resumed = await store.acquireLease('leased', 'worker-2', 5_000);
        expect(resumed?.token).toBeGreaterThan(lease!.token);
        expect((await store.get('leased'))?.status).toBe('running');
        expect(ids((await store.list({ status: 'running' })).runs)).toEqual(['leased', 'never-leased']);
      });

      it('counts a run interrupted once its lease is released without a report', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const lease = await store.acquireLease('run-a', 'worker-1', 60_000);
        await store.append('run-a', fakeRun('run-a', { status: 'running' }), { lease: lease! });
        expect((await store.get('run-a'))?.status).toBe('running');
        await store.releaseLease(lease!);
        expect((await store.get('run-a'))?.status).toBe('interrupted');
      });

      it('pages through 120 runs without duplicates or misses while runs are added between pages', async () => {
        const store = await open();
        const original = Array.from({ length: 120 }, (_, i) => [runName('page', i), { startedAt: FAKE_EPOCH + 10_000 + i * 10 }] as const);
        await seed(store, original);
        const seen: StoredRun[] = [];
        let cursor: string | undefined;
        let ended = false;
        for (let page = 0; page < 100 && !ended; page += 1) {
          const result = await store.list({}, cursor === undefined ? { limit: 25 } : { limit: 25, cursor });
          seen.push(...result.runs);
          // A newer run, an older one, and one in the middle of what is still to come.
          await seed(store, [
            [runName('newer', page), { startedAt: FAKE_EPOCH + 100_000 + page }],
            [runName('older', page), { startedAt: FAKE_EPOCH + page }],
            [runName('between', page), { startedAt: FAKE_EPOCH + 10_000 + 5 }],
          ]);
          ended = result.nextCursor === null;
          cursor = result.nextCursor ?? undefined;
        }
        expect(ended).toBe(true);
        const seenIds = ids(seen);
        expect(new Set(seenIds).size).toBe(seenIds.length);
        const seenOriginal = seenIds.filter((id) => id.startsWith('page-'));
        expect(seenOriginal).toEqual(original.map(([id]) => id).reverse());
        expect(seenIds.some((id) => id.startsWith('newer-'))).toBe(false);
        const starts = seen.map((run) => Date.parse(run.startedAt));
        expect(starts).toEqual([...starts].sort((a, b) => b - a));
      });

      it('ends with a null cursor exactly at the last run', async () => {
        const store = await open();
        await seed(store, Array.from({ length: 120 }, (_, i) => [runName('exact', i), { startedAt: FAKE_EPOCH + i }] as const));
        const pages: number[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10; page += 1) {
          const result = await store.list({}, cursor === undefined ? { limit: 40 } : { limit: 40, cursor });
          pages.push(result.runs.length);
          if (result.nextCursor === null) break;
          cursor = result.nextCursor;
        }
        expect(pages).toEqual([40, 40, 40]);
        expect((await store.list({}, { limit: 120 })).nextCursor).toBeNull();
        const almost = await store.list({}, { limit: 119 });
        expect(almost.nextCursor).not.toBeNull();
        const rest = await store.list({}, { limit: 119, cursor: almost.nextCursor! });
        expect(ids(rest.runs)).toEqual([runName('exact', 0)]);
        expect(rest.nextCursor).toBeNull();
        expect((await store.list({}, { limit: 1_000 })).runs).toHaveLength(120);
        expect((await store.list({}, { limit: 1 })).runs).toHaveLength(1);
      });

      it('keeps a cursor valid across a filter: the page continues where the last one ended', async () => {
        const store = await open();
        await seed(
          store,
          Array.from({ length: 9 }, (_, i) => [runName('f', i), { startedAt: FAKE_EPOCH + i, agentName: i % 3 === 0 ? 'odd-one' : 'other' }] as const),
        );
        expect(ids(await listAll(store, { agentName: 'odd-one' }, 1))).toEqual([runName('f', 6), runName('f', 3), runName('f', 0)]);
      });

      it('refuses a cursor it did not issue', async () => {
        const store = await open();
        await seed(store, [['run-a']]);
        const foreign = [
          'not a cursor',
          '!!!',
          Buffer.from('{"a":1}').toString('base64url'),
          Buffer.from('[1,2]').toString('base64url'),
          Buffer.from('["x","run-a"]').toString('base64url'),
        ];
        for (const cursor of foreign) {
          await expectCode(() => store.list({}, { cursor }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'cursor' });
        }
      });

      it('refuses a limit outside 1..1000 and a malformed filter', async () => {
        const store = await open();
        for (const limit of [0, -1, 1.5, 1_001, Number.NaN, '10' as unknown as number]) {
          await expectCode(() => store.list({}, { limit }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'limit' });
        }
        await expectCode(() => store.list({ status: 'done' as never }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'status' });
        await expectCode(() => store.list({ agentName: 7 as unknown as string }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'agentName' });
        await expectCode(() => store.list({ since: Number.NaN }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'since' });
        await expectCode(() => store.list({ until: '2026' as unknown as number }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'until' });
      });
    });

    describe('retention', () => {
      const finishing = [
        ['ret-a', { startedAt: FAKE_EPOCH, durationMs: 500 }],
        ['ret-b', { startedAt: FAKE_EPOCH + 10, durationMs: 10 }],
        ['ret-c', { startedAt: FAKE_EPOCH + 20, durationMs: 100 }],
        ['ret-d', { startedAt: FAKE_EPOCH + 30, durationMs: 300 }],
        ['ret-e', { startedAt: FAKE_EPOCH + 40, durationMs: 10 }],
        ['ret-u1', { startedAt: FAKE_EPOCH - 1_000_000, status: 'running' }],
        ['ret-u2', { startedAt: FAKE_EPOCH + 5, status: 'running' }],
      ] as const;

      it('keeps the maxRuns finished runs that finished last, and every unfinished run', async () => {
        const store = await open({ maxRuns: 3 });
        await seed(store, finishing);
        const deleted = await store.prune();
        expect(deleted).toBeGreaterThanOrEqual(0);
        expect(deleted).toBeLessThanOrEqual(2);
        // Finished at +500, +330, +120 are kept; +20 (b) and +50 (e) go. Start order does not count.
        expect(ids(await listAll(store, {}, 100)).sort()).toEqual(['ret-a', 'ret-c', 'ret-d', 'ret-u1', 'ret-u2']);
        for (const id of ['ret-b', 'ret-e']) {
          expect(await store.get(id)).toBeUndefined();
          expect(await store.events(id)).toEqual([]);
          expect(await store.report(id)).toBeUndefined();
        }
        expect(await store.prune()).toBe(0);
      });

      it('deletes the oldest first by finishedAt, then by executionId', async () => {
        const store = await open({ maxRuns: 1 });
        await seed(store, [
          ['tie-b', { startedAt: FAKE_EPOCH, durationMs: 100 }],
          ['tie-a', { startedAt: FAKE_EPOCH + 50, durationMs: 50 }],
        ]);
        await store.prune();
        expect(ids((await store.list()).runs)).toEqual(['tie-b']);
      });

      it('keeps no finished run with maxRuns 0, and never deletes counters', async () => {
        const store = await open({ maxRuns: 0 });
        await store.charge('tenant-1', '2026-01', { tokens: 120 });
        await seed(store, finishing);
        await store.prune();
        expect(ids(await listAll(store, {}, 100)).sort()).toEqual(['ret-u1', 'ret-u2']);
        expect(await store.counters('tenant-1', '2026-01')).toEqual({ tokens: 120 });
      });

      it('deletes finished runs older than maxAgeMs by their finishedAt, on the store clock', async () => {
        const clock = fakeClock(FAKE_EPOCH + 210);
        const store = await open({ maxAgeMs: 100, now: clock.now });
        await seed(store, [
          ['age-a', { startedAt: FAKE_EPOCH, durationMs: 10 }],
          ['age-b', { startedAt: FAKE_EPOCH + 100, durationMs: 10 }],
          ['age-c', { startedAt: FAKE_EPOCH + 200, durationMs: 10 }],
          ['age-u', { startedAt: FAKE_EPOCH - 1_000_000, status: 'running' }],
        ]);
        // Ages 200, 100 (not older than maxAgeMs: kept) and 0.
        expect(await store.prune()).toBe(1);
        expect(ids(await listAll(store, {}, 100))).toEqual(['age-c', 'age-b', 'age-u']);
        clock.advance(1);
        expect(await store.prune()).toBe(1);
        clock.advance(1_000_000);
        expect(await store.prune()).toBe(1);
        expect(ids(await listAll(store, {}, 100))).toEqual(['age-u']);
      });

      it('applies maxAgeMs and maxRuns together', async () => {
        const clock = fakeClock(FAKE_EPOCH + 1_000);
        const store = await open({ maxRuns: 2, maxAgeMs: 900, now: clock.now });
        await seed(store, finishing);
        await store.prune();
        // Older than 900 ms: b (finished +20) and e (+50). Of a (+500), c (+120) and d (+330), the 2
        // that finished last stay: a and d.
        expect(ids(await listAll(store, {}, 100)).sort()).toEqual(['ret-a', 'ret-d', 'ret-u1', 'ret-u2']);
      });

      it('deletes nothing without retention options', async () => {
        const store = await open();
        await seed(store, finishing);
        expect(await store.prune()).toBe(0);
        expect(await listAll(store, {}, 100)).toHaveLength(finishing.length);
      });

      it('refuses retention and clock options of the wrong kind', async () => {
        for (const [options, field] of [
          [{ maxRuns: -1 }, 'maxRuns'],
          [{ maxRuns: 1.5 }, 'maxRuns'],
          [{ maxRuns: '3' }, 'maxRuns'],
          [{ maxAgeMs: -1 }, 'maxAgeMs'],
          [{ maxAgeMs: Number.POSITIVE_INFINITY }, 'maxAgeMs'],
          [{ now: 5 }, 'now'],
        ] as const) {
          await expectCode(() => open(options as unknown as RunStoreOptions), 'OAO_ERR_INVALID_ARGUMENT', { field });
        }
      });
    });

    describe('leases', () => {
      it('grants a lease, renews it for its holder with the same token, refuses others while it lives', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const start = clock.now();
        const lease = await store.acquireLease('run-a', 'worker-1', 1_000);
        expect(lease).toEqual({ executionId: 'run-a', owner: 'worker-1', token: expect.any(Number), expiresAt: start + 1_000 });
        clock.advance(400);
        const again = await store.acquireLease('run-a', 'worker-1', 1_000);
        expect(again).toEqual({ ...lease, expiresAt: start + 1_400 });
        clock.advance(999);
        expect(await store.acquireLease('run-a', 'worker-2', 1_000)).toBeUndefined();
      });

      it('lets another owner take over at expiry with a greater token; the stale owner can no longer renew or write', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const events = fakeRun('run-a', { steps: 2 });
        const first = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
        await store.append('run-a', events.slice(0, 4), { lease: first });
        clock.advance(1_000);
        const second = await store.acquireLease('run-a', 'worker-2', 1_000);
        expect(second).toMatchObject({ owner: 'worker-2', expiresAt: clock.now() + 1_000 });
        expect(second!.token).toBeGreaterThan(first.token);
        expect(await store.renewLease(first, 1_000)).toBe(false);
        await expectCode(() => store.append('run-a', events.slice(4, 6), { lease: first }), 'OAO_ERR_LEASE_LOST', { executionId: 'run-a' });
        expect((await store.get('run-a'))?.eventCount).toBe(4);
        expect(await store.acquireLease('run-a', 'worker-1', 1_000)).toBeUndefined();
        await store.append('run-a', events.slice(4), { lease: second! });
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
      });

      it('extends a renewed lease from the time of renewal', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const lease = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
        clock.advance(900);
        expect(await store.renewLease(lease, 1_000)).toBe(true);
        clock.advance(900); // past the first expiry, before the renewed one
        expect(await store.acquireLease('run-a', 'worker-2', 1_000)).toBeUndefined();
        clock.advance(100);
        expect(await store.acquireLease('run-a', 'worker-2', 1_000)).toBeDefined();
      });

      it('fences by token, not by clock: an expired lease nobody took over still renews and writes', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const events = fakeRun('run-a');
        const lease = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
        await store.append('run-a', events.slice(0, 3), { lease });
        clock.advance(5_000);
        await store.append('run-a', events.slice(3, 6), { lease });
        expect(await store.renewLease(lease, 1_000)).toBe(true);
        expect(await store.acquireLease('run-a', 'worker-2', 1_000)).toBeUndefined();
        expect((await store.get('run-a'))?.eventCount).toBe(6);
      });

      it('releases: another owner may take the run at once with a greater token; the released lease is dead', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const events = fakeRun('run-a');
        const first = (await store.acquireLease('run-a', 'worker-1', 60_000))!;
        await store.append('run-a', events.slice(0, 3), { lease: first });
        await store.releaseLease(first);
        await store.releaseLease(first);
        expect(await store.renewLease(first, 1_000)).toBe(false);
        await expectCode(() => store.append('run-a', events.slice(3, 5), { lease: first }), 'OAO_ERR_LEASE_LOST');
        const second = (await store.acquireLease('run-a', 'worker-2', 60_000))!;
        expect(second.token).toBeGreaterThan(first.token);
        // A stale release does not free the new holder's lease.
        await store.releaseLease(first);
        expect(await store.acquireLease('run-a', 'worker-3', 60_000)).toBeUndefined();
        await store.releaseLease(second);
        const third = (await store.acquireLease('run-a', 'worker-1', 60_000))!;
        expect(third.token).toBeGreaterThan(second.token);
        await store.append('run-a', events.slice(3), { lease: third });
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
      });

      it('refuses an append with a lease of another run, and accepts one without a lease', async () => {
        const store = await open();
        const other = (await store.acquireLease('run-b', 'worker-1', 60_000))!;
        await expectCode(() => store.append('run-a', fakeRun('run-a'), { lease: other }), 'OAO_ERR_LEASE_LOST');
        expect(await store.get('run-a')).toBeUndefined();
        const lease = (await store.acquireLease('run-a', 'worker-1', 60_000))!;
        const events = fakeRun('run-a');
        await store.append('run-a', events.slice(0, 4), { lease });
        await store.append('run-a', events.slice(4));
        expect((await store.get('run-a'))?.eventCount).toBe(events.length);
      });

      it('grants one lease to exactly one of ten owners racing for it', async () => {
        const store = await open();
        const leases = await Promise.all(Array.from({ length: 10 }, async (_, i) => store.acquireLease('run-a', `worker-${i}`, 60_000)));
        expect(leases.filter((lease): lease is Lease => lease !== undefined)).toHaveLength(1);
      });

      it('keeps tokens per run', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const a1 = (await store.acquireLease('run-a', 'worker-1', 10))!;
        clock.advance(10);
        const a2 = (await store.acquireLease('run-a', 'worker-2', 10))!;
        const b1 = (await store.acquireLease('run-b', 'worker-1', 10))!;
        expect(a2.token).toBeGreaterThan(a1.token);
        expect(await store.renewLease(b1, 10)).toBe(true);
        await expectCode(() => store.append('run-b', fakeRun('run-b'), { lease: { ...a2, executionId: 'run-b' } }), 'OAO_ERR_LEASE_LOST');
      });

      it('refuses a ttl that is not a positive integer, an empty owner and a malformed lease', async () => {
        const store = await open();
        for (const ttl of [0, -5, 1.5, Number.NaN, '100' as unknown as number]) {
          await expectCode(() => store.acquireLease('run-a', 'worker-1', ttl), 'OAO_ERR_INVALID_ARGUMENT', { field: 'ttlMs' });
        }
        await expectCode(() => store.acquireLease('run-a', '', 1_000), 'OAO_ERR_INVALID_ARGUMENT', { field: 'owner' });
        await expectCode(() => store.acquireLease('', 'worker-1', 1_000), 'OAO_ERR_INVALID_ARGUMENT', { field: 'executionId' });
        const lease = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
        await expectCode(() => store.renewLease(lease, 0), 'OAO_ERR_INVALID_ARGUMENT', { field: 'ttlMs' });
        await expectCode(() => store.renewLease({ executionId: 'run-a' } as Lease, 1_000), 'OAO_ERR_INVALID_ARGUMENT', { field: 'lease' });
        await expectCode(() => store.releaseLease(null as unknown as Lease), 'OAO_ERR_INVALID_ARGUMENT', { field: 'lease' });
        await expectCode(() => store.append('run-a', fakeRun('run-a'), { lease: 'mine' as unknown as Lease }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'lease' });
        expect(await store.get('run-a')).toBeUndefined();
      });
    });

    describe('leases taken and released by appends', () => {
      /** Append options that acquire for `owner` and collect what onAcquired hands over. */
      function acquiring(owner: string, ttlMs = 1_000, release = false) {
        const handed: Lease[] = [];
        const options = { acquire: { owner, ttlMs, onAcquired: (lease: Lease) => void handed.push(lease) }, ...(release ? { release } : {}) };
        return { options, handed };
      }

      it('takes the lease with the first append and hands it over once stored; later appends write with it', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const events = fakeRun('run-a', { steps: 2 });
        const { options, handed } = acquiring('worker-1');
        const answer = store.append('run-a', events.slice(0, 4), options);
        // A synchronous store has handed the lease over when append returns.
        if (store.synchronous === true) expect(handed).toHaveLength(1);
        await answer;
        expect(handed).toEqual([{ executionId: 'run-a', owner: 'worker-1', token: expect.any(Number), expiresAt: clock.now() + 1_000 }]);
        const lease = handed[0]!;
        expect((await store.get('run-a'))?.status).toBe('running');
        expect(await store.acquireLease('run-a', 'worker-2', 1_000)).toBeUndefined();
        clock.advance(500);
        expect(await store.renewLease(lease, 1_000)).toBe(true);
        await store.append('run-a', events.slice(4), { lease });
        expect(texts(await store.events('run-a'))).toEqual(texts(events));
      });

      it('refuses an acquiring append while another owner holds a live lease: nothing stored, nothing handed over', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const events = fakeRun('run-a');
        const holder = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
        const { options, handed } = acquiring('worker-2');
        await expectCode(() => store.append('run-a', events, options), 'OAO_ERR_LEASE_LOST', { executionId: 'run-a', owner: 'worker-2' });
        expect(handed).toEqual([]);
        expect(await store.get('run-a')).toBeUndefined();
        expect(await store.renewLease(holder, 1_000)).toBe(true);
        // Expired: the acquiring append takes the run over with a greater token, and fences the old holder.
        clock.advance(1_000);
        await store.append('run-a', events.slice(0, 5), options);
        expect(handed).toHaveLength(1);
        expect(handed[0]!.token).toBeGreaterThan(holder.token);
        await expectCode(() => store.append('run-a', events.slice(5), { lease: holder }), 'OAO_ERR_LEASE_LOST');
        expect((await store.get('run-a'))?.eventCount).toBe(5);
      });

      it('keeps the token when the holder appends with acquire, and renews the lease from now', async () => {
        const clock = fakeClock();
        const store = await open({ now: clock.now });
        const lease = (await store.acquireLease('run-a', 'worker-1', 1_000))!;
        clock.advance(600);
        const { options, handed } = acquiring('worker-1');
        await store.append('run-a', fakeRun('run-a').slice(0, 3), options);
        expect(handed).toEqual([{ ...lease, expiresAt: clock.now() + 1_000 }]);
        expect(await store.renewLease(lease, 1_000)).toBe(true);
      });

      it('takes no lease when the acquiring append conflicts or leaves a gap', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events.slice(0, 6));
        const { options, handed } = acquiring('worker-1');
        await expectCode(() => store.append('run-a', [altered(events[2]!), ...events.slice(3, 8)], options), 'OAO_ERR_LOG_CONFLICT');
        await expectCode(() => store.append('run-a', events.slice(7), options), 'OAO_ERR_LOG_CONFLICT');
        expect(handed).toEqual([]);
        expect((await store.get('run-a'))?.eventCount).toBe(6);
        // Nobody took it: the first owner to ask gets the first token.
        expect((await store.acquireLease('run-a', 'worker-2', 1_000))?.token).toBe(1);
      });

      it('releases with the last append: the run is finished and its lease free at once', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        const lease = (await store.acquireLease('run-a', 'worker-1', 60_000))!;
        await store.append('run-a', events.slice(0, 6), { lease });
        await store.append('run-a', events.slice(6), { lease, release: true });
        expect(await store.get('run-a')).toMatchObject({ status: 'SUCCESS', eventCount: events.length });
        expect(await store.renewLease(lease, 1_000)).toBe(false);
        const next = await store.acquireLease('run-a', 'worker-2', 60_000);
        expect(next?.token).toBeGreaterThan(lease.token);
      });

      it('takes and releases in one append: a run written whole leaves its lease released, its token counted', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        const { options, handed } = acquiring('worker-1', 60_000, true);
        await store.append('run-a', events, options);
        expect(handed).toHaveLength(1);
        const lease = handed[0]!;
        expect(await store.get('run-a')).toMatchObject({ status: 'SUCCESS', eventCount: events.length });
        expect(await store.renewLease(lease, 1_000)).toBe(false);
        await expectCode(() => store.append('run-a', events, { lease }), 'OAO_ERR_LEASE_LOST');
        expect((await store.acquireLease('run-a', 'worker-2', 60_000))?.token).toBeGreaterThan(lease.token);
      });

      it('lists a run released without its report as interrupted at once', async () => {
        const store = await open();
        const { options } = acquiring('worker-1', 60_000, true);
        await store.append('run-a', fakeRun('run-a', { status: 'running' }), options);
        expect((await store.get('run-a'))?.status).toBe('interrupted');
      });

      it('changes the lease even when every event was stored already (a retried append) or none is given', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        await store.append('run-a', events);
        const retry = acquiring('worker-1', 60_000);
        await store.append('run-a', events.slice(3, 8), retry.options);
        expect(retry.handed).toHaveLength(1);
        expect(await store.acquireLease('run-a', 'worker-2', 60_000)).toBeUndefined();
        await store.append('run-a', [], { lease: retry.handed[0]!, release: true });
        expect(await store.renewLease(retry.handed[0]!, 1_000)).toBe(false);
        const empty = acquiring('worker-1', 60_000);
        await store.append('run-b', [], empty.options);
        expect(empty.handed).toHaveLength(1);
        expect(await store.acquireLease('run-b', 'worker-2', 60_000)).toBeUndefined();
        expect(await store.get('run-b')).toBeUndefined();
      });

      it('keeps the lease held when an append that would release it fails', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        const lease = (await store.acquireLease('run-a', 'worker-1', 60_000))!;
        await store.append('run-a', events.slice(0, 6), { lease });
        await expectCode(() => store.append('run-a', [altered(events[5]!), ...events.slice(6)], { lease, release: true }), 'OAO_ERR_LOG_CONFLICT');
        expect(await store.renewLease(lease, 60_000)).toBe(true);
        expect((await store.get('run-a'))?.status).toBe('running');
      });

      it('refuses acquire and release options it cannot apply, storing nothing', async () => {
        const store = await open();
        const events = fakeRun('run-a');
        const other = (await store.acquireLease('run-x', 'worker-1', 60_000))!;
        const cases: Array<[unknown, string]> = [
          [{ acquire: 'worker-1' }, 'acquire'],
          [{ acquire: { owner: '', ttlMs: 1_000 } }, 'owner'],
          [{ acquire: { owner: 'worker-1', ttlMs: 0 } }, 'ttlMs'],
          [{ acquire: { owner: 'worker-1', ttlMs: 1_000, onAcquired: 'me' } }, 'onAcquired'],
          [{ acquire: { owner: 'worker-1', ttlMs: 1_000 }, lease: other }, 'acquire'],
          [{ release: 'yes', lease: other }, 'release'],
          [{ release: true }, 'release'],
        ];
        for (const [options, field] of cases) {
          await expectCode(() => store.append('run-a', events, options as AppendOptions), 'OAO_ERR_INVALID_ARGUMENT', { field });
        }
        expect(await store.get('run-a')).toBeUndefined();
        expect(await store.acquireLease('run-a', 'worker-2', 60_000)).toBeDefined();
      });
    });

    describe('counters', () => {
      it('charges and returns every counter of the scope and window after the charge', async () => {
        const store = await open();
        expect(await store.counters('tenant-1', '2026-01')).toEqual({});
        expect(await store.charge('tenant-1', '2026-01', { tokens: 100, costMicros: 7 })).toEqual({ tokens: 100, costMicros: 7 });
        expect(await store.charge('tenant-1', '2026-01', { tokens: 50 })).toEqual({ tokens: 150, costMicros: 7 });
        expect(await store.charge('tenant-1', '2026-01', {})).toEqual({ tokens: 150, costMicros: 7 });
        expect(await store.counters('tenant-1', '2026-01')).toEqual({ tokens: 150, costMicros: 7 });
      });

      it('adds negative amounts (a settled reservation)', async () => {
        const store = await open();
        await store.charge('tenant-1', 'day', { tokens: 1_000 });
        expect(await store.charge('tenant-1', 'day', { tokens: -400 })).toEqual({ tokens: 600 });
        expect(await store.charge('tenant-1', 'day', { tokens: -700 })).toEqual({ tokens: -100 });
      });

      it('keeps scopes and windows apart', async () => {
        const store = await open();
        await store.charge('tenant-1', '2026-01', { tokens: 1 });
        await store.charge('tenant-1', '2026-02', { tokens: 2 });
        await store.charge('tenant-2', '2026-01', { tokens: 3 });
        // Pairs that would collide if scope and window were simply joined.
        await store.charge('a:b', 'c', { tokens: 4 });
        await store.charge('a', 'b:c', { tokens: 5 });
        expect(await store.counters('tenant-1', '2026-01')).toEqual({ tokens: 1 });
        expect(await store.counters('tenant-1', '2026-02')).toEqual({ tokens: 2 });
        expect(await store.counters('tenant-2', '2026-01')).toEqual({ tokens: 3 });
        expect(await store.counters('a:b', 'c')).toEqual({ tokens: 4 });
        expect(await store.counters('a', 'b:c')).toEqual({ tokens: 5 });
        expect(await store.counters('tenant-3', '2026-01')).toEqual({});
      });

      it('is atomic under 100 concurrent charges: every total is seen exactly once', async () => {
        const store = await open();
        const totals = await Promise.all(Array.from({ length: 100 }, async () => store.charge('tenant-1', 'hour', { calls: 1, tokens: 10 })));
        expect(totals.map((total) => total.calls).sort((a, b) => a! - b!)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
        expect(await store.counters('tenant-1', 'hour')).toEqual({ calls: 100, tokens: 1_000 });
      });

      it('accepts counter names that are Object.prototype keys', async () => {
        const store = await open();
        const amounts = JSON.parse('{"__proto__": 2, "constructor": 3, "toString": 4}') as Record<string, number>;
        const totals = await store.charge('tenant-1', 'day', amounts);
        expect(Object.entries(totals).sort()).toEqual([['__proto__', 2], ['constructor', 3], ['toString', 4]]);
        expect(Object.entries(await store.counters('tenant-1', 'day')).sort()).toEqual([['__proto__', 2], ['constructor', 3], ['toString', 4]]);
      });

      it('refuses amounts that are not safe integers, and a total past them, charging nothing', async () => {
        const store = await open();
        await store.charge('tenant-1', 'day', { tokens: 10 });
        for (const amounts of [{ tokens: 1.5 }, { tokens: Number.NaN }, { tokens: '3' }, { tokens: 2 ** 53 }, [1], null, 'tokens']) {
          await expectCode(
            () => store.charge('tenant-1', 'day', amounts as unknown as Record<string, number>),
            'OAO_ERR_INVALID_ARGUMENT',
            { field: 'amounts' },
          );
        }
        await expectCode(() => store.charge('tenant-1', 'day', { costMicros: 5, tokens: Number.MAX_SAFE_INTEGER }), 'OAO_ERR_INVALID_ARGUMENT', {
          field: 'amounts',
        });
        expect(await store.counters('tenant-1', 'day')).toEqual({ tokens: 10 });
        await expectCode(() => store.charge(1 as unknown as string, 'day', { tokens: 1 }), 'OAO_ERR_INVALID_ARGUMENT', { field: 'scope' });
        await expectCode(() => store.counters('tenant-1', undefined as unknown as string), 'OAO_ERR_INVALID_ARGUMENT', { field: 'window' });
      });
    });

    describe('close', () => {
      it('closes idempotently; every later call fails with OAO_ERR_STORE', async () => {
        const store = await open();
        const lease = (await store.acquireLease('run-a', 'worker-1', 60_000))!;
        await store.append('run-a', fakeRun('run-a'));
        await store.close();
        await store.close();
        const calls: Array<[string, () => unknown]> = [
          ['append', () => store.append('run-b', fakeRun('run-b'))],
          ['events', () => store.events('run-a')],
          ['report', () => store.report('run-a')],
          ['get', () => store.get('run-a')],
          ['list', () => store.list()],
          ['prune', () => store.prune()],
          ['acquireLease', () => store.acquireLease('run-c', 'worker-1', 1_000)],
          ['renewLease', () => store.renewLease(lease, 1_000)],
          ['releaseLease', () => store.releaseLease(lease)],
          ['charge', () => store.charge('tenant-1', 'day', { tokens: 1 })],
          ['counters', () => store.counters('tenant-1', 'day')],
        ];
        for (const [name, call] of calls) {
          const error = await failure(call);
          expect([name, error.code]).toEqual([name, 'OAO_ERR_STORE']);
        }
      });

      it.skipIf(factory.reopen === undefined)('keeps logs, reports, the index, leases and counters across a reopen', async () => {
        const store = await open();
        const done = fakeRun('done', { startedAt: FAKE_EPOCH + 2, steps: 2 });
        const live = fakeRun('live', { startedAt: FAKE_EPOCH + 1 });
        await store.append('done', done);
        const lease = (await store.acquireLease('live', 'worker-1', 600_000))!;
        await store.append('live', live.slice(0, 7), { lease });
        await seed(store, [['older', { startedAt: FAKE_EPOCH }]]);
        await store.charge('tenant-1', 'day', { tokens: 42 });
        const firstPage = await store.list({}, { limit: 1 });
        await store.close();

        const reopened = await factory.reopen!();
        opened.push(reopened);
        expect(texts(await reopened.events('done'))).toEqual(texts(done));
        expect(await reopened.report('done')).toEqual(reportOf(done));
        expect(await reopened.get('live')).toMatchObject({ status: 'running', eventCount: 7 });
        expect(ids((await reopened.list()).runs)).toEqual(['done', 'live', 'older']);
        expect(ids((await reopened.list({}, { limit: 5, cursor: firstPage.nextCursor! })).runs)).toEqual(['live', 'older']);
        expect(await reopened.counters('tenant-1', 'day')).toEqual({ tokens: 42 });
        expect(await reopened.charge('tenant-1', 'day', { tokens: 8 })).toEqual({ tokens: 50 });

        expect(await reopened.acquireLease('live', 'worker-2', 1_000)).toBeUndefined();
        expect(await reopened.renewLease(lease, 600_000)).toBe(true);
        await reopened.append('live', live.slice(0, 9), { lease });
        await reopened.append('live', live.slice(9), { lease });
        await reopened.append('done', done);
        expect(texts(await reopened.events('live'))).toEqual(texts(live));
        await reopened.releaseLease(lease);
        const next = (await reopened.acquireLease('live', 'worker-2', 1_000))!;
        expect(next.token).toBeGreaterThan(lease.token);
        await expectCode(() => reopened.append('live', [altered(live[3]!)]), 'OAO_ERR_LOG_CONFLICT', { seq: 3 });
      });
    });
  });
}
