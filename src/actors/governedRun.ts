import { createActor, type ActorLogic, type ActorSystem, type AnyActorRef, type EventObject, type Snapshot } from 'xstate';
import type { OaoEvent } from '../events/schema.js';
import type { WorkflowEvent } from '../events/workflowSchema.js';
import { agentLifecycleMachine } from '../machines/agentLifecycleMachine.js';
import { Orchestrator } from '../Orchestrator.js';
import type { ExecutionReport } from '../report/schema.js';
import { internalsOf, type OrchestratorInternals } from '../runtime/orchestratorInternals.js';
import { prepareRun, type RunRequest } from '../runtime/prepareRun.js';
import type { RunSession } from '../runtime/RunSession.js';
import type { Workflow } from '../workflow/defineWorkflow.js';
import { prepareWorkflow, type WorkflowRunOptions } from '../workflow/startWorkflow.js';
import type { WorkflowResult, WorkflowRun } from '../workflow/WorkflowRun.js';

/** The input of `governedRun`: a run request without a signal (leaving the invoking state cancels). */
export type GovernedRunInput = Omit<RunRequest, 'signal'>;

export type GovernedRunSnapshot = Snapshot<ExecutionReport> & { readonly input: GovernedRunInput };

/** Actor logic of one governed run: its output is the report, its emitted events the run's events. */
export type GovernedRunLogic = ActorLogic<GovernedRunSnapshot, EventObject, GovernedRunInput, ActorSystem<any>, OaoEvent>;

const DONE_PREFIX = 'xstate.done.actor.';
const ERROR_PREFIX = 'xstate.error.actor.';
const STOP = 'xstate.stop';
/** Why a run invoked by a state ends when that state is left, or its actor is stopped. */
const LEFT = 'The invoking state was left (or its actor stopped)';

let defaultOrchestrator: Orchestrator | undefined;
const defaultInternals = (): OrchestratorInternals => internalsOf((defaultOrchestrator ??= new Orchestrator()));

function runLogic(resolve: () => OrchestratorInternals): GovernedRunLogic {
  /** The run of each live actor of this logic. */
  const live = new WeakMap<AnyActorRef, RunSession>();
  return {
    getInitialSnapshot: (_scope, input) => ({ status: 'active', output: undefined, error: undefined, input }),
    start: (snapshot, { self, emit }) => {
      const internals = resolve();
      const hub = internals.hub;
      // A bad request throws here: XState reports it to the parent as `xstate.error.actor.<id>` (onError).
      const { session } = prepareRun(snapshot.input, {
        policy: internals.policy,
        clock: internals.clock,
        // Every event goes out with XState's emit (listeners via actorRef.on) and to the orchestrator's streams.
        sink: {
          observed: true,
          emit: (event: OaoEvent) => {
            if (hub.observed) hub.emit(event);
            emit(event);
          },
        },
        generateId: internals.generateId,
        syncOnly: false,
        record: false,
        ...(internals.store === undefined ? {} : { store: internals.store, ownership: internals.ownership }),
        ...(internals.plugins === undefined ? {} : { plugins: internals.plugins }),
      });
      live.set(self, session);
      // Live in the orchestrator while it runs: approvals and raises by execution id reach it.
      const runs = internals.live;
      runs.set(session.executionId, session);
      const log = session.log;
      session.onFinish(() => {
        if (runs.get(session.executionId) === session) runs.delete(session.executionId);
        if (log !== undefined) void log.settled().then(() => log.end());
      });
      // The run actor is a child of this one: inspectors show it under the invoking machine.
      const run = createActor(agentLifecycleMachine, { id: session.executionId, parent: self, input: { session } });
      session.bindActor(run);
      session.begin(false);
      run.start();
      run.send({ type: 'START' });
      session.armDeadline();
    },
    transition: (snapshot, event, { self }) => {
      if (snapshot.status !== 'active') return snapshot;
      const session = live.get(self);
      const type = event.type;
      if (type === STOP) {
        // Leaving the invoking state (or stopping the parent) cancels the run: its signal aborts
        // and its report, final at once, says `cancelled`.
        session?.cancel(LEFT);
        return { status: 'stopped', output: undefined, error: undefined, input: snapshot.input };
      }
      if (session === undefined) return snapshot;
      if (type === `${DONE_PREFIX}${session.executionId}`) {
        return { status: 'done', output: (event as unknown as { output: ExecutionReport }).output, error: undefined, input: snapshot.input };
      }
      if (type === `${ERROR_PREFIX}${session.executionId}`) {
        // A defect in the run actor: the ledger still produces a report.
        const report = session.report ?? session.crash((event as unknown as { error: unknown }).error);
        return { status: 'done', output: report, error: undefined, input: snapshot.input };
      }
      return snapshot;
    },
    getPersistedSnapshot: (snapshot) => snapshot,
  };
}

/**
 * Actor logic of one governed run, on a default `new Orchestrator()`: invoke it from your own
 * machine. The output (`onDone`'s `event.output`) is the run's report, SUCCESS or FAILED; an
 * invalid request (no agent, a task that is not JSON) goes to `onError` as a typed `OaoError`.
 * Leaving the invoking state, or stopping the parent, cancels the run (reason `cancelled`). Every
 * event of the run is emitted: listen with `actorRef.on(type, fn)`.
 *
 * @example
 * ```ts
 * import { createActor, setup } from 'xstate';
 * import { governedRun } from 'open-agent-orchestrator';
 * const echo = { invoke: (task: unknown) => ({ output: task }) };
 * const machine = setup({ actors: { governedRun } }).createMachine({
 *   initial: 'working',
 *   states: {
 *     working: { invoke: { src: 'governedRun', input: { agent: echo, task: 'hi' }, onDone: 'done' } },
 *     done: { type: 'final' },
 *   },
 * });
 * createActor(machine).start();
 * ```
 */
export const governedRun: GovernedRunLogic = runLogic(defaultInternals);

/**
 * `governedRun` bound to an orchestrator: its policy (the ceiling a run's own policy narrows),
 * clock, ids, store and hooks; the run's events also reach `orch.events$` and `orch.on()`.
 */
export function createGovernedRun(orchestrator: Orchestrator): GovernedRunLogic {
  const internals = internalsOf(orchestrator);
  return runLogic(() => internals);
}

/** The input of `governedWorkflow`. */
export interface GovernedWorkflowInput {
  readonly workflow: Workflow;
  readonly input?: unknown;
  readonly options?: Omit<WorkflowRunOptions, 'signal'>;
}

export type GovernedWorkflowSnapshot = Snapshot<WorkflowResult> & { readonly input: GovernedWorkflowInput };

export type GovernedWorkflowLogic = ActorLogic<GovernedWorkflowSnapshot, EventObject, GovernedWorkflowInput, ActorSystem<any>, WorkflowEvent>;

function workflowLogic(resolve: () => OrchestratorInternals): GovernedWorkflowLogic {
  const live = new WeakMap<AnyActorRef, { readonly run: WorkflowRun; readonly id: string }>();
  return {
    getInitialSnapshot: (_scope, input) => ({ status: 'active', output: undefined, error: undefined, input }),
    start: (snapshot, { self, emit }) => {
      const { workflow, input, options } = snapshot.input;
      const { run, handle, start } = prepareWorkflow(resolve(), workflow, input, options, self);
      live.set(self, { run, id: handle.workflowRunId });
      run.hub.events$.subscribe((event) => emit(event));
      start();
    },
    transition: (snapshot, event, { self }) => {
      if (snapshot.status !== 'active') return snapshot;
      const entry = live.get(self);
      if (event.type === STOP) {
        entry?.run.dispose();
        return { status: 'stopped', output: undefined, error: undefined, input: snapshot.input };
      }
      if (entry === undefined) return snapshot;
      if (event.type === `${DONE_PREFIX}${entry.id}`) {
        return { status: 'done', output: (event as unknown as { output: WorkflowResult }).output, error: undefined, input: snapshot.input };
      }
      if (event.type === `${ERROR_PREFIX}${entry.id}`) {
        entry.run.dispose();
        return { status: 'error', output: undefined, error: (event as unknown as { error: unknown }).error, input: snapshot.input };
      }
      return snapshot;
    },
    getPersistedSnapshot: (snapshot) => snapshot,
  };
}

/**
 * Actor logic of a whole workflow (see `defineWorkflow`), on a default `new Orchestrator()`:
 * the output is the workflow result; leaving the invoking state cancels it; its workflow events
 * are emitted.
 */
export const governedWorkflow: GovernedWorkflowLogic = workflowLogic(defaultInternals);

/** `governedWorkflow` bound to an orchestrator. */
export function createGovernedWorkflow(orchestrator: Orchestrator): GovernedWorkflowLogic {
  const internals = internalsOf(orchestrator);
  return workflowLogic(() => internals);
}
