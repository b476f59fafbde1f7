import { setup, type DoneActorEvent, type ErrorActorEvent } from 'xstate';
import { runPoolLogic } from '../actors/runPool.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Batch } from '../runtime/Batch.js';

export interface SupervisorInput {
  readonly batch: Batch;
}

export interface SupervisorContext {
  readonly batch: Batch;
}

export type SupervisorEvent =
  | DoneActorEvent<ExecutionReport[], string>
  | ErrorActorEvent<unknown, string>
  | { readonly type: 'START' }
  | { readonly type: 'CANCEL'; readonly reason: string };

/**
 * Supervises a batch of runs: `idle` until started, then `supervising` while its pool actor runs
 * the jobs as child run actors (never more than `maxConcurrency` alive at once), then `done`
 * with one report per job, in submission order, as its output. Cancelling at any point stops the
 * running children and closes the queued jobs without starting them.
 */
export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    input: {} as SupervisorInput,
    events: {} as SupervisorEvent,
    output: [] as ExecutionReport[],
  },
  actors: {
    pool: runPoolLogic,
  },
  actions: {
    begin: ({ context }) => context.batch.begin(),
    cancel: ({ context, event }) => {
      context.batch.begin();
      context.batch.halt('cancelled', (event as { reason: string }).reason);
    },
    crash: ({ context, event }) => context.batch.crashAll((event as ErrorActorEvent).error),
    complete: ({ context }) => context.batch.complete(),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({ batch: input.batch }),
  initial: 'idle',
  output: ({ context }) => context.batch.reports,
  states: {
    // Waits for START for the same reason the run lifecycle does: work started while XState
    // resolves the initial state would begin before the entry actions that announce it.
    idle: {
      on: {
        START: 'supervising',
        CANCEL: { target: 'supervising', actions: 'cancel' },
      },
    },
    supervising: {
      entry: 'begin',
      invoke: {
        src: 'pool',
        input: ({ context }) => ({ batch: context.batch }),
        onDone: 'done',
        onError: { target: 'done', actions: 'crash' },
      },
      on: {
        CANCEL: { actions: 'cancel' },
      },
    },
    done: {
      type: 'final',
      entry: 'complete',
    },
  },
});

export type SupervisorMachine = typeof supervisorMachine;
