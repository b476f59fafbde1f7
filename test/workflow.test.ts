import { describe, expect, it } from 'vitest';
import { SimulatedClock, createActor, type InspectionEvent } from 'xstate';
import {
  OaoError,
  Orchestrator,
  createMemoryStore,
  defineWorkflow,
  executionReportSchema,
  workflowEventSchema,
  type AgentContext,
  type OaoEvent,
  type WorkflowEvent,
  type WorkflowResult,
} from '../src/index.js';
import { createGates, deferred, flush } from './helpers.js';

const T = 10_000;

/** The id of an inspected actor (inspection events type it as a bare ActorRefLike). */
const idOf = (ref: unknown): string => (ref as { id: string }).id;

/** An agent that echoes its task, named, optionally charging tokens. */
function echo(name: string, tokens = 0) {
  return { name, invoke: (task: unknown) => ({ output: task, ...(tokens > 0 ? { usage: { input: tokens, output: 0 } } : {}) }) };
}

function failing(name: string) {
  return {
    name,
    invoke: () => {
      throw Object.assign(new Error(`${name} broke`), { retryable: false });
    },
  };
}

/** An agent that waits for its gate (named by its task, or by `gateName`) and records its signal. */
function gated(gates: ReturnType<typeof createGates>, name: string, signals: Map<string, AbortSignal>, gateName = name) {
  return {
    name,
    async invoke(task: unknown, ctx: AgentContext) {
      signals.set(name, ctx.signal);
      await Promise.race([
        gates.gate(gateName).promise,
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })),
      ]);
      return { output: task };
    },
  };
}

function expectOaoError(fn: () => unknown, code: string, details?: Record<string, unknown>): OaoError {
  try {
    fn();
  } catch (error) {
    expect(OaoError.isInstance(error)).toBe(true);
    const e = error as OaoError;
    expect(e.code).toBe(code);
    if (details !== undefined) expect(e.details).toMatchObject(details);
    return e;
  }
  throw new Error('expected a throw');
}

function expectJsonSafe(result: WorkflowResult): void {
  const copy = JSON.parse(JSON.stringify(result)) as WorkflowResult;
  expect(copy).toEqual(result);
  for (const node of Object.values(copy.nodes)) {
    if (node.report !== undefined) executionReportSchema.parse(node.report);
    for (const report of node.reports ?? []) executionReportSchema.parse(report);
  }
}

describe('defineWorkflow validation', () => {
  const a = echo('a');
  it('names an unknown dependency', () => {
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { x: { agent: a, needs: ['nope'] } } }), 'OAO_ERR_INVALID_WORKFLOW', {
      problem: 'unknown_dependency',
      node: 'x',
      dependency: 'nope',
    });
  }, T);

  it('names the path of a cycle', () => {
    const error = expectOaoError(
      () =>
        defineWorkflow({
          id: 'w',
          nodes: { start: { agent: a }, a: { agent: a, needs: ['start', 'c'] }, b: { agent: a, needs: ['a'] }, c: { agent: a, needs: ['b'] } },
        }),
      'OAO_ERR_WORKFLOW_CYCLE',
    );
    const cycle = error.details?.cycle as string[];
    expect(cycle[0]).toBe(cycle[cycle.length - 1]);
    expect(new Set(cycle)).toEqual(new Set(['a', 'b', 'c']));
    // In the direction work flows: each node is needed by the next.
    expect(cycle).toEqual(['a', 'b', 'c', 'a']);
    expect(error.message).toContain('a -> b -> c -> a');
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { self: { agent: a, needs: ['self'] } } }), 'OAO_ERR_WORKFLOW_CYCLE', { cycle: ['self', 'self'] });
  }, T);

  it('refuses duplicate and empty names, a missing agent, no nodes, and an invalid node policy', () => {
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: [{ name: 'x', agent: a }, { name: 'x', agent: a }] }), 'OAO_ERR_INVALID_WORKFLOW', {
      problem: 'duplicate_node',
      node: 'x',
    });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: [{ name: '', agent: a }] }), 'OAO_ERR_INVALID_WORKFLOW', { problem: 'empty_name' });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { '': { agent: a } } }), 'OAO_ERR_INVALID_WORKFLOW', { problem: 'empty_name' });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { x: {} as never } }), 'OAO_ERR_INVALID_WORKFLOW', { problem: 'missing_agent', node: 'x' });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: {} }), 'OAO_ERR_INVALID_WORKFLOW', { problem: 'no_nodes' });
    expectOaoError(() => defineWorkflow({ id: '', nodes: { x: { agent: a } } }), 'OAO_ERR_INVALID_WORKFLOW', { problem: 'invalid_id' });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { x: { agent: { invoke: 3 } as never } } }), 'OAO_ERR_INVALID_AGENT', { node: 'x' });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { x: { agent: a, policy: { maxSteps: 0 } } } }), 'OAO_ERR_INVALID_POLICY', { node: 'x' });
    expectOaoError(() => defineWorkflow({ id: 'w', nodes: { x: { agent: a, when: true as never } } }), 'OAO_ERR_INVALID_WORKFLOW', { problem: 'invalid_node', field: 'when' });
  }, T);

  it('rejects bad run options and a value that is not a workflow with typed errors', async () => {
    const orch = new Orchestrator();
    const wf = defineWorkflow({ id: 'w', nodes: { x: { agent: a } } });
    await expect(orch.runWorkflow({ id: 'w' } as never, null)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_WORKFLOW' });
    await expect(orch.runWorkflow(wf, null, { maxConcurrency: 0 })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'maxConcurrency' } });
    await expect(orch.runWorkflow(wf, null, { onFailure: 'explode' as never })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'onFailure' } });
    await expect(orch.runWorkflow(wf, null, { budget: { maxTokens: -1 } })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_POLICY' });
    await expect(orch.runWorkflow(wf, 10n)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'input' } });
  }, T);
});

describe('running a workflow', () => {
  it('runs the article workflow: results feed tasks, fan-out keeps input order, when gates notify', async () => {
    const claimsChecked: unknown[] = [];
    // Later items finish first: c1 answers only once c2 and c3 have (the three run at once under
    // maxConcurrency 4), and the node's reports must still be in input order.
    const others = deferred();
    const checker = {
      name: 'checker',
      invoke: async (claim: string) => {
        if (claim === 'c1') await others.promise;
        claimsChecked.push(claim);
        if (claimsChecked.length === 2 && !claimsChecked.includes('c1')) others.resolve();
        return { output: `checked ${claim}`, usage: { input: 10, output: 5 } };
      },
    };
    const wf = defineWorkflow<{ topic: string }>({
      id: 'article',
      nodes: {
        research: { agent: echo('researcher', 100), task: ({ input }) => `notes on ${input.topic}` },
        critique: { agent: echo('critic'), needs: ['research'], task: ({ results }) => `critique of ${results.research.finalOutput}` },
        facts: { agent: checker, needs: ['research'], each: () => ['c1', 'c2', 'c3'] },
        write: { agent: echo('writer'), needs: ['critique', 'facts'], task: ({ results }) => results.facts.map((r: { finalOutput: string }) => r.finalOutput).join(', ') },
        notify: { agent: echo('notifier'), needs: ['write'], when: ({ results }) => results.write.status === 'SUCCESS' },
      },
    });
    const orch = new Orchestrator();
    const result = await orch.runWorkflow(wf, { topic: 'AI governance' }, { maxConcurrency: 4, budget: { maxTokens: 20_000 } });
    expect(result.status).toBe('SUCCESS');
    expect(result.workflow).toBe('article');
    expect(result.nodes.research?.report?.finalOutput).toBe('notes on AI governance');
    expect(result.nodes.critique?.report?.finalOutput).toBe('critique of notes on AI governance');
    expect(claimsChecked.at(-1)).toBe('c1');
    expect([...claimsChecked].sort()).toEqual(['c1', 'c2', 'c3']);
    expect(result.nodes.facts?.reports?.map((r) => r.finalOutput)).toEqual(['checked c1', 'checked c2', 'checked c3']);
    expect(result.nodes.write?.report?.finalOutput).toBe('checked c1, checked c2, checked c3');
    // A node without a task that needs others gets their results.
    expect((result.nodes.notify?.report?.finalOutput as Record<string, { finalOutput: unknown }>).write?.finalOutput).toBe('checked c1, checked c2, checked c3');
    expect(result.counts).toEqual({ total: 5, succeeded: 5, failed: 0, skipped: 0 });
    expect(result.tokenUsage.total).toBe(100 + 3 * 15);
    expect(result.workflowHash).toMatch(/^[0-9a-f]{64}$/);
    expectJsonSafe(result);
  }, T);

  it('gives a root node without a task the workflow input, and hashes the shape and policy, not the input', async () => {
    const orch = new Orchestrator();
    const make = (maxSteps?: number) => defineWorkflow({ id: 'w', nodes: { x: { agent: echo('x'), ...(maxSteps === undefined ? {} : { policy: { maxSteps } }) } } });
    const one = await orch.runWorkflow(make(), { q: 1 });
    const two = await orch.runWorkflow(make(), { q: 2 });
    const narrowed = await orch.runWorkflow(make(3), { q: 1 });
    expect(one.nodes.x?.report?.finalOutput).toEqual({ q: 1 });
    expect(one.workflowHash).toBe(two.workflowHash);
    expect(narrowed.workflowHash).not.toBe(one.workflowHash);
    expect((await orch.runWorkflow(make(), 1, { policy: { maxSteps: 2 } })).workflowHash).not.toBe(one.workflowHash);
  }, T);

  it('starts a node as soon as what it needs is done: a slow branch does not hold back the fast one', async () => {
    const gates = createGates();
    const signals = new Map<string, AbortSignal>();
    const order: string[] = [];
    const tracked = (name: string) => ({ name, invoke: (task: unknown) => (order.push(name), { output: task }) });
    const wf = defineWorkflow({
      id: 'diamond',
      nodes: {
        a: { agent: echo('a') },
        slow: { agent: gated(gates, 'slow', signals), needs: ['a'] },
        fast: { agent: tracked('fast'), needs: ['a'] },
        afterFast: { agent: tracked('afterFast'), needs: ['fast'] },
        join: { agent: tracked('join'), needs: ['slow', 'fast'] },
      },
    });
    const handle = new Orchestrator().startWorkflow(wf, 'go', { maxConcurrency: 4 });
    for (let i = 0; i < 20 && !order.includes('afterFast'); i++) await flush();
    expect(order).toEqual(['fast', 'afterFast']);
    expect(handle.nodes()).toMatchObject({ slow: 'running', afterFast: 'SUCCESS', join: 'waiting' });
    gates.openAll();
    const result = await handle.result;
    expect(order).toEqual(['fast', 'afterFast', 'join']);
    expect(result.status).toBe('SUCCESS');
  }, T);

  it('skips the dependents of a FAILED node, naming the failed ancestor, while independent branches go on', async () => {
    const wf = defineWorkflow({
      id: 'failing',
      nodes: {
        a: { agent: failing('a') },
        b: { agent: echo('b'), needs: ['a'] },
        c: { agent: echo('c'), needs: ['b'] },
        other: { agent: echo('other') },
        afterOther: { agent: echo('afterOther'), needs: ['other'] },
      },
    });
    const result = await new Orchestrator().runWorkflow(wf, 'x');
    expect(result.status).toBe('FAILED');
    expect(result.nodes.a?.status).toBe('FAILED');
    expect(result.nodes.a?.report?.termination.reason).toBe('error');
    expect(result.nodes.b).toMatchObject({ status: 'SKIPPED', reason: { kind: 'dependency_failed', node: 'a' } });
    expect(result.nodes.c).toMatchObject({ status: 'SKIPPED', reason: { kind: 'dependency_failed', node: 'a' } });
    expect(result.nodes.c?.reason?.message).toContain('"a"');
    expect(result.nodes.b?.report).toBeUndefined();
    expect(result.nodes.other?.status).toBe('SUCCESS');
    expect(result.nodes.afterOther?.status).toBe('SUCCESS');
    expect(result.counts).toEqual({ total: 5, succeeded: 2, failed: 1, skipped: 2 });
    expectJsonSafe(result);
  }, T);

  it("fail-fast cancels the running nodes and skips the waiting ones", async () => {
    const gates = createGates();
    const signals = new Map<string, AbortSignal>();
    const breaks = deferred();
    const wf = defineWorkflow({
      id: 'ff',
      nodes: {
        long: { agent: gated(gates, 'long', signals) },
        afterLong: { agent: echo('afterLong'), needs: ['long'] },
        bad: {
          agent: {
            name: 'bad',
            invoke: async () => {
              await breaks.promise;
              throw Object.assign(new Error('bad broke'), { retryable: false });
            },
          },
        },
      },
    });
    const handle = new Orchestrator().startWorkflow(wf, 'x', { onFailure: 'fail-fast' });
    for (let i = 0; i < 10 && !signals.has('long'); i++) await flush();
    expect(signals.has('long')).toBe(true);
    breaks.resolve();
    const result = await handle.result;
    expect(signals.get('long')?.aborted).toBe(true);
    expect(result.status).toBe('FAILED');
    expect(result.halted?.kind).toBe('fail_fast');
    expect(result.nodes.bad?.status).toBe('FAILED');
    expect(result.nodes.long?.status).toBe('FAILED');
    expect(result.nodes.long?.report?.termination.reason).toBe('cancelled');
    expect(result.nodes.afterLong).toMatchObject({ status: 'SKIPPED', reason: { kind: 'fail_fast', node: 'bad' } });
  }, T);

  it('skips a node whose when is false, and its dependents, with reason condition; the workflow still succeeds', async () => {
    const seen: unknown[] = [];
    const wf = defineWorkflow({
      id: 'cond',
      nodes: {
        write: { agent: echo('writer') },
        notify: { agent: echo('notifier'), needs: ['write'], when: ({ results }) => (seen.push(results.write.status), false) },
        archive: { agent: echo('archive'), needs: ['notify'] },
        thrower: { agent: echo('thrower'), when: () => { throw new Error('cannot decide'); } },
      },
    });
    const result = await new Orchestrator().runWorkflow(wf, 'x');
    expect(seen).toEqual(['SUCCESS']);
    expect(result.nodes.notify).toMatchObject({ status: 'SKIPPED', reason: { kind: 'condition' } });
    expect(result.nodes.archive).toMatchObject({ status: 'SKIPPED', reason: { kind: 'condition', node: 'notify' } });
    expect(result.nodes.thrower).toMatchObject({ status: 'FAILED', error: { message: 'cannot decide' } });
    expect(result.status).toBe('FAILED');
    const clean = defineWorkflow({ id: 'c2', nodes: { a: { agent: echo('a') }, b: { agent: echo('b'), needs: ['a'], when: () => false } } });
    expect((await new Orchestrator().runWorkflow(clean, 1)).status).toBe('SUCCESS');
  }, T);

  it('fails a node whose task throws, before any run, and skips its dependents', async () => {
    const wf = defineWorkflow({
      id: 'task-throws',
      nodes: {
        a: { agent: echo('a'), task: () => { throw new Error('no task today'); } },
        b: { agent: echo('b'), needs: ['a'] },
        fan: { agent: echo('fan'), each: () => 'not an array' as never },
      },
    });
    const result = await new Orchestrator().runWorkflow(wf, 'x');
    expect(result.nodes.a).toMatchObject({ status: 'FAILED', error: { message: 'no task today' } });
    expect(result.nodes.a?.report).toBeUndefined();
    expect(result.nodes.b).toMatchObject({ status: 'SKIPPED', reason: { kind: 'dependency_failed', node: 'a' } });
    expect(result.nodes.fan).toMatchObject({ status: 'FAILED', error: { code: 'OAO_ERR_INVALID_ARGUMENT' } });
  }, T);

  it('bounds fan-out and every node run by maxConcurrency; each [] is SUCCESS with no reports; a failed item fails the node', async () => {
    let inFlight = 0;
    let peak = 0;
    const slow = {
      name: 'slow',
      async invoke(item: number) {
        inFlight += 1;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 1));
        inFlight -= 1;
        if (item === 7) throw Object.assign(new Error('item 7'), { retryable: false });
        return { output: item * 2 };
      },
    };
    const wf = defineWorkflow({
      id: 'fan',
      nodes: {
        many: { agent: slow, each: () => Array.from({ length: 12 }, (_, i) => i) },
        more: { agent: slow, each: () => [100, 101, 102, 103, 104] },
        none: { agent: slow, each: () => [] },
      },
    });
    const result = await new Orchestrator().runWorkflow(wf, null, { maxConcurrency: 3 });
    expect(peak).toBe(3);
    expect(result.nodes.many?.status).toBe('FAILED');
    expect(result.nodes.many?.reports).toHaveLength(12);
    expect(result.nodes.many?.reports?.[7]?.status).toBe('FAILED');
    expect(result.nodes.many?.reports?.[8]?.finalOutput).toBe(16);
    expect(result.nodes.more?.reports?.map((r) => r.finalOutput)).toEqual([200, 202, 204, 206, 208]);
    expect(result.nodes.none).toEqual({ status: 'SUCCESS', reports: [] });
  }, T);

  it('closes the queued runs of a fan-out node when fail-fast halts: every item still has a report', async () => {
    const items = {
      name: 'items',
      invoke: (item: number) => {
        if (item === 0) throw Object.assign(new Error('first item broke'), { retryable: false });
        return { output: item };
      },
    };
    const wf = defineWorkflow({ id: 'ff-fan', nodes: { fan: { agent: items, each: () => [0, 1, 2, 3, 4] } } });
    const result = await new Orchestrator().runWorkflow(wf, null, { maxConcurrency: 1, onFailure: 'fail-fast' });
    const reports = result.nodes.fan?.reports ?? [];
    expect(reports).toHaveLength(5);
    expect(reports[0]?.termination.reason).toBe('error');
    for (const report of reports.slice(1)) expect(report).toMatchObject({ status: 'FAILED', totalSteps: 0, termination: { reason: 'cancelled' } });
    expect(result.halted?.kind).toBe('fail_fast');
  }, T);

  it('hands task, each and when a read-only view of the results', async () => {
    const wf = defineWorkflow({
      id: 'read-only',
      nodes: {
        a: { agent: echo('a') },
        b: { agent: echo('b'), needs: ['a'], task: ({ results }) => ((results as Record<string, unknown>).a = 'changed') },
      },
    });
    const result = await new Orchestrator().runWorkflow(wf, 'x');
    expect(result.nodes.b).toMatchObject({ status: 'FAILED', error: { name: 'TypeError' } });
    expect(result.nodes.a?.report?.finalOutput).toBe('x');
  }, T);

  it('narrows the workflow policy per node, never widening it', async () => {
    const loop = { name: 'loop', invoke: (t: unknown) => ({ output: t }), review: () => ({ done: false }) };
    const wf = defineWorkflow({
      id: 'policy',
      nodes: {
        narrow: { agent: loop, policy: { maxSteps: 2 } },
        wide: { agent: loop, policy: { maxSteps: 50 } },
      },
    });
    const result = await new Orchestrator({ policy: { maxSteps: 10 } }).runWorkflow(wf, 'x', { policy: { maxSteps: 4 } });
    expect(result.nodes.narrow?.report).toMatchObject({ totalSteps: 2, termination: { reason: 'policy_violation', rule: 'max_steps' } });
    expect(result.nodes.wide?.report).toMatchObject({ totalSteps: 4, termination: { reason: 'policy_violation', rule: 'max_steps' } });
  }, T);

  it('shares one budget across nodes with the supervisor semantics: pending nodes are SKIPPED with reason budget', async () => {
    const wf = defineWorkflow({
      id: 'budget',
      nodes: {
        a: { agent: echo('a', 60) },
        b: { agent: echo('b', 60), needs: ['a'] },
        c: { agent: echo('c'), needs: ['b'] },
        d: { agent: echo('d'), needs: ['a'] },
      },
    });
    const result = await new Orchestrator().runWorkflow(wf, 'x', { maxConcurrency: 1, budget: { maxTokens: 100 } });
    expect(result.nodes.a?.status).toBe('SUCCESS');
    expect(result.nodes.b?.report?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'shared' });
    expect(result.halted?.kind).toBe('budget');
    expect(result.nodes.c).toMatchObject({ status: 'SKIPPED', reason: { kind: 'budget' } });
    // d could have run after a, but b spent the budget first: d never started.
    expect(result.nodes.d).toMatchObject({ status: 'SKIPPED', reason: { kind: 'budget' } });
    expect(result.status).toBe('FAILED');
  }, T);

  it('times the whole workflow out on the simulated clock: running nodes time out, waiting ones are SKIPPED (budget)', async () => {
    const clock = new SimulatedClock();
    const wf = defineWorkflow({
      id: 'slow',
      nodes: { hang: { agent: { name: 'hang', invoke: () => new Promise(() => {}) } }, after: { agent: echo('after'), needs: ['hang'] } },
    });
    const handle = new Orchestrator({ clock, store: false }).startWorkflow(wf, 'x', { budget: { timeoutMs: 500 } });
    for (let i = 0; i < 10 && handle.nodes().hang !== 'running'; i++) await flush();
    expect(handle.nodes().hang).toBe('running');
    clock.increment(500);
    const result = await handle.result;
    expect(result.nodes.hang?.report?.termination).toMatchObject({ reason: 'timeout' });
    expect(result.nodes.hang?.report?.termination.message).toMatch(/workflow exceeded its time limit of 500 ms/);
    expect(result.nodes.after).toMatchObject({ status: 'SKIPPED', reason: { kind: 'budget' } });
    expect(result.executionTimeMs).toBe(500);
  }, T);

  it('records every node run in the orchestrator store before the result is handed out', async () => {
    const store = createMemoryStore();
    const wf = defineWorkflow({ id: 'stored', nodes: { a: { agent: echo('a') }, b: { agent: echo('b'), needs: ['a'], each: () => [1, 2] } } });
    const result = await new Orchestrator({ store }).runWorkflow(wf, 'x');
    const ids = [result.nodes.a?.report?.executionId, ...(result.nodes.b?.reports ?? []).map((r) => r.executionId)];
    expect(ids).toHaveLength(3);
    for (const id of ids) {
      const events = store.events(id as string);
      expect(events[events.length - 1]?.type).toBe('EXECUTION_COMPLETE');
    }
  }, T);

  it('cancels: running nodes end cancelled, waiting ones are SKIPPED with reason cancelled', async () => {
    const gates = createGates();
    const signals = new Map<string, AbortSignal>();
    const wf = defineWorkflow({ id: 'cancel', nodes: { a: { agent: gated(gates, 'a', signals) }, b: { agent: echo('b'), needs: ['a'] } } });
    const controller = new AbortController();
    const handle = new Orchestrator().startWorkflow(wf, 'x', { signal: controller.signal });
    for (let i = 0; i < 10 && !signals.has('a'); i++) await flush();
    controller.abort('user left');
    const result = await handle.result;
    expect(signals.get('a')?.aborted).toBe(true);
    expect(result.nodes.a?.report?.termination).toMatchObject({ reason: 'cancelled', message: 'user left' });
    expect(result.nodes.b).toMatchObject({ status: 'SKIPPED', reason: { kind: 'cancelled' } });
    expect(result.halted).toEqual({ kind: 'cancelled', reason: 'user left' });
  }, T);

  it('emits schema-valid workflow events on the handle and the orchestrator; node runs reach orch.events$', async () => {
    const orch = new Orchestrator();
    const wf = defineWorkflow({
      id: 'events',
      nodes: { a: { agent: echo('a') }, b: { agent: failing('b'), needs: ['a'] }, c: { agent: echo('c'), needs: ['b'] }, d: { agent: echo('d'), needs: ['a'], when: () => false } },
    });
    const fromOrch: WorkflowEvent[] = [];
    const runEvents: OaoEvent[] = [];
    orch.workflowEvents$.subscribe((e) => fromOrch.push(e));
    orch.events$.subscribe((e) => runEvents.push(e));
    const handle = orch.startWorkflow(wf, 'x');
    const events: WorkflowEvent[] = [];
    let completed = false;
    handle.events$.subscribe({ next: (e) => events.push(e), complete: () => (completed = true) });
    const result = await handle.result;
    expect(completed).toBe(true);
    expect(fromOrch).toEqual(events);
    events.forEach((event, index) => {
      workflowEventSchema.parse(JSON.parse(JSON.stringify(event)));
      expect(event.seq).toBe(index);
      expect(event.workflowRunId).toBe(result.workflowRunId);
    });
    const lifecycle = events.filter((e) => e.type !== 'RUN_EVENT').map((e) => `${e.type}${'node' in e.payload ? ` ${e.payload.node}` : ''}`);
    expect(lifecycle).toEqual([
      'WORKFLOW_START',
      'NODE_READY a',
      'NODE_START a',
      'NODE_COMPLETE a',
      'NODE_READY b',
      'NODE_START b',
      'NODE_COMPLETE b',
      'NODE_SKIPPED d',
      'NODE_SKIPPED c',
      'WORKFLOW_COMPLETE',
    ]);
    const wrapped = events.filter((e) => e.type === 'RUN_EVENT');
    expect(wrapped.map((e) => e.payload.node)).toEqual(expect.arrayContaining(['a', 'b']));
    expect(wrapped.every((e) => e.payload.item === null)).toBe(true);
    expect(runEvents.filter((e) => e.type === 'EXECUTION_COMPLETE')).toHaveLength(2);
    expect(wrapped.map((e) => e.payload.event)).toEqual(runEvents);
  }, T);
});

describe('the workflow statechart', () => {
  it('is a real XState machine; its node actors and their runs show in the inspector', async () => {
    const inspected: InspectionEvent[] = [];
    const orch = new Orchestrator({ inspect: (e) => inspected.push(e) });
    const wf = defineWorkflow({ id: 'seen', nodes: { a: { agent: echo('a') }, b: { agent: echo('b'), needs: ['a'] } } });
    expect(wf.machine.id).toBe('seen');
    expect(Object.keys(wf.machine.root.states)).toEqual(['idle', 'running', 'done']);
    const result = await orch.runWorkflow(wf, 'x');
    const snapshots = inspected.filter((e): e is Extract<InspectionEvent, { type: '@xstate.snapshot' }> => e.type === '@xstate.snapshot');
    const nodeStates = snapshots.filter((e) => idOf(e.actorRef) === 'node.b').map((e) => (e.snapshot as { value?: unknown }).value);
    expect(nodeStates).toEqual(expect.arrayContaining(['waiting', 'running', 'succeeded']));
    const workflowStates = snapshots.filter((e) => idOf(e.actorRef) === result.workflowRunId).map((e) => (e.snapshot as { value?: unknown }).value);
    expect(workflowStates).toEqual(expect.arrayContaining(['running', 'done']));
    const runIds = [result.nodes.a?.report?.executionId, result.nodes.b?.report?.executionId];
    for (const id of runIds) expect(inspected.some((e) => e.type === '@xstate.actor' && idOf(e.actorRef) === id)).toBe(true);
  }, T);

  it('runs on its own actor: createActor(wf.machine) with a prepared run is what startWorkflow drives', async () => {
    const wf = defineWorkflow({ id: 'direct', nodes: { a: { agent: echo('a') } } });
    const handle = new Orchestrator().startWorkflow(wf, 'x');
    expect(handle.actor.logic).toBe(wf.machine);
    const result = await handle.result;
    expect(handle.actor.getSnapshot().status).toBe('done');
    expect(handle.actor.getSnapshot().output).toEqual(result);
    void createActor;
  }, T);

  it('schedules a random 1,000-node DAG to the end with every node accounted for', async () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const agent = { name: 'noop', invoke: () => ({ output: 1 }) };
    const nodes: Record<string, { agent: typeof agent; needs: string[]; task: () => number }> = {};
    for (let i = 0; i < 1000; i++) {
      const needs = new Set<string>();
      for (let k = 0; k < 3 && i > 0; k++) if (random() < 0.7) needs.add(`n${Math.floor(random() * i)}`);
      nodes[`n${i}`] = { agent, needs: [...needs], task: () => i };
    }
    const wf = defineWorkflow({ id: 'big', nodes });
    const result = await new Orchestrator().runWorkflow(wf, null, { maxConcurrency: 16 });
    expect(result.counts).toEqual({ total: 1000, succeeded: 1000, failed: 0, skipped: 0 });
  }, 30_000);
});

describe('decisions by execution id reach the runs a workflow starts', () => {
  it('a node run waiting for approval is in orch.pendingApprovals(), and orch.approve() lets it go on', async () => {
    const sent: unknown[] = [];
    const mailer = {
      name: 'mailer',
      invoke: async (_task: unknown, ctx: AgentContext) => ({ output: await ctx.callTool('send', { to: 'ops' }) }),
    };
    const wf = defineWorkflow({ id: 'notify', nodes: { draft: { agent: (task: string) => `draft of ${task}` }, send: { agent: mailer, needs: ['draft'], tools: { send: (args: unknown) => (sent.push(args), 'sent') } } } });
    const orch = new Orchestrator({ policy: { tools: { approve: ['send'] } } });
    const handle = orch.startWorkflow(wf, 'news');
    while (orch.pendingApprovals().length === 0) await flush();
    const [pending] = orch.pendingApprovals();
    expect(pending).toMatchObject({ agentName: 'mailer', tool: 'send' });
    await orch.approve(pending!.executionId, pending!.callId, { by: 'ops' });
    const result = await handle.result;
    expect(result.status).toBe('SUCCESS');
    expect(result.nodes.send).toMatchObject({ status: 'SUCCESS', report: { finalOutput: 'sent' } });
    expect(sent).toEqual([{ to: 'ops' }]);
    expect(orch.pendingApprovals()).toEqual([]);
  }, T);
});
