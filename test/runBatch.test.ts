// A run knows the queued batch it belongs to: the `batch` run option, recorded in EXECUTION_START
// (so a job of the run enqueued again still spends the batch's budget), never part of executionHash.
import { describe, expect, it } from 'vitest';
import { OaoError, Orchestrator, createMemoryStore, oaoEventSchema } from '../src/index.js';
import { foldRun } from '../src/log/foldRun.js';
import { verifyReplay } from '../src/log/verifyReplay.js';
import { spender, tools } from './fixtures/spender.js';
import { startOf } from './helpers.js';

describe('the batch run option', () => {
  it('is recorded in EXECUTION_START, kept by the event schema and the fold, and leaves executionHash alone', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const handle = orch.start({ agent: spender, task: 'go', tools, batch: 'batch-7.a_b', executionId: 'in-batch' });
    await handle.report;
    const start = startOf(store.events('in-batch'));
    expect(start.payload.batch).toBe('batch-7.a_b');
    // What a store reads back through the schema still names the batch.
    expect(startOf([oaoEventSchema.parse(JSON.parse(JSON.stringify(start)))]).payload.batch).toBe('batch-7.a_b');
    expect(foldRun(store.events('in-batch'))?.batch).toBe('batch-7.a_b');

    const plain = orch.start({ agent: spender, task: 'go', tools, executionId: 'no-batch' });
    await plain.report;
    const plainStart = startOf(plain.events());
    // Absent, not undefined: logs of runs of no batch are what they were.
    expect(Object.keys(plainStart.payload)).not.toContain('batch');
    expect(foldRun(plain.events())).not.toHaveProperty('batch');
    expect(plainStart.payload.executionHash).toBe(start.payload.executionHash);
    // The tenant and the batch together leave it alone as well.
    const both = orch.start({ agent: spender, task: 'go', tools, batch: 'b2', tenant: 'acme' });
    await both.report;
    expect(startOf(both.events()).payload.executionHash).toBe(start.payload.executionHash);
  });

  it('replays a run of a batch without diverging', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const report = await orch.run({ agent: spender, task: 'go', tools, batch: 'b1', executionId: 'replayed' });
    await expect(verifyReplay(store.events('replayed'), { agent: spender })).resolves.toMatchObject({ executionId: report.executionId, status: 'SUCCESS' });
  });

  it('refuses a batch that is not a batch id with a typed error naming the field', () => {
    const orch = new Orchestrator();
    for (const batch of ['', 'a b', 42, 'x'.repeat(129), 'a/b']) {
      let caught: unknown;
      try {
        orch.start({ agent: spender, task: 'go', tools, batch: batch as string });
      } catch (error) {
        caught = error;
      }
      expect(OaoError.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'batch' } });
    }
  });
});
