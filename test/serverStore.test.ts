import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { OaoError, Orchestrator, canonicalJson, createMemoryStore, type AgentContext, type MemoryRunStore, type OaoEvent, type RunStore } from '../src/index.js';
import { createMemoryRunStore, createServer, errorBodySchema, runStateSchema, startServer, type ServerOptions, type StartedServer } from '../src/server/index.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { createGates, deferred } from './helpers.js';
import { openEventStream, readEventStream } from './sseMessages.js';
import { fakeRun } from './store/fakeLog.js';

/**
 * The server on the core RunStore, in one process: what it lists, serves and streams is read from
 * the store, so runs recorded by anyone on the same store (another server, an orchestrator, the
 * CLI) are the server's runs too.
 */

const gates = createGates();
const agents = {
  echo: (task: string) => `echo: ${task}`,
  gated: async (task: string, ctx: AgentContext) => {
    ctx.usage({ input: 2, output: 1 });
    await new Promise<void>((resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
      void gates.gate(task).promise.then(resolve);
    });
    return task;
  },
};

const apps: FastifyInstance[] = [];
const servers: StartedServer[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  gates.openAll();
  gates.clear();
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function build(options: Partial<ServerOptions> = {}): Promise<FastifyInstance> {
  const app = await createServer({ agents, apiKeys: [], ...options });
  apps.push(app);
  return app;
}

function post(app: FastifyInstance, url: string, payload: unknown) {
  return app.inject({ method: 'POST', url, payload: payload as object });
}

function get(app: FastifyInstance, url: string) {
  return app.inject({ method: 'GET', url });
}

// The dashboard's modules are plain JavaScript served to browsers; loaded by path, untyped.
const dashboardModule = (name: string): string => `../dashboard/${name}`;

/** A run whose process stopped mid-run: part of a log, and a lease that was given up. */
function interruptedRun(store: MemoryRunStore, executionId: string, agentName = 'held'): readonly OaoEvent[] {
  const events = fakeRun(executionId, { status: 'running', steps: 2, agentName, startedAt: Date.now() });
  const lease = store.acquireLease(executionId, 'a process that died', 60_000);
  if (lease === undefined) throw new Error(`${executionId} is leased already`);
  store.append(executionId, events, { lease });
  store.releaseLease(lease);
  return events;
}

describe('the store is the record', () => {
  it('serves runs another orchestrator recorded in the same store: listed and read, their ids taken', async () => {
    const store = createMemoryStore();
    const report = await new Orchestrator({ store }).run({ agent: (task: string) => `elsewhere: ${task}`, agentName: 'cli-agent', task: 'x', executionId: 'from-cli' });
    const app = await build({ store });
    expect((await get(app, '/runs')).json()).toMatchObject({ total: 1, runs: [{ executionId: 'from-cli', agent: 'cli-agent', status: 'SUCCESS' }] });
    const state = runStateSchema.parse((await get(app, '/runs/from-cli')).json());
    expect(canonicalJson(state.report)).toBe(canonicalJson(report));
    expect(state).toMatchObject({ batchId: null, events: store.events('from-cli').length, state: 'TERMINATE' });
    // Its id is taken.
    const reused = await post(app, '/runs', { agent: 'echo', task: 'x', executionId: 'from-cli' });
    expect(reused.statusCode).toBe(400);
    expect(errorBodySchema.parse(reused.json()).error.details?.field).toBe('body.executionId');
  });

  it('follows in the store a run that another server runs, to its end', { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    const runner = await startServer({ agents, store, apiKeys: [], port: 0 });
    servers.push(runner);
    const watcher = await startServer({ agents, store, apiKeys: [], port: 0 });
    servers.push(watcher);
    const started = await fetch(`${runner.url}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'gated', task: 'watched', executionId: 'watched-1' }),
    });
    expect(started.status).toBe(202);
    const stream = await openEventStream(`${watcher.url}/runs/watched-1/events`);
    cleanups.push(() => stream.close());
    // What is stored already, then the rest as the other server appends it.
    const received = [];
    for (let message = await stream.next(); message !== null; message = await stream.next()) {
      received.push(message);
      if (message.event === 'TOKEN_USAGE') break;
    }
    const watched: unknown = await fetch(`${watcher.url}/runs/watched-1`).then((response) => response.json());
    expect(watched).toMatchObject({ status: 'running', state: 'EXECUTE', counters: { tokens: 3 } });
    const cancel: unknown = await fetch(`${watcher.url}/runs/watched-1/cancel`, { method: 'POST' }).then((response) => response.json());
    expect(cancel).toMatchObject({ cancelled: false, status: 'running', message: expect.stringContaining('another process') });
    gates.gate('watched').resolve();
    for (let message = await stream.next(); message !== null; message = await stream.next()) received.push(message);
    expect(received.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    expect(received.map((message) => canonicalJson(message.data))).toEqual(store.events('watched-1').map((event) => canonicalJson(event)));
    expect(await fetch(`${watcher.url}/runs/watched-1`).then((response) => response.json())).toMatchObject({ status: 'SUCCESS' });
  });

  it('an interrupted run is listed and served as such; its stream ends, then answers 204', async () => {
    const store = createMemoryStore();
    const events = interruptedRun(store, 'cut-1');
    const app = await build({ store });
    expect((await get(app, '/runs?status=interrupted')).json()).toMatchObject({ total: 1, runs: [{ executionId: 'cut-1', status: 'interrupted', termination: null }] });
    expect((await get(app, '/runs?status=running')).json().total).toBe(0);
    expect(runStateSchema.parse((await get(app, '/runs/cut-1')).json())).toMatchObject({
      status: 'interrupted',
      report: null,
      events: events.length,
      state: events.at(-1)?.state,
      counters: events.at(-1)?.counters,
    });
    const server = await startServer({ agents, store, apiKeys: [], port: 0 });
    servers.push(server);
    const all = await readEventStream(`${server.url}/runs/cut-1/events`);
    expect(all.messages.map((message) => message.data.seq)).toEqual(events.map((event) => event.seq));
    const end = await readEventStream(`${server.url}/runs/cut-1/events`, { 'last-event-id': String(events.length - 1) });
    expect(end).toEqual({ status: 204, messages: [] });
    const cancel = await post(app, '/runs/cut-1/cancel', {});
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json()).toMatchObject({ cancelled: false, status: 'interrupted' });
  });

  it('refuses the id of an interrupted run without touching its lease: it stays interrupted', async () => {
    const store = createMemoryStore();
    interruptedRun(store, 'cut-3');
    const app = await build({ store });
    const reused = await post(app, '/runs', { agent: 'echo', task: 'x', executionId: 'cut-3' });
    expect(reused.statusCode).toBe(400);
    expect((await get(app, '/runs/cut-3')).json().status).toBe('interrupted');
    // Its lease had one holder (the process that died), and none since: the next one is the second.
    expect(store.acquireLease('cut-3', 'an heir', 1_000)?.token).toBe(2);
  });

  it("the dashboard's stream client reads an interrupted run to its last event, then stops at the 204", { timeout: 20_000 }, async () => {
    const store = createMemoryStore();
    const events = interruptedRun(store, 'cut-2');
    const server = await startServer({ agents, store, apiKeys: [], port: 0 });
    servers.push(server);
    const { followRunEvents } = (await import(dashboardModule('sse.js'))) as {
      followRunEvents: (options: { url: string; onEvent: (event: OaoEvent) => void; maxRetryMs?: number }) => Promise<{ completed: boolean; ended?: boolean; lastSeq: number }>;
    };
    const seen: number[] = [];
    const outcome = await followRunEvents({ url: `${server.url}/runs/cut-2/events`, onEvent: (event) => seen.push(event.seq), maxRetryMs: 50 });
    expect(outcome).toEqual({ completed: false, ended: true, lastSeq: events.length - 1 });
    expect(seen).toEqual(events.map((event) => event.seq));
  });

  it('records the runs of a batch: this server knows their batch, another on the same store serves them too', async () => {
    const store = createMemoryStore();
    const app = await build({ store });
    const batch = (await post(app, '/run-multi', { agents: { a: 'echo', b: 'echo' }, task: 'both' })).json();
    const ids = [batch.reports.a.executionId, batch.reports.b.executionId];
    for (const id of ids) {
      expect(store.report(id)?.executionHash).toBe((id === ids[0] ? batch.reports.a : batch.reports.b).executionHash);
      expect((await get(app, `/runs/${id}`)).json()).toMatchObject({ status: 'SUCCESS', batchId: batch.batchId });
    }
    const other = await build({ store });
    const listed = (await get(other, '/runs')).json();
    expect(listed.runs.map((run: { executionId: string }) => run.executionId).sort()).toEqual([...ids].sort());
    expect((await get(other, `/runs/${ids[0]}`)).json()).toMatchObject({ status: 'SUCCESS', batchId: null, effectivePolicy: batch.effectivePolicy });
  });

  it('refuses an id another process holds the lease of, even before that run has events', async () => {
    const store = createMemoryStore();
    store.acquireLease('claimed-1', 'another server', 60_000);
    const app = await build({ store });
    const refused = await post(app, '/runs', { agent: 'echo', task: 'x', executionId: 'claimed-1' });
    expect(refused.statusCode).toBe(400);
    expect(errorBodySchema.parse(refused.json()).error.message).toContain('already exists');
  });

  it('pages the store by cursor and by offset, with the total over all pages', async () => {
    const store = createMemoryStore();
    const app = await build({ store });
    for (let i = 0; i < 7; i++) expect((await post(app, '/run', { agent: 'echo', task: `t${i}`, executionId: `run-${i}` })).statusCode).toBe(200);
    const order = store.list({}, { limit: 100 }).runs.map((run) => run.executionId);
    const ids = (body: { runs: { executionId: string }[] }) => body.runs.map((run) => run.executionId);

    const first = (await get(app, '/runs?limit=3')).json();
    expect(first.total).toBe(7);
    expect(ids(first)).toEqual(order.slice(0, 3));
    const second = (await get(app, `/runs?limit=3&cursor=${encodeURIComponent(first.nextCursor)}`)).json();
    expect(ids(second)).toEqual(order.slice(3, 6));
    const third = (await get(app, `/runs?limit=3&cursor=${encodeURIComponent(second.nextCursor)}`)).json();
    expect(ids(third)).toEqual(order.slice(6));
    expect(third.nextCursor).toBeNull();

    expect(ids((await get(app, '/runs?limit=3&offset=2')).json())).toEqual(order.slice(2, 5));
    expect((await get(app, '/runs?limit=3&offset=7')).json()).toEqual({ runs: [], total: 7, nextCursor: null });
    expect((await get(app, '/runs?agent=echo&limit=1')).json().total).toBe(7);
    expect((await get(app, '/runs?agent=nobody')).json()).toEqual({ runs: [], total: 0, nextCursor: null });

    const badCursor = await get(app, '/runs?cursor=not-a-cursor');
    expect(badCursor.statusCode).toBe(400);
    expect(errorBodySchema.parse(badCursor.json()).error.details?.field).toBe('query.cursor');
    const both = await get(app, `/runs?offset=1&cursor=${encodeURIComponent(first.nextCursor)}`);
    expect(both.statusCode).toBe(400);
  });

  it('counts at most 10000 runs for the total, and says when there are more', async () => {
    const store = createMemoryStore();
    const [start] = fakeRun('template', { status: 'running' });
    if (start === undefined) throw new Error('no start event');
    for (let i = 0; i <= 10_000; i++) store.append(`bulk-${i}`, [{ ...start, executionId: `bulk-${i}`, id: `bulk-${i}:0` }]);
    store.append('other-1', [{ ...start, executionId: 'other-1', id: 'other-1:0', payload: { ...start.payload, agentName: 'other' } }] as OaoEvent[]);
    const app = await build({ store });
    expect((await get(app, '/runs?limit=2')).json()).toMatchObject({ total: 10_000, totalCapped: true, nextCursor: expect.any(String) });
    const few = (await get(app, '/runs?agent=other')).json();
    expect(few).toMatchObject({ total: 1 });
    expect(few.totalCapped).toBeUndefined();
  });
});

describe('options', () => {
  it('names the store option when it is not a RunStore, and says what to do with the former server store', async () => {
    const former = { put: () => undefined, get: () => undefined, list: () => ({ runs: [], total: 0, nextCursor: null }), delete: () => false };
    const cases: [unknown, RegExp][] = [
      [former, /former store.*no longer takes/],
      [{ ...createMemoryStore(), acquireLease: undefined }, /"append" is missing|"acquireLease" is missing/],
      ['memory', /got string/],
    ];
    for (const [store, message] of cases) {
      const error = await createServer({ agents, store: store as RunStore }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(OaoError.isInstance(error)).toBe(true);
      expect((error as OaoError).details?.field).toBe('store');
      expect((error as OaoError).message).toMatch(message);
    }
    const ttl = await createServer({ agents, runLeaseTtlMs: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((ttl as OaoError).details?.field).toBe('runLeaseTtlMs');
  });

  it('still takes the deprecated createMemoryRunStore(): it is the core memory store', async () => {
    const store = createMemoryRunStore({ maxRuns: 5 });
    const app = await build({ store });
    const report = (await post(app, '/run', { agent: 'echo', task: 'old' })).json();
    expect(store.report(report.executionId)?.executionHash).toBe(report.executionHash);
    expect(() => createMemoryRunStore({ maxRuns: 0 })).toThrow(/maxRuns/);
  });
});

describe('the event stream of a live run', () => {
  it('sends each event only once the store holds it', { timeout: 20_000 }, async () => {
    const inner = createMemoryStore();
    let appendsOpen = deferred<void>();
    // The memory store, answering appends only when the test lets them through.
    const slow = new Proxy(inner, {
      get(target, property) {
        if (property === 'synchronous') return false;
        if (property === 'append') {
          return async (...args: Parameters<MemoryRunStore['append']>) => {
            await appendsOpen.promise;
            target.append(...args);
          };
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    }) as RunStore;
    const server = await startServer({ agents, store: slow, apiKeys: [], port: 0 });
    servers.push(server);
    const started = await fetch(`${server.url}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'gated', task: 'slow-store', executionId: 'slow-1' }),
    });
    expect(started.status).toBe(202);
    const stream = await openEventStream(`${server.url}/runs/slow-1/events`);
    cleanups.push(() => stream.close());
    // The run is well under way in memory, but nothing of it is stored: nothing is sent.
    const firstMessage = stream.next();
    const nothing = await Promise.race([firstMessage, new Promise<'nothing yet'>((resolve) => setTimeout(() => resolve('nothing yet'), 200))]);
    expect(nothing).toBe('nothing yet');
    expect(inner.events('slow-1')).toEqual([]);

    appendsOpen.resolve();
    const first = await firstMessage;
    expect(first?.data.type).toBe('EXECUTION_START');
    expect(inner.events('slow-1').length).toBeGreaterThan(0);
    appendsOpen = deferred<void>();
    gates.gate('slow-store').resolve();
    const received = [first];
    const late = setTimeout(() => appendsOpen.resolve(), 100);
    cleanups.push(() => clearTimeout(late));
    for (let message = await stream.next(); message !== null; message = await stream.next()) {
      // Every event a client receives is already in the log.
      expect(inner.events('slow-1').some((event) => event.seq === message.data.seq)).toBe(true);
      received.push(message);
    }
    expect(received.at(-1)?.event).toBe('EXECUTION_COMPLETE');
    expect(received.map((message) => message?.data.seq)).toEqual(inner.events('slow-1').map((event) => event.seq));
  });
});

describe("the store's retention", () => {
  it('is applied by the server as runs end: at the first, then every 64 runs', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oao-retention-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const store = createSqliteStore({ path: join(dir, 'runs.db'), maxRuns: 3 });
    cleanups.push(() => store.close());
    const app = await build({ store });
    for (let i = 1; i <= 64; i++) expect((await post(app, '/run', { agent: 'echo', task: 'x', executionId: `r-${i}` })).statusCode).toBe(200);
    // SQLite leaves retention to prune(): nothing since the first run's.
    expect(store.list({}, { limit: 100 }).runs.length).toBe(64);
    expect((await post(app, '/run', { agent: 'echo', task: 'x', executionId: 'r-65' })).statusCode).toBe(200);
    while (store.list({}, { limit: 100 }).runs.length > 3) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await get(app, '/runs')).json().runs.map((run: { executionId: string }) => run.executionId).sort()).toEqual(['r-63', 'r-64', 'r-65']);
    expect((await get(app, '/runs/r-1')).statusCode).toBe(404);
  });
});

describe('a damaged log', () => {
  it('is a typed 500 naming the run and the seq; the server keeps serving every other run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oao-damaged-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'runs.db');
    const store = createSqliteStore({ path });
    cleanups.push(() => store.close());
    const app = await build({ store });
    await post(app, '/run', { agent: 'echo', task: 'fine', executionId: 'fine-1' });
    await post(app, '/run', { agent: 'echo', task: 'damaged', executionId: 'damaged-1' });
    const raw = new Database(path);
    raw.prepare("UPDATE events SET body = '{not json' WHERE execution_id = 'damaged-1' AND seq = 3").run();
    raw.close();

    const answer = await get(app, '/runs/damaged-1');
    expect(answer.statusCode).toBe(500);
    expect(errorBodySchema.parse(answer.json()).error).toMatchObject({ code: 'OAO_ERR_LOG_CORRUPT', details: { executionId: 'damaged-1', seq: 3 } });
    expect((await get(app, '/runs/damaged-1/events')).statusCode).toBe(500);
    expect((await get(app, '/runs/fine-1')).json()).toMatchObject({ status: 'SUCCESS' });
    expect((await get(app, '/runs')).json().total).toBe(2);
    expect((await post(app, '/run', { agent: 'echo', task: 'new' })).statusCode).toBe(200);
  });
});
