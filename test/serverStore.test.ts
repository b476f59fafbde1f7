import { beforeAll, describe, expect, it } from 'vitest';
import { OaoError, Orchestrator, type ExecutionReport } from '../src/index.js';
import { createMemoryRunStore, type RunRecord, type RunStatus, type RunStore } from '../src/server/index.js';

/**
 * The RunStore contract, written once as a suite that takes a factory: a durable store (a later
 * issue) runs the same suite. Every call is awaited, so synchronous and async stores both fit.
 */
function describeRunStore(name: string, create: (maxRuns: number) => RunStore | Promise<RunStore>): void {
  let clock = 0;
  const running = (id: string, agent = 'echo'): RunRecord => ({
    executionId: id,
    agent,
    status: 'running',
    startedAt: new Date(Date.UTC(2030, 0, 1, 0, 0, clock++)).toISOString(),
  });
  const finished = (record: RunRecord, status: Exclude<RunStatus, 'running'>, report: ExecutionReport): RunRecord => ({
    ...record,
    status,
    finishedAt: report.finishedAt,
    report,
    events: [],
  });
  const ids = (records: readonly RunRecord[]) => records.map((record) => record.executionId);

  describe(name, () => {
    let report: ExecutionReport;
    beforeAll(async () => {
      report = await new Orchestrator().run({ agent: (task: string) => task, task: 'x' });
    });

    it('puts, gets and replaces a record in place', async () => {
      const store = await create(10);
      await store.put(running('a'));
      expect((await store.get('a'))?.status).toBe('running');
      expect(await store.get('missing')).toBeUndefined();
      await store.put(running('b'));
      await store.put(finished(running('a'), 'SUCCESS', report));
      expect(await store.get('a')).toMatchObject({ status: 'SUCCESS', report: { executionHash: report.executionHash } });
      // Replacing keeps the run's place: the newest is still b.
      expect(ids((await store.list({}, { limit: 10 })).runs)).toEqual(['b', 'a']);
    });

    it('lists newest first, filtered by status and agent, with a total', async () => {
      const store = await create(10);
      await store.put(running('a', 'echo'));
      await store.put(finished(running('b', 'critic'), 'FAILED', report));
      await store.put(finished(running('c', 'echo'), 'SUCCESS', report));
      await store.put(running('d', 'critic'));
      const all = await store.list({}, { limit: 10 });
      expect(ids(all.runs)).toEqual(['d', 'c', 'b', 'a']);
      expect(all).toMatchObject({ total: 4, nextCursor: null });
      expect(ids((await store.list({ status: 'running' }, { limit: 10 })).runs)).toEqual(['d', 'a']);
      expect(ids((await store.list({ agent: 'critic' }, { limit: 10 })).runs)).toEqual(['d', 'b']);
      expect(await store.list({ agent: 'critic', status: 'SUCCESS' }, { limit: 10 })).toMatchObject({ runs: [], total: 0 });
    });

    it('pages by offset, and by cursor without skipping or repeating when runs come and go', async () => {
      const store = await create(20);
      for (const id of ['r1', 'r2', 'r3', 'r4', 'r5']) await store.put(running(id));
      expect(ids((await store.list({}, { limit: 2, offset: 1 })).runs)).toEqual(['r4', 'r3']);
      expect((await store.list({}, { limit: 2, offset: 10 })).runs).toEqual([]);

      const first = await store.list({}, { limit: 2 });
      expect(ids(first.runs)).toEqual(['r5', 'r4']);
      await store.put(running('r6'));
      await store.delete('r3');
      const second = await store.list({}, { limit: 2, cursor: first.nextCursor as string });
      expect(ids(second.runs)).toEqual(['r2', 'r1']);
      expect(second.nextCursor).toBeNull();
    });

    it('refuses a cursor it did not issue', async () => {
      const store = await create(5);
      const error = await Promise.resolve()
        .then(() => store.list({}, { limit: 2, cursor: 'not-a-cursor' }))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_INVALID_ARGUMENT');
      expect((error as OaoError).details?.field).toBe('cursor');
    });

    it('when full, evicts the oldest finished run first, never a running one', async () => {
      const store = await create(3);
      await store.put(running('live-1'));
      await store.put(finished(running('done-1'), 'SUCCESS', report));
      await store.put(finished(running('done-2'), 'FAILED', report));
      await store.put(running('new-1'));
      expect(await store.get('done-1')).toBeUndefined();
      expect(await store.get('live-1')).toBeDefined();
      await store.put(running('new-2'));
      expect(await store.get('done-2')).toBeUndefined();
      expect(ids((await store.list({}, { limit: 10 })).runs)).toEqual(['new-2', 'new-1', 'live-1']);
    });

    it('when full of running runs, refuses a new one with OAO_ERR_TOO_MANY_RUNS', async () => {
      const store = await create(2);
      await store.put(running('x'));
      await store.put(running('y'));
      const error = await Promise.resolve()
        .then(() => store.put(running('z')))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_TOO_MANY_RUNS');
      // A run it already has can still be updated.
      await store.put(finished(running('y'), 'SUCCESS', report));
      await store.put(running('z'));
      expect(await store.get('y')).toBeUndefined();
      expect(await store.get('z')).toBeDefined();
    });

    it('deletes', async () => {
      const store = await create(2);
      await store.put(running('gone'));
      expect(await store.delete('gone')).toBe(true);
      expect(await store.delete('gone')).toBe(false);
      expect(await store.get('gone')).toBeUndefined();
    });
  });
}

describeRunStore('createMemoryRunStore', (maxRuns) => createMemoryRunStore({ maxRuns }));

describeRunStore('an async store (the memory store behind promises)', (maxRuns) => {
  const inner = createMemoryRunStore({ maxRuns });
  return {
    put: async (record) => inner.put(record),
    get: async (id) => inner.get(id),
    list: async (filter, page) => inner.list(filter, page),
    delete: async (id) => inner.delete(id),
  };
});
