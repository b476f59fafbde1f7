// A job whose execution id the queue generated has no log before its first start: the worker
// starts it without looking in the store. A job with an id of the caller's is looked up first (its
// run may exist: a second enqueue of a finished run is acknowledged with its stored report).
import { describe, expect, it } from 'vitest';
import type { RunStore } from '../../src/index.js';
import { createQueue, createWorker } from '../../src/queue/index.js';
import { createMemoryStore } from '../../src/store/createMemoryStore.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();

describe('a fresh job', () => {
  it('starts without a store lookup; one with a caller-given id is looked up first', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    const looked: string[] = [];
    const counting = new Proxy(store, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (key === 'get') {
          return (id: string) => {
            looked.push(id);
            return store.get(id);
          };
        }
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as RunStore;
    const queue = await createQueue({ connection: redis.url, queueName: 'fresh', store });
    const worker = await createWorker({ connection: redis.url, queueName: 'fresh', store: counting, agents: { echo: (task: string) => `done ${task}` } });
    try {
      const generated = await Promise.all(Array.from({ length: 5 }, (_, i) => queue.enqueue({ agent: 'echo', task: `g${i}` })));
      for (const id of generated) await expect(queue.waitForReport(id)).resolves.toMatchObject({ status: 'SUCCESS' });
      expect((await queue.bullQueue.getJobs(['completed', 'failed'])).length).toBe(0);
      const given = await queue.enqueue({ agent: 'echo', task: 'own', executionId: 'own-id' });
      await expect(queue.waitForReport(given)).resolves.toMatchObject({ status: 'SUCCESS', finalOutput: 'done own' });
      expect(looked.filter((id) => generated.includes(id))).toEqual([]);
      expect(looked).toContain('own-id');
      // The same id again, after it finished: looked up, and acknowledged with the stored report.
      await queue.enqueue({ agent: 'echo', task: 'again', executionId: 'own-id' });
      await expect.poll(() => looked.filter((id) => id === 'own-id').length, { timeout: 10_000 }).toBe(2);
      expect(store.events('own-id').filter((event) => event.type === 'EXECUTION_START')).toHaveLength(1);
    } finally {
      await worker.close();
      await queue.close();
    }
  });
});
