import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  createMemoryStore,
  defineWorkflow,
  nodeRunId,
  OaoError,
  Orchestrator,
  type AgentContext,
  type MemoryRunStore,
  type Workflow,
  type WorkflowResult,
  type RunStore,
} from '../src/index.js';
import { createPostgresStore } from '../src/store/postgres/index.js';
import { createTestDatabase } from './store/pgTestDb.js';

/**
 * Durable workflows, in one process: the workflow's own log in the store, replay and what-if
 * from it, and resume from the store as a dead process leaves it (a copy of the logs, without the
 * dead process's leases).
 */

interface Calls {
  fetch: number;
  slow: number;
  write: number;
  side: number;
}

/** A gate the slow node's first process waits on forever (until its run is cancelled). */
function hang(ctx: AgentContext): Promise<never> {
  return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
}

/**
 * fetch -> slow -> write, and side beside them. `slowHangs`: the slow node's agent waits until
 * cancelled after charging its usage (the process "dies" there).
 */
function pipeline(calls: Calls, started?: () => void, slowHangs = false): Workflow {
  return defineWorkflow({
    id: 'pipeline',
    nodes: {
      fetch: {
        agent: {
          name: 'fetch',
          invoke: (task: { topic: string }, ctx: AgentContext) => {
            calls.fetch += 1;
            ctx.usage({ input: 10, output: 5 });
            return { output: `facts about ${task.topic}` };
          },
        },
      },
      side: {
        agent: {
          name: 'side',
          invoke: () => {
            calls.side += 1;
            return { output: 'side' };
          },
        },
      },
      slow: {
        needs: ['fetch'],
        task: ({ results }) => results.fetch.finalOutput,
        agent: {
          name: 'slow',
          invoke: (task: string, ctx: AgentContext) => {
            calls.slow += 1;
            ctx.usage({ input: 20, output: 10 });
            started?.();
            if (slowHangs) return hang(ctx);
            return { output: `${task}, summarized` };
          },
        },
      },
      write: {
        needs: ['slow'],
        task: ({ results }) => results.slow.finalOutput,
        agent: {
          name: 'write',
          invoke: (task: string) => {
            calls.write += 1;
            return { output: `report: ${task}` };
          },
        },
      },
    },
  });
}

const noCalls = (): Calls => ({ fetch: 0, slow: 0, write: 0, side: 0 });

/** Lets every pending microtask and store append run. */
async function drain(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The same, into any store (an asynchronous one too). */
async function copyInto(from: MemoryRunStore, workflowRunId: string, to: RunStore): Promise<void> {
  await to.appendWorkflow!(workflowRunId, from.workflowEvents!(workflowRunId));
  for (const run of from.list({}, { limit: 1000 }).runs) await to.append(run.executionId, from.events(run.executionId));
}

/** What a dead process leaves: its workflow log and its runs' logs, without its leases. */
async function copyOfStore(from: MemoryRunStore, workflowRunId: string): Promise<MemoryRunStore> {
  const to = createMemoryStore();
  to.appendWorkflow!(workflowRunId, from.workflowEvents!(workflowRunId));
  for (const run of from.list({}, { limit: 1000 }).runs) to.append(run.executionId, from.events(run.executionId));
  return to;
}

function statuses(result: WorkflowResult): Record<string, string> {
  return Object.fromEntries(Object.entries(result.nodes).map(([name, node]) => [name, node.status]));
}

describe('durable workflows', { timeout: 20_000 }, () => {
  it("logs the workflow's own events in the store under its id, with node run ids derived from it", async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const result = await orch.runWorkflow(pipeline(noCalls()), { topic: 'tides' }, { workflowRunId: 'wf-log' });
    expect(result.status).toBe('SUCCESS');
    const log = store.workflowEvents!('wf-log');
    expect(log.map((event) => event.seq)).toEqual(log.map((_, index) => index));
    expect(log[0]).toMatchObject({ type: 'WORKFLOW_START', payload: { input: { topic: 'tides' }, budget: null, workflowHash: result.workflowHash } });
    expect(log.at(-1)).toMatchObject({ type: 'WORKFLOW_COMPLETE', payload: { status: 'SUCCESS', counts: result.counts } });
    expect(log.some((event) => (event.type as string) === 'RUN_EVENT')).toBe(false);
    const started = log.filter((event) => event.type === 'NODE_START').map((event) => event.payload);
    expect(started).toContainEqual({ node: 'slow', runs: 1, executionIds: ['wf-log:slow'] });
    expect(result.nodes.slow?.report?.executionId).toBe(nodeRunId('wf-log', 'slow', null));
    // Each node run is an ordinary run of the store; the workflow is not one of them.
    const listed = store.list().runs.map((run) => run.executionId).sort();
    expect(listed).toEqual(['wf-log:fetch', 'wf-log:side', 'wf-log:slow', 'wf-log:write']);
    expect(store.get('wf-log')).toBeUndefined();
  });

  it('replays a finished workflow from the store with zero agent calls, equal to the result it returned', async () => {
    const store = createMemoryStore();
    const calls = noCalls();
    const orch = new Orchestrator({ store });
    const result = await orch.runWorkflow(pipeline(calls), { topic: 'tides' }, { workflowRunId: 'wf-replay' });
    const before = { ...calls };
    const replayed = await new Orchestrator({ store }).replayWorkflow('wf-replay');
    expect(canonicalJson(replayed as never)).toBe(canonicalJson(result as never));
    expect(calls).toEqual(before);
    // JSON-safe: it survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it('replays fan-out, skipped and failed nodes as they ended', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const wf = defineWorkflow({
      id: 'mixed',
      nodes: {
        items: { agent: { name: 'items', invoke: () => ({ output: [1, 2, 3] }) } },
        each: { needs: ['items'], each: ({ results }) => results.items.finalOutput, agent: { name: 'double', invoke: (n: number) => ({ output: n * 2 }) } },
        never: { needs: ['items'], when: () => false, agent: { name: 'never', invoke: () => ({ output: 'no' }) } },
        broken: { needs: ['items'], agent: { name: 'broken', invoke: () => { throw new Error('boom'); } } },
        after: { needs: ['broken'], agent: { name: 'after', invoke: () => ({ output: 'x' }) } },
      },
    });
    const result = await orch.runWorkflow(wf, null, { workflowRunId: 'wf-mixed' });
    expect(statuses(result)).toEqual({ items: 'SUCCESS', each: 'SUCCESS', never: 'SKIPPED', broken: 'FAILED', after: 'SKIPPED' });
    expect(result.nodes.each?.reports?.map((report) => report.executionId)).toEqual(['wf-mixed:each:0', 'wf-mixed:each:1', 'wf-mixed:each:2']);
    expect(canonicalJson((await orch.replayWorkflow('wf-mixed')) as never)).toBe(canonicalJson(result as never));
  });

  it('resumes a workflow cut short: settled nodes are not run again, the node in flight goes on from its log, the rest run', async () => {
    const store = createMemoryStore();
    let slowStarted!: () => void;
    const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
    const first = noCalls();
    const dying = new Orchestrator({ store, owner: 'dying' });
    const handle = dying.startWorkflow(pipeline(first, slowStarted, true), { topic: 'tides' }, { workflowRunId: 'wf-crash', budget: { maxSteps: 20 } });
    await slowRunning;
    await drain();
    expect(first).toEqual({ fetch: 1, slow: 1, write: 0, side: 1 });
    const left = await copyOfStore(store, 'wf-crash');
    handle.cancel('the process died');
    await handle.result;

    const calls = noCalls();
    const resumed = await new Orchestrator({ store: left, owner: 'heir' }).resumeWorkflow('wf-crash', pipeline(calls), { maxConcurrency: 2 });
    expect(statuses(resumed)).toEqual({ fetch: 'SUCCESS', side: 'SUCCESS', slow: 'SUCCESS', write: 'SUCCESS' });
    // fetch and side had finished: their agents are not called again; slow's step runs again.
    expect(calls).toEqual({ fetch: 0, slow: 1, write: 1, side: 0 });
    expect(resumed.nodes.write?.report?.finalOutput).toBe('report: facts about tides, summarized');
    expect(resumed.nodes.fetch?.report).toEqual(left.report('wf-crash:fetch'));
    // The in-flight run continued its own log, with usage charged once.
    const slowLog = left.events('wf-crash:slow');
    expect(slowLog.some((event) => event.type === 'EXECUTION_RESUMED')).toBe(true);
    expect(resumed.nodes.slow?.report?.tokenUsage.total).toBe(30);
    expect(resumed.tokenUsage.total).toBe(45);

    // The same as an uninterrupted run.
    const straight = await new Orchestrator().runWorkflow(pipeline(noCalls()), { topic: 'tides' }, { budget: { maxSteps: 20 } });
    expect(statuses(resumed)).toEqual(statuses(straight));
    expect(resumed.counts).toEqual(straight.counts);
    expect(resumed.workflowHash).toBe(straight.workflowHash);

    const log = left.workflowEvents!('wf-crash');
    expect(log.filter((event) => event.type === 'WORKFLOW_RESUMED')).toHaveLength(1);
    expect(log.find((event) => event.type === 'WORKFLOW_RESUMED')?.payload).toMatchObject({ owner: 'heir', settled: ['fetch', 'side'], inFlight: ['slow'] });
    // The log reads as one run: replay gives the result the resume returned.
    expect(canonicalJson((await new Orchestrator({ store: left }).replayWorkflow('wf-crash')) as never)).toBe(canonicalJson(resumed as never));
  });

  it('PostgreSQL: logs, resumes and replays a workflow through an asynchronous store', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase('workflows');
    try {
      const store = await createPostgresStore({ connectionString: database.connectionString });
      try {
        const memory = createMemoryStore();
        let slowStarted!: () => void;
        const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
        const dying = new Orchestrator({ store: memory, owner: 'dying' });
        const handle = dying.startWorkflow(pipeline(noCalls(), slowStarted, true), { topic: 'tides' }, { workflowRunId: 'wf-pg' });
        await slowRunning;
        await drain();
        await copyInto(memory, 'wf-pg', store);
        handle.cancel('the process died');
        await handle.result;

        const calls = noCalls();
        const orch = new Orchestrator({ store, owner: 'heir' });
        const resumed = await orch.resumeWorkflow('wf-pg', pipeline(calls));
        expect(statuses(resumed)).toEqual({ fetch: 'SUCCESS', side: 'SUCCESS', slow: 'SUCCESS', write: 'SUCCESS' });
        expect(calls).toEqual({ fetch: 0, slow: 1, write: 1, side: 0 });
        const log = await store.workflowEvents('wf-pg');
        expect(log.at(-1)?.type).toBe('WORKFLOW_COMPLETE');
        expect(canonicalJson((await orch.replayWorkflow('wf-pg')) as never)).toBe(canonicalJson(resumed as never));

        const fresh = await orch.runWorkflow(pipeline(noCalls()), { topic: 'tides' }, { workflowRunId: 'wf-pg-2' });
        expect(canonicalJson((await orch.replayWorkflow('wf-pg-2')) as never)).toBe(canonicalJson(fresh as never));
      } finally {
        await store.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('resumes a fan-out node cut short: only its unfinished items run again', async () => {
    const fanOut = (calls: number[], hangOn: number | undefined, started?: () => void) =>
      defineWorkflow({
        id: 'fan',
        nodes: {
          items: { agent: { name: 'items', invoke: () => ({ output: [0, 1, 2] }) } },
          each: {
            needs: ['items'],
            each: ({ results }) => results.items.finalOutput,
            agent: {
              name: 'square',
              invoke: (n: number, ctx: AgentContext) => {
                calls.push(n);
                if (n === hangOn) {
                  started?.();
                  return hang(ctx);
                }
                return { output: n * n };
              },
            },
          },
          sum: { needs: ['each'], task: ({ results }) => results.each.map((report: { finalOutput: number }) => report.finalOutput), agent: { name: 'sum', invoke: (values: number[]) => ({ output: values.reduce((a, b) => a + b, 0) }) } },
        },
      });
    const store = createMemoryStore();
    let hung!: () => void;
    const hanging = new Promise<void>((resolve) => (hung = resolve));
    const dying = new Orchestrator({ store });
    const handle = dying.startWorkflow(fanOut([], 1, hung), null, { workflowRunId: 'wf-fan' });
    await hanging;
    await drain();
    expect(store.report('wf-fan:each:0')?.status).toBe('SUCCESS');
    expect(store.report('wf-fan:each:2')?.status).toBe('SUCCESS');
    const left = await copyOfStore(store, 'wf-fan');
    handle.cancel();
    await handle.result;

    const calls: number[] = [];
    const resumed = await new Orchestrator({ store: left }).resumeWorkflow('wf-fan', fanOut(calls, undefined));
    expect(calls).toEqual([1]);
    expect(resumed.nodes.each?.reports?.map((report) => report.finalOutput)).toEqual([0, 1, 4]);
    expect(resumed.nodes.sum?.report?.finalOutput).toBe(5);
    expect(canonicalJson((await new Orchestrator({ store: left }).replayWorkflow('wf-fan')) as never)).toBe(canonicalJson(resumed as never));
  });

  it('resumes a halted workflow cut short: the runs in flight end with the halt, the rest are skipped', async () => {
    const store = createMemoryStore();
    let slowStarted!: () => void;
    const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
    const orch = new Orchestrator({ store });
    const handle = orch.startWorkflow(pipeline(noCalls(), slowStarted, true), { topic: 'tides' }, { workflowRunId: 'wf-halt' });
    await slowRunning;
    await drain();
    const slowBefore = store.events('wf-halt:slow');
    handle.cancel('stopped by the operator');
    const original = await handle.result;
    expect(original.halted?.kind).toBe('cancelled');
    // The process died after logging the halt, before the slow run's stop was durable.
    const log = store.workflowEvents!('wf-halt');
    const halt = log.findIndex((event) => event.type === 'WORKFLOW_HALTED');
    const left = createMemoryStore();
    left.appendWorkflow!('wf-halt', log.slice(0, halt + 1));
    for (const id of ['wf-halt:fetch', 'wf-halt:side']) left.append(id, store.events(id));
    left.append('wf-halt:slow', slowBefore);

    const calls = noCalls();
    const resumed = await new Orchestrator({ store: left }).resumeWorkflow('wf-halt', pipeline(calls));
    expect(calls).toEqual(noCalls());
    expect(resumed.halted).toEqual(original.halted);
    expect(statuses(resumed)).toEqual(statuses(original));
    expect(resumed.nodes.slow?.report?.termination.reason).toBe('cancelled');
    expect(resumed.nodes.write?.reason?.kind).toBe('cancelled');
    expect(left.report('wf-halt:slow')?.status).toBe('FAILED');
  });

  it('refuses with OAO_ERR_LEASE_HELD while a live process still holds a node run, and takes no lease', async () => {
    const store = createMemoryStore();
    let slowStarted!: () => void;
    const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
    const live = new Orchestrator({ store, owner: 'live' });
    const handle = live.startWorkflow(pipeline(noCalls(), slowStarted, true), { topic: 'tides' }, { workflowRunId: 'wf-held' });
    await slowRunning;
    await drain();
    const error = await new Orchestrator({ store, owner: 'other' }).resumeWorkflow('wf-held', pipeline(noCalls())).catch((caught: unknown) => caught);
    expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_LEASE_HELD');
    expect((error as OaoError).details).toMatchObject({ executionId: 'wf-held:slow', workflowRunId: 'wf-held' });
    handle.cancel();
    expect((await handle.result).nodes.slow?.report?.termination.reason).toBe('cancelled');
  });

  it('rebuilds the shared budget from what the node runs spent before the crash', async () => {
    const store = createMemoryStore();
    let slowStarted!: () => void;
    const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
    const dying = new Orchestrator({ store, owner: 'dying' });
    // fetch, side and slow take one step each: the third step spends the budget; write's step is one too many.
    const handle = dying.startWorkflow(pipeline(noCalls(), slowStarted, true), { topic: 'tides' }, { workflowRunId: 'wf-budget', budget: { maxSteps: 3 } });
    await slowRunning;
    await drain();
    const left = await copyOfStore(store, 'wf-budget');
    handle.cancel('the process died');
    await handle.result;

    const calls = noCalls();
    const resumed = await new Orchestrator({ store: left, owner: 'heir' }).resumeWorkflow('wf-budget', pipeline(calls));
    expect(statuses(resumed)).toMatchObject({ fetch: 'SUCCESS', side: 'SUCCESS', slow: 'SUCCESS', write: 'FAILED' });
    expect(calls.write).toBe(0);
    expect(resumed.nodes.write?.report?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
  });

  it('refuses a definition of another shape with OAO_ERR_WORKFLOW_MISMATCH, and an unknown id with OAO_ERR_RUN_NOT_FOUND', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    await orch.runWorkflow(pipeline(noCalls()), { topic: 'tides' }, { workflowRunId: 'wf-shape' });
    const other = defineWorkflow({ id: 'pipeline', nodes: { fetch: { agent: { name: 'fetch', invoke: () => ({ output: 1 }) } } } });
    const error = await orch.resumeWorkflow('wf-shape', other).catch((caught: unknown) => caught);
    expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_WORKFLOW_MISMATCH');
    expect((error as OaoError).details).toMatchObject({ workflowRunId: 'wf-shape' });
    expect((error as OaoError).status).toBe(409);
    const missing = await orch.resumeWorkflow('nope', other).catch((caught: unknown) => caught);
    expect(OaoError.isInstance(missing) && missing.code).toBe('OAO_ERR_RUN_NOT_FOUND');
    const noStore = await new Orchestrator({ store: false }).replayWorkflow('wf-shape').catch((caught: unknown) => caught);
    expect(OaoError.isInstance(noStore) && noStore.code).toBe('OAO_ERR_INVALID_ARGUMENT');
  });

  it('answers the stored result when resuming a workflow that had finished, calling no agent', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const result = await orch.runWorkflow(pipeline(noCalls()), { topic: 'tides' }, { workflowRunId: 'wf-done' });
    const calls = noCalls();
    const again = await orch.resumeWorkflow('wf-done', pipeline(calls));
    expect(canonicalJson(again as never)).toBe(canonicalJson(result as never));
    expect(calls).toEqual(noCalls());
  });

  it('refuses to replay a workflow that has not finished', async () => {
    const store = createMemoryStore();
    let slowStarted!: () => void;
    const slowRunning = new Promise<void>((resolve) => (slowStarted = resolve));
    const orch = new Orchestrator({ store });
    const handle = orch.startWorkflow(pipeline(noCalls(), slowStarted, true), { topic: 'tides' }, { workflowRunId: 'wf-open' });
    await slowRunning;
    await drain();
    const error = await orch.replayWorkflow('wf-open').catch((caught: unknown) => caught);
    expect(OaoError.isInstance(error) && error.code).toBe('OAO_ERR_INVALID_ARGUMENT');
    handle.cancel();
    await handle.result;
  });

  it('says which nodes a tighter policy would have stopped, and which dependents would then have been skipped', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    const result = await orch.runWorkflow(pipeline(noCalls()), { topic: 'tides' }, { workflowRunId: 'wf-whatif' });
    expect(result.status).toBe('SUCCESS');
    // slow spends 30 tokens, fetch 15: a 20-token budget stops slow, so write would never run.
    const verdict = await orch.whatIfWorkflow('wf-whatif', { maxTokens: 20 });
    expect(verdict.stopped).toEqual(['slow']);
    expect(verdict.skipped).toEqual(['write']);
    expect(verdict.same).toBe(false);
    expect(verdict.nodes.slow).toMatchObject({ recorded: 'SUCCESS', wouldEnd: 'FAILED' });
    expect(verdict.nodes.slow?.runs[0]?.wouldStop?.rule).toBe('max_tokens');
    expect(verdict.nodes.write).toMatchObject({ recorded: 'SUCCESS', wouldEnd: 'SKIPPED', skippedBecause: 'slow' });
    expect(verdict.nodes.fetch).toMatchObject({ recorded: 'SUCCESS', wouldEnd: 'SUCCESS' });
    const loose = await orch.whatIfWorkflow('wf-whatif', { maxTokens: 1_000 });
    expect(loose).toMatchObject({ stopped: [], skipped: [], same: true });
  });
});
