import { createActor, enqueueActions, fromCallback, setup, type AnyActorRef, type EventObject } from 'xstate';
import type { WorkflowResult, WorkflowRun } from './WorkflowRun.js';

export interface WorkflowNodeInput {
  readonly run: WorkflowRun;
  readonly node: string;
}

export type WorkflowNodeEvent = { readonly type: 'CHECK' } | { readonly type: 'NODE.SETTLED' };

/**
 * A node's runs: started when the node is ready, each run a child actor of this one once the
 * ready queue gives it a slot. Stopping it (the node or the workflow goes away) cancels its runs.
 */
export const nodeRunsLogic = fromCallback<EventObject, WorkflowNodeInput>(({ input, self, sendBack, receive }) => {
  const { run, node } = input;
  receive((event) => run.runEvent(event.type, event));
  run.startNode(node, { self, settle: () => sendBack({ type: 'NODE.SETTLED' }) });
  return () => run.releaseNode(node);
});

/**
 * One node of a workflow. It waits until every node it needs has settled; its guarded edges
 * decide between `skipped` (a need failed or was skipped, the workflow halted, or its `when` is
 * false), `failed` (its `when` threw) and `running`. While running, its runs go through the
 * workflow's ready queue; it ends `succeeded` when every run succeeded, else `failed`.
 */
export const workflowNodeMachine = setup({
  types: {
    context: {} as WorkflowNodeInput,
    input: {} as WorkflowNodeInput,
    events: {} as WorkflowNodeEvent,
    output: '' as 'SUCCESS' | 'FAILED' | 'SKIPPED',
  },
  actors: {
    nodeRuns: nodeRunsLogic,
  },
  guards: {
    /** A node it needs FAILED or was SKIPPED, or the workflow halted. */
    blocked: ({ context }) => context.run.blockedReason(context.node) !== undefined,
    /** `needs`: some node it needs has not finished yet. */
    needsPending: ({ context }) => context.run.needsPending(context.node),
    /** `when` threw (or returned something other than a boolean). */
    conditionFailed: ({ context }) => 'error' in context.run.condition(context.node),
    /** `when` returned false. */
    conditionFalse: ({ context }) => {
      const condition = context.run.condition(context.node);
      return 'value' in condition && !condition.value;
    },
    runsSucceeded: ({ context }) => context.run.nodeSucceeded(context.node),
    /** A resumed workflow's log had settled the node with this status before the crash. */
    recovered: ({ context }, params: { status: 'SUCCESS' | 'FAILED' | 'SKIPPED' }) => context.run.recoveredStatus(context.node) === params.status,
  },
  actions: {
    skip: ({ context }) => context.run.skip(context.node),
    ready: ({ context }) => context.run.ready(context.node),
    failBeforeStart: ({ context }) => context.run.failBeforeStart(context.node),
    complete: ({ context }, params: { status: 'SUCCESS' | 'FAILED' }) => context.run.complete(context.node, params.status),
  },
}).createMachine({
  id: 'workflowNode',
  context: ({ input }) => input,
  initial: 'waiting',
  output: ({ context }) => context.run.statusOf(context.node) as 'SUCCESS' | 'FAILED' | 'SKIPPED',
  states: {
    waiting: {
      on: {
        CHECK: [
          { guard: { type: 'recovered', params: { status: 'SUCCESS' } }, target: 'succeeded' },
          { guard: { type: 'recovered', params: { status: 'FAILED' } }, target: 'failed' },
          { guard: { type: 'recovered', params: { status: 'SKIPPED' } }, target: 'skipped' },
          { guard: 'blocked', target: 'skipped' },
          { guard: 'needsPending' },
          { guard: 'conditionFailed', target: 'failed', actions: 'failBeforeStart' },
          { guard: 'conditionFalse', target: 'skipped' },
          { target: 'running' },
        ],
      },
    },
    running: {
      entry: 'ready',
      invoke: {
        src: 'nodeRuns',
        input: ({ context }) => context,
      },
      on: {
        'NODE.SETTLED': [{ guard: 'runsSucceeded', target: 'succeeded' }, { target: 'failed' }],
      },
    },
    succeeded: { type: 'final', entry: { type: 'complete', params: { status: 'SUCCESS' } } },
    failed: { type: 'final', entry: { type: 'complete', params: { status: 'FAILED' } } },
    skipped: { type: 'final', entry: 'skip' },
  },
});

export type WorkflowNodeMachine = typeof workflowNodeMachine;

export interface WorkflowMachineInput {
  readonly run: WorkflowRun;
}

export type WorkflowMachineEvent =
  | { readonly type: 'START' }
  | { readonly type: 'CANCEL'; readonly reason: string }
  | { readonly type: `xstate.done.actor.${string}`; readonly output?: unknown }
  | { readonly type: `xstate.error.actor.${string}`; readonly error?: unknown };

/** The prefix of a node actor's id: `xstate.done.actor.node.<name>` tells the workflow that node settled. */
export const NODE_ACTOR_PREFIX = 'node.';
const NODE_DONE = `xstate.done.actor.${NODE_ACTOR_PREFIX}`;
const NODE_ERROR = `xstate.error.actor.${NODE_ACTOR_PREFIX}`;

/**
 * Creates the node actors when the workflow starts running, as children of the workflow actor;
 * when the workflow actor stops (or leaves `running` early), it ends every run and node.
 */
const nodeScopeLogic = fromCallback<EventObject, { readonly run: WorkflowRun; readonly workflow: AnyActorRef }>(({ input }) => {
  const { run, workflow } = input;
  run.spawnNodes((name) => createActor(workflowNodeMachine, { id: `${NODE_ACTOR_PREFIX}${name}`, parent: workflow, input: { run, node: name } }));
  return () => run.dispose();
});

/**
 * The statechart of a workflow: `idle` until started, `running` while its node actors (one
 * `workflowNode` machine per node, children of this actor) decide their own fate, `done` with the
 * result as output once every node has settled. When a node settles, the nodes that need it are
 * told to look again. Cancelling skips what has not started and cancels what runs.
 */
export function createWorkflowMachine(id: string) {
  return setup({
    types: {
      context: {} as WorkflowMachineInput,
      input: {} as WorkflowMachineInput,
      events: {} as WorkflowMachineEvent,
      output: {} as WorkflowResult,
    },
    actors: {
      nodeScope: nodeScopeLogic,
    },
    guards: {
      allSettled: ({ context }) => context.run.allSettled,
    },
    actions: {
      begin: ({ context }) => context.run.begin(),
      cancel: ({ context, event }) => context.run.cancel((event as { reason: string }).reason),
      /**
       * A node settled: the nodes that need it look again (their guards decide), then fail-fast
       * applies. CHECK goes out with `sendTo`, so a dependent's runs start after this step, not
       * inside it.
       */
      nodeSettled: enqueueActions(({ context, event, enqueue }) => {
        const name = event.type.slice(NODE_DONE.length);
        for (const dependent of context.run.waitingDependents(name)) enqueue.sendTo(dependent, { type: 'CHECK' });
        enqueue(() => context.run.afterNode(name));
      }),
      nodeCrashed: ({ context, event }) => context.run.crashNode(event.type.slice(NODE_ERROR.length), (event as { error?: unknown }).error),
      complete: ({ context }) => context.run.complete(),
    },
  }).createMachine({
    id,
    context: ({ input }) => input,
    initial: 'idle',
    output: ({ context }) => context.run.result as WorkflowResult,
    states: {
      idle: {
        on: {
          START: 'running',
          // Announced first, so that the stream reads START, HALTED, then the skipped nodes.
          CANCEL: { target: 'running', actions: ['begin', 'cancel'] },
        },
      },
      running: {
        entry: 'begin',
        invoke: {
          src: 'nodeScope',
          input: ({ context, self }) => ({ run: context.run, workflow: self }),
        },
        always: { guard: 'allSettled', target: 'done' },
        on: {
          [`${NODE_DONE}*`]: { actions: 'nodeSettled' },
          // A node machine that failed is a defect; its node still settles, FAILED.
          [`${NODE_ERROR}*`]: { actions: 'nodeCrashed' },
          CANCEL: { actions: 'cancel' },
        },
      },
      done: {
        type: 'final',
        entry: 'complete',
      },
    },
  });
}

export type WorkflowMachine = ReturnType<typeof createWorkflowMachine>;
