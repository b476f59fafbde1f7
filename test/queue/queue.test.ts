// Runs through the queue: createQueue() and createWorker() on a private redis-server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OaoError, type AgentContext, type OaoEvent, type StepResult } from '../../src/index.js';
import { createMemoryStore } from '../../src/store/createMemoryStore.js';
import { createQueue, createWorker, type RunWorker } from '../../src/queue/index.js';
import { countedCalls, countTool, resumeAgent } from '../fixtures/resumeAgent.js';
import { deferred } from '../helpers.js';
import { useTestRedis } from './redisServer.js';

const redis = useTestRedis();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oao-queue-'));
}, 20_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Everything a test opened, closed after it (workers first: they wait for their runs). */
const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.close();
});

let queueCounter = 0;
async function setup(workerOptions: Partial<Parameters<typeof createWorker>[0]> = {}, workers = 1) {
  const queueName = `q${++queueCounter}`;
  // Every test here passes a memory store (or none): its reads answer synchronously.
  const store = (workerOptions.store ?? createMemoryStore()) as ReturnType<typeof createMemoryStore>;
  const queue = await createQueue({ connection: redis.url, queueName, store });
  opened.push(queue);
  const started: RunWorker[] = [];
  for (let i = 0; i < workers; i++) {
    const worker = await createWorker({
      connection: redis.url,
      queueName,
      store,
      agents: { echo: (task: string) => `echo: ${task}` },
      lockDuration: 2_000,
      stalledInterval: 2_000,
      ...workerOptions,
    });
    opened.push(worker);
    started.push(worker);
  }
  return { queue, store, workers: started };
}

const types = (events: readonly OaoEvent[]) => events.map((event) => event.type);

describe('enqueue and run', () => {
  it('returns the execution id at once and a worker records the run in the store', { timeout: 20_000 }, async () => {
    const { queue, store } = await setup();
    const id = await queue.enqueue({ agent: 'echo', task: 'hi' });
    expect(typeof id).toBe('string');
    const report = await queue.waitForReport(id);
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('echo: hi');
    expect(report.agentName).toBe('echo');
    const events = store.events(id);
    expect(events[0]?.type).toBe('EXECUTION_START');
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
  });

  it('narrows the workers\' policy with the job\'s policy', { timeout: 20_000 }, async () => {
    const looping = { invoke: (input: number) => ({ output: input }), review: (result: { step: number }) => ({ done: false as const, input: result.step }) };
    const { queue } = await setup({ agents: { looping }, policy: { maxSteps: 5 } });
    const id = await queue.enqueue({ agent: 'looping', task: 0, policy: { maxSteps: 2 } });
    const report = await queue.waitForReport(id);
    expect(report.status).toBe('FAILED');
    expect(report.termination.rule).toBe('max_steps');
    expect(report.totalSteps).toBe(2);
  });

  it('runs an execution id once: a second enqueue while it runs adds nothing, one after it ends is acknowledged with the stored report', { timeout: 20_000 }, async () => {
    const gate = deferred();
    const started = deferred();
    let invocations = 0;
    const slow = async (task: string) => {
      invocations += 1;
      started.resolve();
      await gate.promise;
      return task;
    };
    const { queue, store } = await setup({ agents: { slow }, concurrency: 4 });
    await queue.enqueue({ agent: 'slow', task: 'a', executionId: 'once' });
    await started.promise;
    await queue.enqueue({ agent: 'slow', task: 'a', executionId: 'once' });
    gate.resolve();
    const report = await queue.waitForReport('once');
    expect(report.status).toBe('SUCCESS');
    const logLength = store.events('once').length;
    // Enqueued again after it finished: the worker takes the job and answers with the stored report.
    await queue.enqueue({ agent: 'slow', task: 'a', executionId: 'once' });
    // Completed jobs are removed: the job is gone once the worker has acknowledged it.
    while ((await queue.bullQueue.getJob('once')) !== undefined) await new Promise((resolve) => setImmediate(resolve));
    expect(invocations).toBe(1);
    expect(store.events('once').length).toBe(logLength);
    expect(types(store.events('once')).filter((type) => type === 'EXECUTION_START')).toHaveLength(1);
  });

  it('ends a run whose agent the worker lacks FAILED with OAO_ERR_UNKNOWN_AGENT', { timeout: 20_000 }, async () => {
    const { queue } = await setup();
    const id = await queue.enqueue({ agent: 'nobody', task: 'x' });
    const report = await queue.waitForReport(id);
    expect(report.status).toBe('FAILED');
    expect(report.error?.code).toBe('OAO_ERR_UNKNOWN_AGENT');
    expect(report.agentName).toBe('nobody');
  });

  it('refuses malformed requests and options with typed errors', { timeout: 20_000 }, async () => {
    const { queue } = await setup();
    await expect(queue.enqueue({ agent: '', task: 'x' })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'agent' } });
    await expect(queue.enqueue({ agent: 'echo', task: undefined })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'task' } });
    await expect(queue.enqueue({ agent: 'echo', task: { at: 1n } })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'task' } });
    await expect(queue.enqueue({ agent: 'echo', task: 'x', policy: { maxSteps: -1 } })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_POLICY' });
    await expect(createQueue({ connection: 'http://127.0.0.1:1' })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'connection' } });
    await expect(createQueue({ connection: redis.url, queueName: 'a:b' })).rejects.toMatchObject({ details: { field: 'queueName' } });
    await expect(createWorker({ connection: redis.url, agents: { echo: () => 1 } } as never)).rejects.toMatchObject({ details: { field: 'store' } });
    await expect(createWorker({ connection: redis.url, store: createMemoryStore(), agents: {} })).rejects.toMatchObject({ details: { field: 'agents' } });
    await expect(createWorker({ connection: redis.url, store: createMemoryStore(), agents: { a: () => 1 }, lockDuration: 0 })).rejects.toMatchObject({
      details: { field: 'lockDuration' },
    });
  });
});

describe('a redelivered job continues its run from the log', () => {
  it('resumes a run whose log exists instead of starting it afresh: recorded tool calls do not run again', { timeout: 20_000 }, async () => {
    // A run recorded by a worker that died inside step 3's tool body (its lease has expired).
    const store = createMemoryStore();
    const file = join(dir, 'count-redelivered.txt');
    const { Orchestrator } = await import('../../src/index.js');
    const first = new Orchestrator({ store, owner: 'dead-worker', leaseTtlMs: 1 });
    const hanging = first.start({ executionId: 'redelivered', agentName: 'counter', agent: resumeAgent(), task: { n: 1 }, tools: { count: countTool(file, { hangInToolOfStep: 3 }) } });
    while (!store.events('redelivered').some((event) => event.type === 'TOOL_CALL' && event.payload.step === 3)) await new Promise((resolve) => setImmediate(resolve));
    await hanging.unload().catch(() => {});
    expect(countedCalls(file)).toEqual(['t1', 't2', 't3']);

    const { queue } = await setup({ store, agents: { counter: resumeAgent() }, tools: { count: countTool(file) } });
    await queue.enqueue({ agent: 'counter', task: { n: 1 }, executionId: 'redelivered' });
    const report = await queue.waitForReport('redelivered');
    expect(report.status).toBe('SUCCESS');
    expect(report.totalSteps).toBe(3);
    const events = store.events('redelivered');
    expect(types(events).filter((type) => type === 'EXECUTION_START')).toHaveLength(1);
    expect(types(events)).toContain('EXECUTION_RESUMED');
    // Steps 1 and 2 were not run again; the call in flight (t3) ran again under its own id.
    expect(countedCalls(file)).toEqual(['t1', 't2', 't3', 't3']);
  });
});

describe('cancel through Redis', () => {
  it('reaches the worker that runs the run: it ends cancelled', { timeout: 20_000 }, async () => {
    const started = deferred();
    const waiting = async (_task: string, ctx: AgentContext) => {
      started.resolve();
      await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
    };
    const { queue } = await setup({ agents: { waiting } });
    const id = await queue.enqueue({ agent: 'waiting', task: 'x' });
    await started.promise;
    await queue.cancel(id, 'stop it');
    const report = await queue.waitForReport(id);
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('cancelled');
  });

  it('cancels a run still waiting in the queue when a worker takes it', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    const queueName = `q${++queueCounter}`;
    const queue = await createQueue({ connection: redis.url, queueName, store });
    opened.push(queue);
    let invoked = 0;
    const id = await queue.enqueue({ agent: 'counted', task: 'x' });
    await queue.cancel(id);
    const worker = await createWorker({ connection: redis.url, queueName, store, agents: { counted: () => (invoked += 1) } });
    opened.push(worker);
    const report = await queue.waitForReport(id);
    expect(report.termination.reason).toBe('cancelled');
    expect(invoked).toBe(0);
  });
});

describe('per-agent caps over every worker', () => {
  it('never runs more of an agent at once than its cap, across workers', { timeout: 30_000 }, async () => {
    let live = 0;
    let most = 0;
    const capped = async () => {
      live += 1;
      most = Math.max(most, live);
      await new Promise((resolve) => setTimeout(resolve, 20));
      live -= 1;
      return 'ok';
    };
    const { queue } = await setup({ agents: { capped }, concurrency: 4, agentConcurrency: { capped: 2 } }, 2);
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => queue.enqueue({ agent: 'capped', task: i })));
    const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
    expect(reports.every((report) => report.status === 'SUCCESS')).toBe(true);
    expect(most).toBe(2);
  });
});

describe('the queue-wide concurrency', () => {
  it('never runs more runs at once than maxConcurrency, over every worker', { timeout: 30_000 }, async () => {
    let live = 0;
    let most = 0;
    const busy = async () => {
      live += 1;
      most = Math.max(most, live);
      await new Promise((resolve) => setTimeout(resolve, 20));
      live -= 1;
      return 'ok';
    };
    const store = createMemoryStore();
    const queueName = `q${++queueCounter}`;
    const queue = await createQueue({ connection: redis.url, queueName, store, maxConcurrency: 3 });
    opened.push(queue);
    for (let i = 0; i < 2; i++) {
      const worker = await createWorker({ connection: redis.url, queueName, store, agents: { busy }, concurrency: 4 });
      opened.push(worker);
    }
    const ids = await Promise.all(Array.from({ length: 16 }, (_, i) => queue.enqueue({ agent: 'busy', task: i })));
    const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
    expect(reports.every((report) => report.status === 'SUCCESS')).toBe(true);
    expect(most).toBe(3);
  });
});

describe('Redis unavailable', () => {
  it('answers OAO_ERR_QUEUE_UNAVAILABLE while Redis is paused, and takes runs again when it is back', { timeout: 30_000 }, async () => {
    const { queue } = await setup();
    const paused = await createQueue({ connection: redis.url, queueName: queue.name, store: createMemoryStore(), enqueueTimeoutMs: 300 });
    opened.push(paused);
    await paused.enqueue({ agent: 'echo', task: 'warm' });
    await redis.client().call('CLIENT', 'PAUSE', '1000', 'WRITE');
    const refused = await paused.enqueue({ agent: 'echo', task: 'during', executionId: 'during-pause' }).catch((error: unknown) => error);
    expect(OaoError.isInstance(refused) && refused.code).toBe('OAO_ERR_QUEUE_UNAVAILABLE');
    expect((refused as OaoError).status).toBe(503);
    // The pause ends by itself; the next enqueue waits for it (within enqueueTimeoutMs) and is taken.
    const id = await queue.enqueue({ agent: 'echo', task: 'after' });
    expect((await queue.waitForReport(id)).finalOutput).toBe('echo: after');
  });

  it('loses nothing when Redis pauses for 5 s in the middle of a batch: every run ends once, with all its steps', { timeout: 90_000 }, async () => {
    const RUNS = 40;
    const STEPS = 3;
    let finished = 0;
    const halfway = deferred<void>();
    // Three steps of a few milliseconds each: runs are in flight, on both workers, when the pause comes.
    const slow = {
      invoke: async (task: string, ctx: AgentContext) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (ctx.step === STEPS && ++finished === RUNS / 4) halfway.resolve();
        return { output: `${task} step ${ctx.step}` };
      },
      review: (result: StepResult) => ({ done: result.step >= STEPS }),
    };
    const { queue, store } = await setup({ agents: { slow }, concurrency: 4, policy: { maxSteps: STEPS } }, 2);
    const ids = await Promise.all(Array.from({ length: RUNS }, (_, i) => queue.enqueue({ agent: 'slow', task: `run ${i}` })));
    await halfway.promise;
    // Every client of the server waits: the workers' lock renewals, job moves and the queue's events.
    await redis.client().call('CLIENT', 'PAUSE', '5000', 'ALL');
    const reports = await Promise.all(ids.map((id) => queue.waitForReport(id)));
    expect(reports.map((report) => report.status)).toEqual(ids.map(() => 'SUCCESS'));
    for (const id of ids) {
      const events = store.events(id);
      expect(events.filter((event) => event.type === 'EXECUTION_COMPLETE')).toHaveLength(1);
      expect(events.filter((event) => event.type === 'STEP_COMPLETE')).toHaveLength(STEPS);
      expect(events.map((event) => event.seq)).toEqual(events.map((_, seq) => seq));
    }
  });
});


describe('plugins on workers', () => {
  it("a worker's plugins govern the runs it takes from the queue: a refused tool call's body never runs", { timeout: 20_000 }, async () => {
    const { definePlugin } = await import('../../src/index.js');
    const looked: unknown[] = [];
    const noSecrets = definePlugin({ name: 'no-secrets', version: '1', rules: { toolCall: ({ toolCall }) => ((toolCall.args as { q: string }).q === 'secret' ? { message: 'no secrets' } : null) } });
    const searcher = { invoke: async (task: string, ctx: AgentContext) => ({ output: await ctx.callTool('lookup', { q: task }) }) };
    const { queue } = await setup({ agents: { searcher }, tools: { lookup: (args: unknown) => (looked.push(args), 'found') }, plugins: [noSecrets] });
    const open = await queue.waitForReport(await queue.enqueue({ agent: 'searcher', task: 'open' }));
    const secret = await queue.waitForReport(await queue.enqueue({ agent: 'searcher', task: 'secret' }));
    expect(open.status).toBe('SUCCESS');
    expect(secret.termination).toMatchObject({ reason: 'policy_violation', rule: 'plugin:no-secrets/toolCall' });
    expect(looked).toEqual([{ q: 'open' }]);
  });
});
