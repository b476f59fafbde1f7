import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  OaoError,
  Orchestrator,
  type AgentContext,
  type ExecutionReport,
  type OaoEvent,
} from '../src/index.js';
import { createMemoryStore as createSyncMemoryStore } from '../src/store/createMemoryStore.js';
import type { RunStore } from '../src/store/RunStore.js';
import { fromChatModel } from '../src/adapters/langchain/index.js';
import { ScriptedChatModel } from './adapters/scriptedChatModel.js';
import { deferred } from './helpers.js';

/** A memory store seen through the general interface (whose methods may answer with promises). */
const createMemoryStore = (): RunStore => createSyncMemoryStore();

/** The same store, answering every call with a promise a macrotask later (as a database would). */
function asyncStore(inner: RunStore): RunStore & { appends: number } {
  const later = <T>(fn: () => T | Promise<T>) =>
    new Promise<T>((resolve, reject) =>
      setImmediate(() => {
        Promise.resolve().then(fn).then(resolve, reject);
      }),
    );
  const store = {
    appends: 0,
    synchronous: false,
    append: (id: string, events: readonly OaoEvent[], options?: Parameters<RunStore['append']>[2]) => later(() => {
      store.appends += 1;
      return inner.append(id, events, options);
    }),
    events: (id: string, options?: { fromSeq?: number }) => later(() => inner.events(id, options)),
    report: (id: string) => later(() => inner.report(id)),
    get: (id: string) => later(() => inner.get(id)),
    list: (...args: Parameters<RunStore['list']>) => later(() => inner.list(...args)),
    prune: () => later(() => inner.prune()),
    acquireLease: (...args: Parameters<RunStore['acquireLease']>) => later(() => inner.acquireLease(...args)),
    renewLease: (...args: Parameters<RunStore['renewLease']>) => later(() => inner.renewLease(...args)),
    releaseLease: (...args: Parameters<RunStore['releaseLease']>) => later(() => inner.releaseLease(...args)),
    charge: (...args: Parameters<RunStore['charge']>) => later(() => inner.charge(...args)),
    counters: (...args: Parameters<RunStore['counters']>) => later(() => inner.counters(...args)),
    close: () => later(() => inner.close()),
  };
  return store;
}

/** A store that fails every append from the `failFrom`-th on, as a full disk would. */
function failingStore(inner: RunStore, failFrom: number): RunStore {
  let appends = 0;
  return {
    synchronous: true,
    append: (id: string, events: readonly OaoEvent[], options?: Parameters<RunStore['append']>[2]) => {
      appends += 1;
      if (appends >= failFrom) throw new OaoError('OAO_ERR_STORE', 'disk full');
      return inner.append(id, events, options);
    },
    events: inner.events.bind(inner),
    report: inner.report.bind(inner),
    get: inner.get.bind(inner),
    list: inner.list.bind(inner),
    prune: inner.prune.bind(inner),
    acquireLease: inner.acquireLease.bind(inner),
    renewLease: inner.renewLease.bind(inner),
    releaseLease: inner.releaseLease.bind(inner),
    charge: inner.charge.bind(inner),
    counters: inner.counters.bind(inner),
    close: inner.close.bind(inner),
  };
}

const researcher = {
  name: 'researcher',
  async invoke(task: string, ctx: AgentContext) {
    const found = await ctx.tools.search!({ q: task });
    ctx.usage({ input: 10, output: 5 });
    return { output: `${task}: ${String(found)}` };
  },
  review: (result: { step: number }) => ({ done: result.step >= 2, input: 'more' }),
};

describe('runs recorded in a store', () => {
  it('stores every event of a run; replay by id rebuilds the same report with zero calls', async () => {
    const store = createMemoryStore();
    let searches = 0;
    const orch = new Orchestrator({ store });
    const handle = orch.start({ agent: researcher, task: 'governance', tools: { search: () => `hit ${++searches}` } });
    const live = await handle.report;
    expect(live.status).toBe('SUCCESS');
    const stored = await store.events(live.executionId);
    expect(canonicalJson(stored)).toBe(canonicalJson(handle.events()));
    expect(canonicalJson(await store.report(live.executionId))).toBe(canonicalJson(live));

    const before = searches;
    const replayed = await orch.replay(live.executionId);
    expect(searches).toBe(before);
    expect(canonicalJson(replayed)).toBe(canonicalJson(live));
    expect(replayed.executionHash).toBe(live.executionHash);
    // A new orchestrator over the same store replays it too.
    expect(canonicalJson(await new Orchestrator({ store }).replay(live.executionId))).toBe(canonicalJson(live));
  });

  it('records runs started with run() and runSync() alike', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const a = await orch.run({ agent: (t: string) => t.toUpperCase(), task: 'a' });
    const b = orch.runSync({ agent: (t: string) => t.toUpperCase(), task: 'b' });
    for (const report of [a, b]) {
      expect(canonicalJson(await orch.replay(report.executionId))).toBe(canonicalJson(report));
    }
  });

  it('writes the TOOL_CALL ahead of the tool body (synchronous store)', async () => {
    const store = createMemoryStore();
    let seenByTool: string[] = [];
    const orch = new Orchestrator({ store });
    await orch.run({
      agent: async (_t: string, ctx: AgentContext) => String(await ctx.tools.probe!({})),
      task: 'x',
      executionId: 'wal-sync',
      tools: {
        probe: async () => {
          seenByTool = (await store.events('wal-sync')).map((e) => e.type);
          return 'ok';
        },
      },
    });
    expect(seenByTool.at(-1)).toBe('TOOL_CALL');
  });

  it('writes the TOOL_CALL ahead of the tool body, and the report after the last append (asynchronous store)', async () => {
    const inner = createMemoryStore();
    const store = asyncStore(inner);
    let seenByTool: string[] = [];
    const orch = new Orchestrator({ store });
    const report = await orch.run({
      agent: async (_t: string, ctx: AgentContext) => String(await ctx.tools.probe!({})),
      task: 'x',
      executionId: 'wal-async',
      tools: {
        probe: async () => {
          seenByTool = (await inner.events('wal-async')).map((e) => e.type);
          return 'ok';
        },
      },
    });
    expect(seenByTool.at(-1)).toBe('TOOL_CALL');
    // When run() settles, the whole log is durable.
    const stored = await inner.events('wal-async');
    expect(stored.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    expect(canonicalJson(await orch.replay('wal-async'))).toBe(canonicalJson(report));
    // Batched per macrostep: far fewer appends than events.
    expect(store.appends).toBeLessThan(stored.length);
  });

  it('writes a run whose agent answers without I/O in one append: one commit, not one per macrostep', async () => {
    const inner = createMemoryStore();
    const store = asyncStore(inner);
    const orch = new Orchestrator({ store });
    const agents = [(task: string) => `sync: ${task}`, async (task: string) => `async: ${task}`];
    for (const [index, agent] of agents.entries()) {
      const before = store.appends;
      const report = await orch.run({ agent, task: 'x', executionId: `one-append-${index}` });
      expect(report.status).toBe('SUCCESS');
      expect(store.appends - before).toBe(1);
      expect((await inner.events(`one-append-${index}`)).at(-1)?.type).toBe('EXECUTION_COMPLETE');
    }
    // A step that waits for I/O is preceded by an append of its own: the log shows the run live meanwhile.
    const gate = deferred<string>();
    const handle = orch.start({ agent: () => gate.promise, task: 'x', executionId: 'waits' });
    const lastStored = async () => (await inner.events('waits')).at(-1)?.type;
    for (let turn = 0; turn < 1_000 && (await lastStored()) !== 'STEP_START'; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(await lastStored()).toBe('STEP_START');
    expect((await inner.get('waits'))?.status).toBe('running');
    gate.resolve('done');
    expect((await handle.report).status).toBe('SUCCESS');
    expect((await inner.events('waits')).at(-1)?.type).toBe('EXECUTION_COMPLETE');
  }, 10_000);

  it('ends a run FAILED with the store error before any further side effect when an append fails', async () => {
    let bodies = 0;
    const inner = createMemoryStore();
    const orch = new Orchestrator({ store: failingStore(inner, 2) });
    const report = await orch.run({
      executionId: 'disk-full',
      agent: async (_t: string, ctx: AgentContext) => {
        for (let i = 0; i < 3; i++) await ctx.tools.work!({ i }).catch(() => {});
        return 'should not finish';
      },
      task: 'x',
      tools: { work: () => ++bodies },
    });
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('error');
    expect(report.error?.code).toBe('OAO_ERR_STORE');
    // The first append (everything up to the first TOOL_CALL, written ahead of its body)
    // succeeded; the second (the write-ahead of the next call) failed, so that body never ran.
    expect(bodies).toBe(1);
    const stored = await inner.events('disk-full');
    expect(stored.at(-1)?.type).toBe('TOOL_CALL');
    expect(stored.filter((e) => e.type === 'TOOL_CALL')).toHaveLength(1);
  });

  it('refuses runSync with an asynchronous store, naming the fix', () => {
    const orch = new Orchestrator({ store: asyncStore(createMemoryStore()) });
    expect(() => orch.runSync({ agent: () => 'x', task: 'x' })).toThrow(/use run\(\), or a synchronous store/);
  });

  it('rejects a store that is not one', () => {
    expect(() => new Orchestrator({ store: {} as RunStore })).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }) as Error);
  });
});

describe('replay', () => {
  async function recorded(): Promise<{ events: readonly OaoEvent[]; report: ExecutionReport }> {
    const handle = new Orchestrator().start({ agent: researcher, task: 'x', tools: { search: () => 'r' } });
    return { report: await handle.report, events: handle.events() };
  }

  it('rebuilds the report from events alone', async () => {
    const { events, report } = await recorded();
    expect(canonicalJson(await new Orchestrator().replay(events))).toBe(canonicalJson(report));
  });

  it('refuses a log with a gap, a log cut short and a log that does not add up', async () => {
    const { events } = await recorded();
    const orch = new Orchestrator();
    await expect(orch.replay([...events.slice(0, 3), ...events.slice(4)])).rejects.toMatchObject({ code: 'OAO_ERR_LOG_CORRUPT' });
    await expect(orch.replay(events.slice(0, -1))).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
    const tampered = events.map((e) =>
      e.type === 'TOKEN_USAGE' ? ({ ...e, payload: { ...e.payload, total: e.payload.total + 1 } }) : e,
    );
    await expect(orch.replay(tampered)).rejects.toMatchObject({ code: 'OAO_ERR_LOG_CORRUPT' });
    await expect(orch.replay([])).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT' });
    await expect(new Orchestrator({ store: false }).replay('some-id')).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'store' } });
  });
});

describe('governed LangChain model calls and an asynchronous store', () => {
  it('call the model only once their MODEL_CALL is durable', async () => {
    const inner = createMemoryStore();
    const seenByModel: string[][] = [];
    class ProbingModel extends ScriptedChatModel {
      override async _generate(...args: Parameters<ScriptedChatModel['_generate']>) {
        seenByModel.push((await inner.events('lc-wal')).map((e) => e.type));
        return super._generate(...args);
      }
    }
    const model = new ProbingModel([{ content: 'hello', usage: { input: 3, output: 2 } }]);
    const report = await new Orchestrator({ store: asyncStore(inner) }).run({ agent: fromChatModel(model), task: 'hi', executionId: 'lc-wal' });
    expect(report.status).toBe('SUCCESS');
    expect(seenByModel).toHaveLength(1);
    expect(seenByModel[0]?.at(-1)).toBe('MODEL_CALL');
  });
});
