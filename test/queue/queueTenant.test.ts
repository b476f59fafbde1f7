// A run's tenant through the queue: job data carries it to the worker, and the server's queued
// runs record it in the EXECUTION_START the worker continues from.
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { OaoError, type OaoEvent } from '../../src/index.js';
import { createMemoryStore } from '../../src/store/createMemoryStore.js';
import { createQueue, createWorker } from '../../src/queue/index.js';
import { createServer } from '../../src/server/index.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();

const opened: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
});

const agents = { echo: (task: string) => `worker: ${task}` };
let counter = 0;

async function setup() {
  const queueName = `tenant${++counter}`;
  const store = createMemoryStore();
  const queue = await createQueue({ connection: redis.url, queueName, store });
  opened.push(queue);
  const worker = await createWorker({ connection: redis.url, queueName, store, agents, lockDuration: 2_000, stalledInterval: 2_000 });
  opened.push(worker);
  return { store, queue };
}

function tenantOf(events: readonly OaoEvent[]): string | undefined {
  const first = events[0];
  if (first?.type !== 'EXECUTION_START') throw new Error('expected EXECUTION_START first');
  return first.payload.tenant;
}

describe('the tenant of a queued run', () => {
  it('travels in the job data to the worker, which records it in EXECUTION_START', { timeout: 20_000 }, async () => {
    const { store, queue } = await setup();
    const id = await queue.enqueue({ agent: 'echo', task: 'hi', tenant: 'acme' });
    await expect(queue.waitForReport(id)).resolves.toMatchObject({ status: 'SUCCESS', finalOutput: 'worker: hi' });
    expect(tenantOf(store.events(id))).toBe('acme');
    const plain = await queue.enqueue({ agent: 'echo', task: 'hi' });
    await queue.waitForReport(plain);
    expect(Object.keys(store.events(plain)[0]?.payload ?? {})).not.toContain('tenant');
  });

  it('refuses a tenant that is not a tenant id before anything is enqueued', { timeout: 20_000 }, async () => {
    const { queue } = await setup();
    let caught: unknown;
    try {
      await queue.enqueue({ agent: 'echo', task: 'hi', tenant: 'not a tenant' });
    } catch (error) {
      caught = error;
    }
    expect(OaoError.isInstance(caught)).toBe(true);
    expect(caught).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'tenant' } });
  });

  it("is the API key's on a server with a queue: in the log the worker continues, and in GET /runs/:id", { timeout: 20_000 }, async () => {
    const { store, queue } = await setup();
    const app: FastifyInstance = await createServer({ agents, store, queue, dashboard: false, apiKeys: { 'acme-key': { tenant: 'acme' } } });
    opened.push(app);
    const headers = { authorization: 'Bearer acme-key' };
    const answer = await app.inject({ method: 'POST', url: '/run', headers, payload: { agent: 'echo', task: 'hi', executionId: 'queued' } });
    expect(answer.json()).toMatchObject({ status: 'SUCCESS', finalOutput: 'worker: hi' });
    expect(tenantOf(store.events('queued'))).toBe('acme');
    expect((await app.inject({ method: 'GET', url: '/runs/queued', headers })).json()).toMatchObject({ status: 'SUCCESS', tenant: 'acme' });
  });
});
