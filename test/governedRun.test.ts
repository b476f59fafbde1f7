import { describe, expect, it } from 'vitest';
import { assign, createActor, setup, type InspectionEvent } from 'xstate';
import {
  Orchestrator,
  createGovernedRun,
  createGovernedWorkflow,
  defineWorkflow,
  governedRun,
  governedWorkflow,
  type AgentContext,
  type ExecutionReport,
  type OaoEvent,
  type WorkflowEvent,
  type WorkflowResult,
} from '../src/index.js';
import { createGates, expectValidReport, flush } from './helpers.js';

const T = 10_000;

/** An agent that waits for its gate and records whether its signal aborted. */
function waiter(gates: ReturnType<typeof createGates>, name: string, signals: Map<string, AbortSignal>, outcome: 'succeed' | 'fail' = 'succeed') {
  return {
    name,
    async invoke(task: unknown, ctx: AgentContext) {
      signals.set(name, ctx.signal);
      await Promise.race([
        gates.gate(name).promise,
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })),
      ]);
      if (outcome === 'fail') throw Object.assign(new Error(`${name} failed`), { retryable: false });
      return { output: `${name}: ${String(task)}` };
    },
  };
}

/** A user's machine that races two governed runs and keeps the first SUCCESS. */
function raceMachine(logic: typeof governedRun, agents: { a: unknown; b: unknown }) {
  return setup({
    types: { context: {} as { winner: ExecutionReport | null; failures: number } },
    actors: { governedRun: logic },
  }).createMachine({
    context: { winner: null, failures: 0 },
    initial: 'racing',
    states: {
      racing: {
        invoke: [
          {
            id: 'a',
            src: 'governedRun',
            input: { agent: agents.a as never, task: 'race' },
            onDone: [
              { guard: ({ event }) => event.output.status === 'SUCCESS', target: 'won', actions: assign({ winner: ({ event }) => event.output }) },
              { actions: assign({ failures: ({ context }) => context.failures + 1 }) },
            ],
          },
          {
            id: 'b',
            src: 'governedRun',
            input: { agent: agents.b as never, task: 'race' },
            onDone: [
              { guard: ({ event }) => event.output.status === 'SUCCESS', target: 'won', actions: assign({ winner: ({ event }) => event.output }) },
              { actions: assign({ failures: ({ context }) => context.failures + 1 }) },
            ],
          },
        ],
        always: { guard: ({ context }) => context.failures === 2, target: 'lost' },
      },
      won: { type: 'final' },
      lost: { type: 'final' },
    },
  });
}

describe('governedRun inside a user machine', () => {
  it('races two governed runs and takes the first SUCCESS; the loser is cancelled when the state is left', async () => {
    const gates = createGates();
    const signals = new Map<string, AbortSignal>();
    const orch = new Orchestrator();
    const completes: OaoEvent[] = [];
    orch.on('EXECUTION_COMPLETE', (e) => void completes.push(e));
    // a fails first; the race goes on; b succeeds; c (third, in another race) is cancelled.
    const machine = raceMachine(createGovernedRun(orch), { a: waiter(gates, 'a', signals, 'fail'), b: waiter(gates, 'b', signals) });
    const actor = createActor(machine).start();
    for (let i = 0; i < 10 && signals.size < 2; i++) await flush();
    expect(signals.size).toBe(2);
    gates.gate('a').resolve();
    for (let i = 0; i < 10 && completes.length < 1; i++) await flush();
    expect(actor.getSnapshot().value).toBe('racing');
    expect(actor.getSnapshot().context.failures).toBe(1);
    gates.gate('b').resolve();
    for (let i = 0; i < 10 && actor.getSnapshot().status !== 'done'; i++) await flush();
    expect(actor.getSnapshot().value).toBe('won');
    expect(actor.getSnapshot().context.winner?.finalOutput).toBe('b: race');
    expectValidReport(actor.getSnapshot().context.winner as ExecutionReport);

    // Now a race where the first SUCCESS leaves the state while the other still runs.
    const gates2 = createGates();
    const signals2 = new Map<string, AbortSignal>();
    const completes2: OaoEvent[] = [];
    orch.on('EXECUTION_COMPLETE', (e) => void completes2.push(e));
    const race2 = createActor(raceMachine(createGovernedRun(orch), { a: waiter(gates2, 'fast', signals2), b: waiter(gates2, 'slow', signals2) })).start();
    for (let i = 0; i < 10 && signals2.size < 2; i++) await flush();
    gates2.gate('fast').resolve();
    for (let i = 0; i < 10 && race2.getSnapshot().status !== 'done'; i++) await flush();
    expect(race2.getSnapshot().context.winner?.finalOutput).toBe('fast: race');
    // Leaving `racing` stopped the slow run: its signal aborted and its report says cancelled.
    expect(signals2.get('slow')?.aborted).toBe(true);
    const slowReport = completes2.map((e) => (e as Extract<OaoEvent, { type: 'EXECUTION_COMPLETE' }>).payload.report).find((r) => r.agentName === 'slow');
    expect(slowReport?.status).toBe('FAILED');
    expect(slowReport?.termination.reason).toBe('cancelled');
  }, T);

  it('cancels the run when the parent actor is stopped', async () => {
    const gates = createGates();
    const signals = new Map<string, AbortSignal>();
    const orch = new Orchestrator();
    const reports: ExecutionReport[] = [];
    orch.on('EXECUTION_COMPLETE', (e) => void reports.push(e.payload.report));
    const machine = setup({ actors: { governedRun: createGovernedRun(orch) } }).createMachine({
      initial: 'working',
      states: { working: { invoke: { src: 'governedRun', input: { agent: waiter(gates, 'w', signals), task: 't' }, onDone: 'done' } }, done: { type: 'final' } },
    });
    const actor = createActor(machine).start();
    for (let i = 0; i < 10 && !signals.has('w'); i++) await flush();
    actor.stop();
    expect(signals.get('w')?.aborted).toBe(true);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.termination.reason).toBe('cancelled');
  }, T);

  it('sends the run events through emit, hands an invalid request to onError, and uses the default orchestrator', async () => {
    const seen: string[] = [];
    let failure: unknown;
    const echo = { name: 'echo', invoke: (task: unknown) => ({ output: task }) };
    const machine = setup({ actors: { governedRun } }).createMachine({
      initial: 'one',
      states: {
        one: { invoke: { id: 'run', src: 'governedRun', input: { agent: echo, task: 'hi' }, onDone: 'two' } },
        two: {
          invoke: {
            src: 'governedRun',
            input: { agent: echo, task: undefined as never },
            onError: { target: 'done', actions: ({ event }) => (failure = event.error) },
          },
        },
        done: { type: 'final' },
      },
    });
    const inspected: InspectionEvent[] = [];
    const actor = createActor(machine, { inspect: (e) => inspected.push(e) });
    actor.start();
    for (let i = 0; i < 10 && actor.getSnapshot().status !== 'done'; i++) await flush();
    expect(actor.getSnapshot().value).toBe('done');
    expect(failure).toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'task' } });
    // The run's own lifecycle actor showed up in the inspector, as a child of the invoked actor.
    expect(inspected.some((e) => e.type === '@xstate.snapshot' && (e.snapshot as { value?: unknown }).value === 'TERMINATE')).toBe(true);

    // emit: listeners on the invoked actor get every event of the run.
    const listener = setup({ actors: { governedRun } }).createMachine({
      initial: 'one',
      states: { one: { invoke: { id: 'run', src: 'governedRun', input: { agent: echo, task: 'hey' }, onDone: 'done' } }, done: { type: 'final' } },
    });
    const parent = createActor(listener);
    // The invoked actor exists once the parent is created: listen before starting it.
    parent.getSnapshot().children.run?.on('*', (event) => void seen.push(event.type));
    parent.start();
    for (let i = 0; i < 10 && parent.getSnapshot().status !== 'done'; i++) await flush();
    expect(seen[0]).toBe('EXECUTION_START');
    expect(seen).toContain('STEP_COMPLETE');
    expect(seen[seen.length - 1]).toBe('EXECUTION_COMPLETE');
  }, T);
});

describe('governedWorkflow inside a user machine', () => {
  it('outputs the workflow result, emits its events, and cancels it when the state is left', async () => {
    const echo = { name: 'echo', invoke: (task: unknown) => ({ output: task }) };
    const wf = defineWorkflow({ id: 'inner', nodes: { a: { agent: echo }, b: { agent: echo, needs: ['a'], task: ({ results }) => results.a.finalOutput } } });
    let result: WorkflowResult | undefined;
    const orch = new Orchestrator();
    const machine = setup({ actors: { governedWorkflow: createGovernedWorkflow(orch) } }).createMachine({
      initial: 'working',
      states: {
        working: {
          invoke: { src: 'governedWorkflow', input: { workflow: wf, input: 'in' }, onDone: { target: 'done', actions: ({ event }) => (result = event.output) } },
        },
        done: { type: 'final' },
      },
    });
    const events: WorkflowEvent[] = [];
    orch.workflowEvents$.subscribe((e) => events.push(e));
    const actor = createActor(machine).start();
    for (let i = 0; i < 20 && actor.getSnapshot().status !== 'done'; i++) await flush();
    expect(result?.status).toBe('SUCCESS');
    expect(result?.nodes.b?.report?.finalOutput).toBe('in');
    expect(events[events.length - 1]?.type).toBe('WORKFLOW_COMPLETE');

    const gates = createGates();
    const signals = new Map<string, AbortSignal>();
    const slow = defineWorkflow({ id: 'slow', nodes: { s: { agent: waiter(gates, 's', signals) }, after: { agent: echo, needs: ['s'] } } });
    const finished: WorkflowResult[] = [];
    orch.workflowEvents$.subscribe((e) => {
      if (e.type === 'WORKFLOW_COMPLETE' && e.workflow === 'slow') finished.push(e as never);
    });
    const leaving = setup({ actors: { governedWorkflow } }).createMachine({
      initial: 'working',
      states: { working: { invoke: { src: 'governedWorkflow', input: { workflow: slow } }, on: { LEAVE: 'left' } }, left: { type: 'final' } },
    });
    const user = createActor(leaving).start();
    for (let i = 0; i < 10 && !signals.has('s'); i++) await flush();
    user.send({ type: 'LEAVE' });
    for (let i = 0; i < 10 && signals.get('s')?.aborted !== true; i++) await flush();
    expect(signals.get('s')?.aborted).toBe(true);
  }, T);
});

describe('decisions by execution id reach a governed run in a user machine', () => {
  it('a run waiting for approval is in orch.pendingApprovals(), and orch.approve() lets it go on', async () => {
    const orch = new Orchestrator({ policy: { tools: { approve: ['send'] } } });
    const mailer = { name: 'mailer', invoke: async (_task: unknown, ctx: AgentContext) => ({ output: await ctx.callTool('send', {}) }) };
    const machine = setup({ actors: { governedRun: createGovernedRun(orch) } }).createMachine({
      initial: 'working',
      states: {
        working: { invoke: { src: 'governedRun', input: { agent: mailer, task: 't', tools: { send: () => 'sent' } }, onDone: 'done' } },
        done: { type: 'final' },
      },
    });
    const actor = createActor(machine).start();
    while (orch.pendingApprovals().length === 0) await flush();
    const [pending] = orch.pendingApprovals();
    await orch.approve(pending!.executionId, pending!.callId, { by: 'ops' });
    while (actor.getSnapshot().status !== 'done') await flush();
    expect(orch.pendingApprovals()).toEqual([]);
  }, T);
});
