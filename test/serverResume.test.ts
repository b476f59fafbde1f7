// The server takes up the runs a stopped process left live in its store: resumed, or ended.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  canonicalJson,
  createMemoryStore,
  Orchestrator,
  type AgentLike,
  type ExecutionReport,
  type OaoEvent,
  type RunStore,
  type SynchronousRunStore,
} from '../src/index.js';
import { createServer, runStateSchema, startServer, type ServerOptions, type StartedServer } from '../src/server/index.js';
import { InterruptedRunSweep } from '../src/server/InterruptedRunSweep.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { countedCalls, countTool, resumeAgent, stepTokens } from './fixtures/resumeAgent.js';
import { flush } from './helpers.js';
import { openEventStream, readEventStream } from './sseMessages.js';

const apps: FastifyInstance[] = [];
const servers: StartedServer[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'oao-server-resume-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function build(options: ServerOptions): Promise<FastifyInstance> {
  const app = await createServer({ apiKeys: [], ...options });
  apps.push(app);
  return app;
}

const TOTAL_TOKENS = [1, 2, 3].reduce((sum, step) => sum + stepTokens(step).input + stepTokens(step).output, 0);

/**
 * Leaves in `store` the log of a run of the counting agent whose process died in step 3, after its
 * tool call returned and its usage was charged: the log up to that usage, appended under the dead
 * process's lease, which is then given up (so the run lists as `interrupted` at once).
 */
async function interruptedRun(store: SynchronousRunStore, executionId: string, agentName = 'counter', countFile = '/dev/null'): Promise<readonly OaoEvent[]> {
  const recorder = createMemoryStore();
  await new Orchestrator({ store: recorder }).run({ executionId, agentName, agent: resumeAgent(), task: { n: 1 }, tools: { count: countTool(countFile) } });
  const full = recorder.events(executionId);
  const usage3 = full.findIndex((event) => event.type === 'TOKEN_USAGE' && event.payload.step === 3);
  const prefix = full.slice(0, usage3 + 1);
  const lease = store.acquireLease(executionId, 'a process that died', 60_000);
  if (lease === undefined) throw new Error(`${executionId} is leased already`);
  store.append(executionId, prefix, { lease });
  store.releaseLease(lease);
  return prefix;
}

/** Polls until `check` holds; bounded by the test's own timeout. */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 10));
}

const stateOf = async (app: FastifyInstance, id: string) => runStateSchema.parse((await app.inject({ method: 'GET', url: `/runs/${id}` })).json());

describe('a server with resumeInterrupted', () => {
  it('resumes an interrupted run with the agent of its name: it finishes as if never cut, no tool body runs again', { timeout: 20_000 }, async () => {
    const dir = await tempDir();
    const countFile = join(dir, 'count.txt');
    const store = createMemoryStore();
    const prefix = await interruptedRun(store, 'cut-1', 'counter', countFile);
    const app = await build({ agents: { counter: resumeAgent() }, tools: { count: countTool(countFile) }, store, resumeInterrupted: true });

    await until(async () => (await stateOf(app, 'cut-1')).status === 'SUCCESS');
    const report = (await stateOf(app, 'cut-1')).report as ExecutionReport;
    expect(report).toMatchObject({ status: 'SUCCESS', totalSteps: 3, toolUsage: { total: 3 } });
    expect(report.tokenUsage.total).toBe(TOTAL_TOKENS);
    // The three calls ran before the cut (their results are in the log): none ran again.
    expect(countedCalls(countFile)).toEqual(['t1', 't2', 't3']);
    const events = store.events('cut-1');
    expect(events.slice(0, prefix.length)).toEqual(prefix);
    expect(events.filter((event) => event.type === 'EXECUTION_RESUMED')).toHaveLength(1);
    expect(canonicalJson(await new Orchestrator({ store }).replay('cut-1'))).toBe(canonicalJson(report));
  });

  it('serves a resumed run as live: its state, its stream from Last-Event-ID through the resume, and cancel', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    const prefix = await interruptedRun(store, 'cut-2');
    // The agent hangs again in step 3: the run stays live here until it is cancelled.
    const server = await startServer({
      agents: { counter: resumeAgent({ hangAfterUsageInStep: 3 }) },
      tools: { count: countTool('/dev/null') },
      store,
      resumeInterrupted: true,
      apiKeys: [],
      port: 0,
    });
    servers.push(server);
    await until(() => store.events('cut-2').some((event) => event.type === 'EXECUTION_RESUMED'));

    const state = runStateSchema.parse(await (await fetch(`${server.url}/runs/cut-2`)).json());
    expect(state).toMatchObject({ status: 'running', agent: 'counter', state: 'EXECUTE', counters: { steps: 3, toolCalls: 3, tokens: TOTAL_TOKENS } });
    expect(state.events).toBeGreaterThan(prefix.length);
    expect(state.effectivePolicy).toEqual(prefix[0]?.type === 'EXECUTION_START' ? prefix[0].payload.policy : null);

    // A client that saw the dead process's events up to seq 5 resumes after it, across the take-over.
    const stream = await openEventStream(`${server.url}/runs/cut-2/events?lastEventId=5`);
    cleanups.push(() => stream.close());
    const first = await stream.next();
    expect(first?.data).toEqual(prefix[6]);

    const cancel = await fetch(`${server.url}/runs/cut-2/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(202);
    expect(await cancel.json()).toMatchObject({ cancelled: true, status: 'FAILED', termination: { reason: 'cancelled' } });
    const rest = [];
    for (let message = await stream.next(); message !== null; message = await stream.next()) rest.push(message);
    const seen = [first, ...rest].map((message) => Number(message?.id));
    const stored = store.events('cut-2');
    expect(seen).toEqual(stored.slice(6).map((event) => event.seq));
    expect(rest.map((message) => message.event)).toContain('EXECUTION_RESUMED');
    expect(rest.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    // After it: the whole log, from the store, to the same end.
    const all = await readEventStream(`${server.url}/runs/cut-2/events`);
    expect(all.messages.map((message) => canonicalJson(message.data))).toEqual(stored.map((event) => canonicalJson(event)));
  });

  it('streams an interrupted run it is about to take up until it ends, instead of answering 204', { timeout: 20_000 }, async () => {
    // The store's clock decides when the dead process's lease expires; the sweep waits for the test.
    let storeNow = Date.now();
    const store = createMemoryStore({ now: () => storeNow });
    const recorder = createMemoryStore();
    await new Orchestrator({ store: recorder }).run({ executionId: 'cut-3', agentName: 'counter', agent: resumeAgent(), task: { n: 1 }, tools: { count: countTool('/dev/null') } });
    const full = recorder.events('cut-3');
    const prefix = full.slice(0, full.findIndex((event) => event.type === 'TOKEN_USAGE' && event.payload.step === 3) + 1);
    const lease = store.acquireLease('cut-3', 'a process that died', 1_000);
    store.append('cut-3', prefix, { lease });
    let openSweeps!: () => void;
    const sweepsOpen = new Promise<void>((resolve) => (openSweeps = resolve));
    const list = store.list.bind(store);
    vi.spyOn(store, 'list').mockImplementation(((filter, page) =>
      filter?.status === 'interrupted' ? sweepsOpen.then(() => list(filter, page)) : list(filter, page)) as typeof store.list);
    const server = await startServer({
      agents: { counter: resumeAgent() },
      tools: { count: countTool('/dev/null') },
      store,
      resumeInterrupted: true,
      runLeaseTtlMs: 100,
      apiKeys: [],
      port: 0,
    });
    servers.push(server);

    storeNow += 2_000;
    expect(store.get('cut-3')?.status).toBe('interrupted');
    // A client that saw every stored event reconnects: more will come, from the take-over.
    const lastSeq = (prefix.at(-1) as OaoEvent).seq;
    const stream = await openEventStream(`${server.url}/runs/cut-3/events?lastEventId=${lastSeq}`);
    cleanups.push(() => stream.close());
    openSweeps();
    const messages = [];
    for (let message = await stream.next(); message !== null; message = await stream.next()) messages.push(message);
    expect(messages[0]?.data.seq).toBe(lastSeq + 1);
    expect(messages[0]?.event).toBe('EXECUTION_RESUMED');
    expect(messages.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    expect(messages.map((message) => message.data)).toEqual(store.events('cut-3').slice(lastSeq + 1));
  });

  it('ends a run of an agent it does not have FAILED with OAO_ERR_INTERRUPTED, through the log', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    const prefix = await interruptedRun(store, 'orphan-1', 'retired');
    const app = await build({ agents: { echo: (task: string) => task, other: (task: string) => task }, store, resumeInterrupted: true });

    await until(async () => (await stateOf(app, 'orphan-1')).status === 'FAILED');
    const state = await stateOf(app, 'orphan-1');
    const report = state.report as ExecutionReport;
    expect(report.termination).toMatchObject({ reason: 'error' });
    expect(report.error).toMatchObject({ code: 'OAO_ERR_INTERRUPTED', details: { executionId: 'orphan-1', agentName: 'retired' } });
    expect(report.error?.message).toContain('no agent named "retired" is registered here (it has: echo, other)');
    // What the run had done stays counted; nothing ran.
    expect(report).toMatchObject({ totalSteps: 3, toolUsage: { total: 3 }, tokenUsage: { total: TOTAL_TOKENS } });
    const events = store.events('orphan-1');
    expect(events.slice(prefix.length).map((event) => event.type)).toEqual([
      'EXECUTION_RESUMED',
      'EXECUTION_FAILED',
      'STATE_EXIT',
      'STATE_ENTER',
      'EXECUTION_COMPLETE',
    ]);
    expect(canonicalJson(await new Orchestrator({ store }).replay('orphan-1'))).toBe(canonicalJson(report));
    expect(store.get('orphan-1')?.status).toBe('FAILED');
    // Its lease was given back: anyone may take it (and the log says it is over).
    expect(store.acquireLease('orphan-1', 'someone', 1_000)).toBeDefined();
  });

  it('resumes no more runs than it has free slots; the rest wait for a later sweep', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    await interruptedRun(store, 'queue-1');
    await interruptedRun(store, 'queue-2');
    const app = await build({
      agents: { counter: resumeAgent({ hangAfterUsageInStep: 3 }) },
      tools: { count: countTool('/dev/null') },
      store,
      resumeInterrupted: true,
      runLeaseTtlMs: 100,
      limits: { maxConcurrentRuns: 1 },
    });
    const resumed = () => ['queue-1', 'queue-2'].filter((id) => store.events(id).some((event) => event.type === 'EXECUTION_RESUMED'));
    await until(() => resumed().length === 1);
    const [first] = resumed();
    const second = first === 'queue-1' ? 'queue-2' : 'queue-1';
    expect(store.get(second)?.status).toBe('interrupted');
    // A new request finds no slot either.
    expect((await app.inject({ method: 'POST', url: '/runs', payload: { agent: 'counter', task: { n: 1 } } })).statusCode).toBe(429);
    // Once the first ends, the next sweep takes the second.
    expect((await app.inject({ method: 'POST', url: `/runs/${first}/cancel` })).statusCode).toBe(202);
    await until(() => resumed().length === 2);
    expect((await stateOf(app, second)).status).toBe('running');
  });

  it('is off by default on a memory store, and off when asked on a durable one', { timeout: 20_000 }, async () => {
    const memory = createMemoryStore();
    await interruptedRun(memory, 'kept-1');
    const listed = new Map<RunStore, number>();
    const sweepsOf = (store: RunStore) => listed.get(store) ?? 0;
    const countSweeps = (store: RunStore) => {
      const list = store.list.bind(store);
      vi.spyOn(store, 'list').mockImplementation((filter, page) => {
        if (filter?.status === 'interrupted') listed.set(store, sweepsOf(store) + 1);
        return list(filter, page);
      });
    };
    countSweeps(memory);
    const onMemory = await build({ agents: { counter: resumeAgent() }, store: memory, runLeaseTtlMs: 50 });
    const dir = await tempDir();
    const sqlite = createSqliteStore({ path: join(dir, 'runs.db') });
    cleanups.push(() => sqlite.close());
    await interruptedRun(sqlite, 'kept-2');
    countSweeps(sqlite);
    const onSqlite = await build({ agents: { counter: resumeAgent() }, store: sqlite, runLeaseTtlMs: 50, resumeInterrupted: false });
    // A server that sweeps asks its store for the interrupted runs as soon as it is ready: these never do.
    for (const store of [memory, sqlite]) expect(sweepsOf(store), 'list calls for interrupted runs').toBe(0);
    expect((await stateOf(onMemory, 'kept-1')).status).toBe('interrupted');
    expect((await stateOf(onSqlite, 'kept-2')).status).toBe('interrupted');
    expect(memory.events('kept-1').some((event) => event.type === 'EXECUTION_RESUMED')).toBe(false);
    expect(sqlite.events('kept-2').some((event) => event.type === 'EXECUTION_RESUMED')).toBe(false);
    // The same memory store, asked to: swept as soon as the server is ready.
    await build({ agents: { counter: resumeAgent() }, store: memory, resumeInterrupted: true });
    expect(sweepsOf(memory)).toBe(1);
  });

  it('closing while a run is being taken up waits for it, then cancels it with the other live runs', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    await interruptedRun(store, 'late-1');
    let leaseAsked!: () => void;
    const asked = new Promise<void>((resolve) => (leaseAsked = resolve));
    let grant!: () => void;
    const granted = new Promise<void>((resolve) => (grant = resolve));
    const acquire = store.acquireLease.bind(store);
    vi.spyOn(store, 'acquireLease').mockImplementation(((executionId, owner, ttlMs) => {
      if (executionId !== 'late-1') return acquire(executionId, owner, ttlMs);
      leaseAsked();
      return granted.then(() => acquire(executionId, owner, ttlMs));
    }) as typeof store.acquireLease);
    const app = await createServer({ agents: { counter: resumeAgent({ hangAfterUsageInStep: 3 }) }, tools: { count: countTool('/dev/null') }, store, resumeInterrupted: true, apiKeys: [] });
    await asked;
    let closedYet = false;
    const closed = app.close().then(() => (closedYet = true));
    for (let turn = 0; turn < 10; turn++) await flush();
    // Closing waits for the take-over in progress...
    expect(closedYet).toBe(false);
    grant();
    await closed;
    // ...and then cancels the run it made live, like every live run.
    expect(store.report('late-1')?.termination).toEqual({ reason: 'cancelled', message: 'the server is shutting down' });
    expect(store.events('late-1').filter((event) => event.type === 'EXECUTION_RESUMED')).toHaveLength(1);
  });

  it('checks the option', async () => {
    const refused = await createServer({ agents: { echo: (task: string) => task }, resumeInterrupted: 'yes' as unknown as boolean }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'resumeInterrupted' } });
  });
});

describe('two servers sweeping one SQLite file', () => {
  it('take up every interrupted run exactly once: one EXECUTION_RESUMED per run, whoever wins its lease', { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const path = join(dir, 'runs.db');
    const setup = createSqliteStore({ path });
    const resumable = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
    const orphans = ['o1', 'o2'];
    for (const id of resumable) await interruptedRun(setup, id);
    for (const id of orphans) await interruptedRun(setup, id, 'retired');
    setup.close();

    // Each server lists the interrupted runs only once both have asked: both see all eight, and
    // both go for every one of them.
    let waiting = 2;
    let bothListed!: () => void;
    const barrier = new Promise<void>((resolve) => (bothListed = resolve));
    const tried = [new Set<string>(), new Set<string>()];
    const storeOf = (index: number): RunStore => {
      const store = createSqliteStore({ path });
      cleanups.push(() => store.close());
      let listed = false;
      return new Proxy(store, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (property === 'list') {
            return async (...args: Parameters<RunStore['list']>) => {
              if (!listed && args[0]?.status === 'interrupted') {
                listed = true;
                if (--waiting === 0) bothListed();
                await barrier;
              }
              return target.list(...args);
            };
          }
          if (property === 'acquireLease') {
            return (executionId: string, owner: string, ttlMs: number) => {
              tried[index]?.add(executionId);
              return target.acquireLease(executionId, owner, ttlMs);
            };
          }
          return typeof value === 'function' ? (value as (...rest: unknown[]) => unknown).bind(target) : value;
        },
      });
    };
    const agents: Record<string, AgentLike> = { counter: resumeAgent({ hangAfterUsageInStep: 3 }) };
    const options = { agents, tools: { count: countTool('/dev/null') }, resumeInterrupted: true, runLeaseTtlMs: 2_000 };
    const [one, two] = await Promise.all([build({ ...options, store: storeOf(0) }), build({ ...options, store: storeOf(1) })]);

    const reader = createSqliteStore({ path, readonly: true });
    cleanups.push(() => reader.close());
    const all = [...resumable, ...orphans];
    await until(
      () =>
        tried.every((ids) => all.every((id) => ids.has(id))) &&
        resumable.every((id) => reader.events(id).some((event) => event.type === 'EXECUTION_RESUMED')) &&
        orphans.every((id) => reader.get(id)?.status === 'FAILED'),
    );
    const owners = new Set<string | null>();
    for (const id of all) {
      const resumes = reader.events(id).filter((event) => event.type === 'EXECUTION_RESUMED');
      expect(resumes, id).toHaveLength(1);
      if (resumes[0]?.type === 'EXECUTION_RESUMED') owners.add(resumes[0].payload.owner);
    }
    for (const id of orphans) expect(reader.events(id).filter((event) => event.type === 'EXECUTION_COMPLETE'), id).toHaveLength(1);
    // Each resumed run is live in exactly one of the two servers.
    for (const id of resumable) {
      const states = await Promise.all([stateOf(one, id), stateOf(two, id)]);
      expect(states.map((state) => state.status), id).toEqual(['running', 'running']);
      const cancels = await Promise.all([one, two].map(async (app) => (await (app).inject({ method: 'POST', url: `/runs/${id}/cancel` })).json()));
      expect(cancels.filter((answer) => (answer as { cancelled: boolean }).cancelled), id).toHaveLength(1);
    }
    expect([...owners].every((owner) => typeof owner === 'string' && owner.startsWith('oao-server:'))).toBe(true);
  });
});

describe('InterruptedRunSweep', () => {
  it('sweeps at start, then once per interval after each sweep, and never after stop()', async () => {
    vi.useFakeTimers();
    const store = createMemoryStore();
    const list = vi.spyOn(store, 'list');
    const sweep = new InterruptedRunSweep({
      store,
      agents: new Map(),
      owner: 'me',
      leaseTtlMs: 1_000,
      intervalMs: 1_000,
      now: Date.now,
      isHere: () => false,
      resume: () => Promise.resolve(true),
      logError: () => undefined,
      logInfo: () => undefined,
    });
    sweep.start();
    sweep.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(list).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(list).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(list).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(list).toHaveBeenCalledTimes(5);
    await sweep.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(list).toHaveBeenCalledTimes(5);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stop() does not wait for a store that never answers the list', async () => {
    const store = createMemoryStore();
    vi.spyOn(store, 'list').mockImplementation((() => new Promise(() => {})) as unknown as typeof store.list);
    const resume = vi.fn(() => Promise.resolve(true));
    const sweep = new InterruptedRunSweep({
      store,
      agents: new Map(),
      owner: 'me',
      leaseTtlMs: 100,
      intervalMs: 100,
      now: Date.now,
      isHere: () => false,
      resume,
      logError: () => undefined,
      logInfo: () => undefined,
    });
    sweep.start();
    await sweep.stop();
    expect(sweep.willTakeUp('any')).toBe(false);
    expect(resume).not.toHaveBeenCalled();
  });

  it('says once that the store cannot be listed, and again only after it could', async () => {
    vi.useFakeTimers();
    const store = createMemoryStore();
    let down = true;
    const list = store.list.bind(store);
    vi.spyOn(store, 'list').mockImplementation((...args) => {
      if (down) throw new Error('the store is down');
      return list(...args);
    });
    const errors: string[] = [];
    const sweep = new InterruptedRunSweep({
      store,
      agents: new Map(),
      owner: 'me',
      leaseTtlMs: 100,
      intervalMs: 100,
      now: Date.now,
      isHere: () => false,
      resume: () => Promise.resolve(true),
      logError: (_error, message) => errors.push(message),
      logInfo: () => undefined,
    });
    sweep.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(errors).toHaveLength(1);
    down = false;
    await vi.advanceTimersByTimeAsync(200);
    down = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(errors).toHaveLength(2);
    await sweep.stop();
  });

  it('leaves runs it holds alone, and a run it cannot resume for good is logged once, not retried', async () => {
    const store = createMemoryStore();
    await interruptedRun(store, 'mine');
    await interruptedRun(store, 'broken');
    const errors: string[] = [];
    const attempts: string[] = [];
    const sweep = new InterruptedRunSweep({
      store,
      agents: new Map([['counter', resumeAgent()]]),
      owner: 'me',
      leaseTtlMs: 100,
      intervalMs: 100,
      now: Date.now,
      isHere: (id) => id === 'mine',
      resume: (run) => {
        attempts.push(run.executionId);
        return Promise.reject(new Error('this log cannot be continued'));
      },
      logError: (_error, message) => errors.push(message),
      logInfo: () => undefined,
    });
    expect(await sweep.sweep()).toEqual({ resumed: [], ended: [], deferred: [] });
    expect(await sweep.sweep()).toEqual({ resumed: [], ended: [], deferred: [] });
    expect(attempts).toEqual(['broken']);
    expect(errors).toEqual(['run broken was interrupted and could not be resumed']);
  });
});
