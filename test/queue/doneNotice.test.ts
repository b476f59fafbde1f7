// The notice a worker publishes once a run's report is stored carries the report (when it is
// small), so a caller waiting for it reads the store once (before the run ends), not again after.
import { describe, expect, it } from 'vitest';
import type { ExecutionReport, RunStore } from '../../src/index.js';
import { doneNotice, MAX_NOTICE_REPORT_CHARS, readDoneNotice } from '../../src/queue/doneNotice.js';
import { createQueue, createWorker } from '../../src/queue/index.js';
import { createMemoryStore } from '../../src/store/createMemoryStore.js';
import { Orchestrator } from '../../src/Orchestrator.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();

async function reportOf(output: unknown): Promise<ExecutionReport> {
  return new Orchestrator({ store: false }).run({ agent: () => output, task: 'x', executionId: 'noticed' });
}

describe('a done notice', () => {
  it('carries a small report, and only the id of a large one', async () => {
    const small = await reportOf('short');
    const notice = doneNotice('noticed', small);
    expect(readDoneNotice(notice)).toEqual({ executionId: 'noticed', report: JSON.parse(JSON.stringify(small)) });
    const large = await reportOf('x'.repeat(MAX_NOTICE_REPORT_CHARS));
    expect(doneNotice('noticed', large)).toBe('noticed');
    expect(doneNotice('noticed')).toBe('noticed');
  });

  it('is read as a bare id when it is not a valid report of the run it names', async () => {
    const report = await reportOf('short');
    expect(readDoneNotice('plain-id')).toEqual({ executionId: 'plain-id' });
    expect(readDoneNotice('{not json')).toEqual({ executionId: '{not json' });
    expect(readDoneNotice(JSON.stringify({ executionId: 'other', report }))).toEqual({ executionId: 'other' });
    expect(readDoneNotice(JSON.stringify({ executionId: 'noticed', report: { ...report, status: 'MAYBE' } }))).toEqual({ executionId: 'noticed' });
  });

  it('spares a waiting caller reading the report back: the notice hands it over', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    let reads = 0;
    /** Reads that found a report: without the notice's report, every wait makes one once the run ends. */
    let found = 0;
    // The queue's view of the store counts report reads; the worker records in the store itself.
    const counted = new Proxy(store, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (key === 'report') {
          return (id: string) => {
            reads += 1;
            const report = store.report(id);
            if (report !== undefined) found += 1;
            return report;
          };
        }
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as RunStore;
    const queue = await createQueue({ connection: redis.url, queueName: 'notice', store: counted });
    try {
      const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => queue.enqueue({ agent: 'echo', task: `t${i}` })));
      // Every wait reads the store once and finds nothing: no worker runs yet.
      const waits = ids.map((id) => queue.waitForReport(id));
      await expect.poll(() => reads, { timeout: 5_000 }).toBeGreaterThanOrEqual(ids.length);
      const worker = await createWorker({ connection: redis.url, queueName: 'notice', store, agents: { echo: (task: string) => `done ${task}` } });
      try {
        const reports = await Promise.all(waits);
        expect(reports.map((report) => report.finalOutput)).toEqual(ids.map((_, i) => `done t${i}`));
        expect(reports).toEqual(ids.map((id) => store.report(id)));
        expect(found).toBe(0);
      } finally {
        await worker.close();
      }
    } finally {
      await queue.close();
    }
  });
});
