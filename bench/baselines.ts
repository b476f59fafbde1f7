import { assign, fromCallback, fromPromise, setup, type EventObject } from 'xstate';

/**
 * The baselines the governed runtime is compared with: the seed's trivial agent, and the lifecycle
 * written by hand with plain XState v5, the way a competent XState user would write it without any
 * governance (no policy, no ledger, no events, no deadline).
 */

export const TASK = 'Explain AI orchestration';

/** What the baselines call: the seed's agent shape, sync or async. */
export interface TrivialAgent {
  invoke(task: string): { output: string } | Promise<{ output: string }>;
}

/** The seed's DummyAgent, unchanged. */
export class DummyAgent {
  invoke(task: string): { output: string } {
    return { output: 'Processed: ' + task };
  }
}

interface BareInput {
  readonly agent: TrivialAgent;
  readonly task: string;
}

interface BareContext extends BareInput {
  /** The agent's output once the call is done. */
  readonly output: string;
}

/**
 * init -> plan -> execute -> review -> done, with eventless `always` edges through the transient
 * states and the agent called once in `execute` by an invoked `fromPromise` actor (so a sync agent
 * costs a promise, like any async-capable design). Await it with `toPromise(actor)`.
 */
export const bareLifecycleMachine = setup({
  types: { context: {} as BareContext, input: {} as BareInput, output: {} as string },
  actors: {
    callAgent: fromPromise(async ({ input }: { input: BareInput }) => input.agent.invoke(input.task)),
  },
}).createMachine({
  id: 'bareLifecycle',
  context: ({ input }) => ({ agent: input.agent, task: input.task, output: '' }),
  initial: 'init',
  output: ({ context }) => context.output,
  states: {
    init: { always: 'plan' },
    plan: { always: 'execute' },
    execute: {
      invoke: {
        src: 'callAgent',
        input: ({ context }) => ({ agent: context.agent, task: context.task }),
        onDone: { target: 'review', actions: assign({ output: ({ event }) => event.output.output }) },
        onError: 'failed',
      },
    },
    review: { always: 'done' },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
});

type BareSyncEvent = { type: 'AGENT.DONE'; output: string } | { type: 'AGENT.ERROR'; error: unknown };

/**
 * The same lifecycle for synchronous agents: the call is a `fromCallback` actor that sends its
 * result back before `start()` returns, so the actor is done without the event loop. This is the
 * floor for `runSync()` (whose agent call is a `fromCallback` actor too).
 */
export const bareSyncLifecycleMachine = setup({
  types: {
    context: {} as BareContext,
    input: {} as BareInput,
    output: {} as string,
    events: {} as BareSyncEvent,
  },
  actors: {
    callAgent: fromCallback<EventObject, BareInput>(({ input, sendBack }) => {
      try {
        const result = input.agent.invoke(input.task) as { output: string };
        sendBack({ type: 'AGENT.DONE', output: result.output } satisfies BareSyncEvent);
      } catch (error) {
        sendBack({ type: 'AGENT.ERROR', error } satisfies BareSyncEvent);
      }
    }),
  },
}).createMachine({
  id: 'bareSyncLifecycle',
  context: ({ input }) => ({ agent: input.agent, task: input.task, output: '' }),
  initial: 'init',
  output: ({ context }) => context.output,
  states: {
    init: { always: 'plan' },
    plan: { always: 'execute' },
    execute: {
      invoke: { src: 'callAgent', input: ({ context }) => ({ agent: context.agent, task: context.task }) },
      on: {
        'AGENT.DONE': { target: 'review', actions: assign({ output: ({ event }) => event.output }) },
        'AGENT.ERROR': 'failed',
      },
    },
    review: { always: 'done' },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
});
