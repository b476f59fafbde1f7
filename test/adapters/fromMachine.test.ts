import { describe, expect, it } from 'vitest';
import { assign, createActor, emit, fromPromise, setup, toPromise } from 'xstate';
import { Orchestrator, type OaoEvent, type ToolSet } from '../../src/index.js';
import { fromMachine, oaoTool, type MachineAgentInput, type OaoMachineEmitted, type OaoToolReply } from '../../src/adapters/machine/index.js';
import { callCap, deferred, expectValidEvents, expectValidReport, settlesAtOnce } from '../helpers.js';

function recording(orch: Orchestrator): OaoEvent[] {
  const events: OaoEvent[] = [];
  orch.events$.subscribe((e) => events.push(e));
  return events;
}

/** Searches with the governed tool actor, reports its token spend, answers. */
const researcher = setup({
  types: {
    input: {} as MachineAgentInput,
    context: {} as { question: string; notes: string; error: string | null },
    output: {} as string,
    emitted: {} as OaoMachineEmitted,
  },
  actors: { 'oao.tool': oaoTool },
}).createMachine({
  id: 'researcher',
  context: ({ input }) => ({ question: String(input.task), notes: '', error: null }),
  initial: 'searching',
  states: {
    searching: {
      invoke: {
        src: 'oao.tool',
        input: ({ context }) => ({ name: 'search', args: { q: context.question } }),
        onDone: { target: 'writing', actions: assign({ notes: ({ event }) => String(event.output) }) },
        onError: { target: 'failed', actions: assign({ error: ({ event }) => (event.error as Error).message }) },
      },
    },
    writing: {
      entry: emit({ type: 'oao.usage', usage: { input: 30, output: 12 } }),
      always: 'done',
    },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => (context.error === null ? `Answer from ${context.notes}` : `Could not search: ${context.error}`),
});

function counted(): { tools: ToolSet; bodies: { count: number } } {
  const bodies = { count: 0 };
  return {
    bodies,
    tools: {
      search: ({ q }: { q: string }) => {
        bodies.count += 1;
        return `notes on ${q}`;
      },
    },
  };
}

describe('fromMachine: a statechart as a governed agent', () => {
  it('runs the machine as the step; its output is the run’s output, its tool calls and usage are governed', async () => {
    const { tools, bodies } = counted();
    const orch = new Orchestrator();
    const events = recording(orch);
    const report = await orch.run({ agent: fromMachine(researcher), task: 'XState', tools });
    expectValidReport(report);
    expectValidEvents(events);
    expect(report).toMatchObject({
      status: 'SUCCESS',
      agentName: 'researcher',
      finalOutput: 'Answer from notes on XState',
      tokenUsage: { input: 30, output: 12, total: 42 },
      toolUsage: { total: 1, byTool: { search: 1 } },
    });
    expect(bodies.count).toBe(1);
    expect(events.find((e) => e.type === 'TOOL_CALL')?.payload).toMatchObject({ tool: 'search', args: { q: 'XState' } });
    expect(events.find((e) => e.type === 'TOKEN_USAGE')?.payload).toMatchObject({ source: 'reported', total: 42 });
  });

  it('a denied tool call reaches the machine as an error, its body never runs, and the run still fails', async () => {
    const { tools, bodies } = counted();
    const report = await new Orchestrator({ policy: { tools: { deny: ['search'] } } }).run({ agent: fromMachine(researcher), task: 'x', tools });
    expect(bodies.count).toBe(0);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });
  });

  it('usage past the budget stops the machine and the work of its children', async () => {
    let childAborted = false;
    const spender = setup({
      types: { emitted: {} as OaoMachineEmitted },
      actors: {
        // Never finishes on its own: only stopping the machine can end it.
        work: fromPromise(
          ({ signal }) =>
            new Promise<void>(() => {
              signal.addEventListener('abort', () => (childAborted = true), { once: true });
            }),
        ),
      },
    }).createMachine({
      initial: 'working',
      states: {
        working: {
          type: 'parallel',
          states: {
            spend: { entry: emit({ type: 'oao.usage', usage: 500 }) },
            slow: { invoke: { src: 'work', onDone: '#done' } },
          },
        },
        done: { id: 'done', type: 'final' },
      },
    });
    const report = await new Orchestrator({ policy: { maxTokens: 100 } }).run({ agent: fromMachine(spender), task: 'x' });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(500);
    expect(childAborted).toBe(true);
  });

  it('cancelling the run stops the machine', async () => {
    let childAborted = false;
    const waitingStarted = deferred();
    const waiting = setup({
      actors: {
        wait: fromPromise(
          ({ signal }) =>
            new Promise<void>(() => {
              signal.addEventListener('abort', () => (childAborted = true), { once: true });
              waitingStarted.resolve();
            }),
        ),
      },
    }).createMachine({ initial: 'waiting', states: { waiting: { invoke: { src: 'wait' } } } });
    const handle = new Orchestrator().start({ agent: fromMachine(waiting), task: 'x' });
    await waitingStarted.promise;
    handle.cancel('no more waiting');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'no more waiting' });
    expect(childAborted).toBe(true);
  });

  it('tool calls requested by emitted events get their result back as events', async () => {
    const { tools } = counted();
    const eventStyle = setup({
      types: { context: {} as { results: string[] }, events: {} as OaoToolReply, emitted: {} as OaoMachineEmitted },
    }).createMachine({
      context: { results: [] },
      initial: 'asking',
      states: {
        asking: {
          entry: [emit({ type: 'oao.tool', name: 'search', args: { q: 'a' }, id: 'first' }), emit({ type: 'oao.tool', name: 'nope', args: {} })],
          on: {
            'oao.tool.done': { actions: assign({ results: ({ context, event }) => [...context.results, `${event.id}:${String(event.output)}`] }) },
            'oao.tool.error': { actions: assign({ results: ({ context, event }) => [...context.results, `${event.id}:${(event.error as Error).name}`] }) },
          },
          always: { guard: ({ context }) => context.results.length === 2, target: 'done' },
        },
        done: { type: 'final' },
      },
      output: ({ context }) => [...context.results].sort(),
    });
    const report = await new Orchestrator().run({ agent: fromMachine(eventStyle), task: 'x', tools });
    expect(report).toMatchObject({ status: 'SUCCESS', finalOutput: ['first:notes on a', 't1:OaoError'], toolUsage: { total: 1 } });
  });

  it('an error inside the machine fails the run with that error', async () => {
    const broken = setup({
      actions: {
        explode: () => {
          throw new Error('bad state');
        },
      },
    }).createMachine({ initial: 'a', states: { a: { entry: 'explode' } } });
    const report = await new Orchestrator().run({ agent: fromMachine(broken, { name: 'broken' }), task: 'x' });
    expect(report).toMatchObject({ status: 'FAILED', agentName: 'broken', termination: { reason: 'error', message: 'bad state' } });
  });

  it('composes with review: one machine run per step, maxSteps bounds it', async () => {
    const counter = setup({ types: { input: {} as MachineAgentInput } }).createMachine({
      context: ({ input }) => ({ step: input.step, remaining: input.budget.steps.remaining }),
      initial: 'done',
      states: { done: { type: 'final' } },
      output: ({ context }) => context,
    });
    const reviews = callCap(10, 'The review that never says done');
    const agent = fromMachine(counter, { review: () => (reviews.tick(), { done: false }) });
    const report = await new Orchestrator({ policy: { maxSteps: 3 } }).run({ agent, task: 'x' });
    expect(report.totalSteps).toBe(3);
    expect(report.finalOutput).toEqual({ step: 3, remaining: 0 });
    expect(report.termination.rule).toBe('max_steps');
  });

  it('maps input and output, and a machine without output gives null', async () => {
    const echo = setup({ types: { input: {} as { text: string } } }).createMachine({
      context: ({ input }) => input,
      initial: 'done',
      states: { done: { type: 'final' } },
      output: ({ context }) => context.text,
    });
    const mapped = fromMachine(echo, { input: ({ task }) => ({ text: String(task) }), output: (text: string) => text.toUpperCase() });
    expect((await new Orchestrator().run({ agent: mapped, task: 'hi' })).finalOutput).toBe('HI');
    const silent = setup({}).createMachine({ initial: 'done', states: { done: { type: 'final' } } });
    expect((await new Orchestrator().run({ agent: fromMachine(silent), task: 'hi' })).finalOutput).toBeNull();
  });

  it('the oao.tool placeholder rejects outside a run, so the machine can be tested on its own', async () => {
    const actor = createActor(researcher, { input: { task: 'x', step: 1, attempt: 1, executionId: 'e', budget: {} as never } }).start();
    await expect(toPromise(actor)).resolves.toMatch(/Could not search: The "oao.tool" actor runs only inside a governed run/);
    expect(() => fromMachine({} as never)).toThrow(/Expected an XState machine/);
  });
});
