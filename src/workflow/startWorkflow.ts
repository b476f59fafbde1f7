import * as crypto from 'node:crypto';
import { Observable, takeWhile } from 'rxjs';
import { createActor, type Actor, type AnyActorRef } from 'xstate';
import { OaoError, safeString } from '../errors.js';
import type { WorkflowCounts, WorkflowEvent } from '../events/workflowSchema.js';
import { positiveIntegerOption, typeOf } from '../options.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import { canonicalJson } from '../report/canonicalJson.js';
import type { OrchestratorInternals } from '../runtime/orchestratorInternals.js';
import { abortReason } from '../runtime/prepareRun.js';
import { SharedBudget, type SharedBudgetLimits } from '../runtime/SharedBudget.js';
import { RUNTIME_VERSION } from '../version.js';
import { isWorkflow, type Workflow } from './defineWorkflow.js';
import type { WorkflowMachine } from './workflowMachine.js';
import { WorkflowRun, type OnFailure, type WorkflowResult } from './WorkflowRun.js';

/** Options of `orch.runWorkflow()` and `orch.startWorkflow()`. */
export interface WorkflowRunOptions {
  /**
   * At most this many node runs execute at once (a fan-out node's runs each count); the rest wait
   * in the ready queue, first ready first started.
   * @default 4
   */
  readonly maxConcurrency?: number;
  /**
   * Totals across every run of the workflow, with the supervisor's semantics: the run that
   * crosses one ends `policy_violation` (scope `shared`), the running ones stop, and the nodes
   * that have not started are SKIPPED with reason `budget`. `timeoutMs` is the workflow's wall time.
   */
  readonly budget?: SharedBudgetLimits;
  /**
   * `'skip-dependents'`: a FAILED node's dependents are SKIPPED and independent branches go on.
   * `'fail-fast'`: the first FAILED node cancels the running nodes and skips the rest.
   * @default 'skip-dependents'
   */
  readonly onFailure?: OnFailure;
  /** Narrows the orchestrator's policy for every node (a node's own policy narrows it further). */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Aborting it cancels the workflow. */
  readonly signal?: AbortSignal;
  /** Use this id instead of a generated one. */
  readonly workflowRunId?: string;
}

/** A started workflow run. */
export interface WorkflowHandle {
  readonly workflowRunId: string;
  /** The workflow's actor (the workflow machine); its node actors are its children. */
  readonly actor: Actor<WorkflowMachine>;
  /**
   * The run's events, live; completes after WORKFLOW_COMPLETE. The run starts on the next
   * microtask, so subscribing right after `startWorkflow()` sees every event.
   */
  readonly events$: Observable<WorkflowEvent>;
  /** Settles with the result; never rejects because of what a node did. */
  readonly result: Promise<WorkflowResult>;
  /** Each node's status now: 'waiting', 'running', 'SUCCESS', 'FAILED' or 'SKIPPED'. */
  nodes(): Record<string, string>;
  /** Cancels the workflow: running nodes are cancelled, waiting ones SKIPPED with reason `cancelled`. */
  cancel(reason?: string): void;
}

const ON_FAILURE: readonly OnFailure[] = ['skip-dependents', 'fail-fast'];

/** Validated options: typed errors naming the field. */
export function checkWorkflowOptions(options: unknown, ceiling: StrictPolicy): {
  maxConcurrency: number;
  budget: SharedBudgetLimits | undefined;
  onFailure: OnFailure;
  policy: StrictPolicy;
  signal: AbortSignal | undefined;
  workflowRunId: string | undefined;
} {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the workflow options to be an object, got ${typeOf(options)}`, { details: { field: 'options' } });
  }
  const o = options as WorkflowRunOptions;
  const maxConcurrency = positiveIntegerOption(o.maxConcurrency ?? 4, 'maxConcurrency');
  const onFailure = o.onFailure ?? 'skip-dependents';
  if (!ON_FAILURE.includes(onFailure)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected onFailure to be 'skip-dependents' or 'fail-fast', got ${safeString(onFailure)}`, {
      details: { field: 'onFailure' },
    });
  }
  if (o.budget !== undefined && (typeof o.budget !== 'object' || o.budget === null)) {
    throw new OaoError('OAO_ERR_INVALID_POLICY', `Expected budget to be an object, got ${typeOf(o.budget)}`, { details: { field: 'budget' } });
  }
  const budget = o.budget === undefined ? undefined : new SharedBudget(o.budget).limits;
  if (o.policy !== undefined && !(o.policy instanceof StrictPolicy) && (typeof o.policy !== 'object' || o.policy === null)) {
    throw new OaoError('OAO_ERR_INVALID_POLICY', `"policy" must be a StrictPolicy or policy options, got ${typeOf(o.policy)}`, { details: { field: 'policy' } });
  }
  const policy = o.policy === undefined ? ceiling : ceiling.narrow(o.policy);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"signal" must be an AbortSignal, got ${typeOf(o.signal)}`, { details: { field: 'signal' } });
  }
  if (o.workflowRunId !== undefined && (typeof o.workflowRunId !== 'string' || o.workflowRunId.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', '"workflowRunId" must be a non-empty string', { details: { field: 'workflowRunId' } });
  }
  return { maxConcurrency, budget, onFailure, policy, signal: o.signal, workflowRunId: o.workflowRunId };
}

/** sha256 over the workflow's shape, its effective policy, its shared budget and the runtime version. */
export function workflowHash(workflow: Workflow, policy: StrictPolicy, budget: SharedBudgetLimits | undefined, onFailure: OnFailure): string {
  const text = canonicalJson({ oao: RUNTIME_VERSION, shape: workflow.shape as never, policy: policy.canonical, budget: (budget ?? null) as never, onFailure });
  return crypto.createHash('sha256').update(text).digest('hex');
}

/**
 * Prepares a workflow run on an orchestrator's behalf and starts it on the next microtask.
 * Throws a typed error for a value that is not a workflow, bad options or an input that is not JSON.
 */
export function startWorkflow(internals: OrchestratorInternals, workflow: Workflow, input: unknown, options?: WorkflowRunOptions): WorkflowHandle {
  const { handle, start } = prepareWorkflow(internals, workflow, input, options);
  queueMicrotask(start);
  return handle;
}

/**
 * Builds a workflow run and its actor without starting it; `start()` sends START. `parent`
 * makes the workflow actor a child (for `governedWorkflow`).
 */
export function prepareWorkflow(
  internals: OrchestratorInternals,
  workflow: Workflow,
  input: unknown,
  options: WorkflowRunOptions | undefined,
  parent?: AnyActorRef,
): { handle: WorkflowHandle; run: WorkflowRun; start: () => void } {
  if (!isWorkflow(workflow)) {
    throw new OaoError('OAO_ERR_INVALID_WORKFLOW', `Expected a workflow made by defineWorkflow(), got ${typeOf(workflow)}`, {
      details: { problem: 'invalid_definition', field: 'workflow' },
    });
  }
  const checked = checkWorkflowOptions(options, internals.policy);
  const value = input === undefined ? null : input;
  try {
    canonicalJson(value);
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The workflow input must be JSON-serializable: ${(error as Error).message}`, { details: { field: 'input' } });
  }
  const workflowRunId = checked.workflowRunId ?? internals.generateId();
  const run = new WorkflowRun({
    workflow,
    workflowRunId,
    workflowHash: workflowHash(workflow, checked.policy, checked.budget, checked.onFailure),
    input: value,
    internals,
    policy: checked.policy,
    maxConcurrency: checked.maxConcurrency,
    onFailure: checked.onFailure,
    budget: checked.budget,
  });
  return launchWorkflow(internals, workflow, run, checked.signal, parent);
}

/** Creates the actor of a built workflow run, its handle, and the `start()` that sends START. */
export function launchWorkflow(
  internals: OrchestratorInternals,
  workflow: Workflow,
  run: WorkflowRun,
  signal: AbortSignal | undefined,
  parent?: AnyActorRef,
): { handle: WorkflowHandle; run: WorkflowRun; start: () => void } {
  const workflowRunId = run.workflowRunId;
  const actor = createActor(workflow.machine, {
    id: workflowRunId,
    input: { run },
    ...(parent === undefined ? {} : { parent }),
    ...(parent === undefined && internals.inspect !== undefined ? { inspect: internals.inspect as never } : {}),
    ...(parent === undefined && internals.customClock ? { clock: internals.clock } : {}),
  });
  const finished = new Promise<WorkflowResult>((resolve) => run.onFinish(resolve));
  if (parent === undefined) {
    actor.subscribe({
      error: (error) => {
        // A defect in the workflow machine: the run still ends with a result.
        run.halt('cancelled', `The workflow failed: ${safeString((error as Error)?.message ?? error)}`);
        run.dispose();
      },
    });
  }
  // With a store, the result is handed out once every node run's log is durable.
  const result = internals.store === undefined ? finished : finished.then(async (value) => {
    await run.settleLogs();
    return value;
  });
  const onAbort = signal === undefined ? undefined : () => actor.send({ type: 'CANCEL', reason: abortReason(signal) });
  if (signal !== undefined && onAbort !== undefined) {
    signal.addEventListener('abort', onAbort, { once: true });
    void result.then(() => signal.removeEventListener('abort', onAbort));
  }
  const events$ = new Observable<WorkflowEvent>((subscriber) => {
    if (run.result !== undefined) {
      subscriber.complete();
      return undefined;
    }
    return run.hub.events$.pipe(takeWhile((event) => event.type !== 'WORKFLOW_COMPLETE', true)).subscribe(subscriber);
  });
  const handle: WorkflowHandle = {
    workflowRunId,
    actor,
    events$,
    result,
    nodes: () => run.statuses(),
    cancel: (reason = 'cancelled by caller') => actor.send({ type: 'CANCEL', reason: safeString(reason) || 'cancelled by caller' }),
  };
  const start = (): void => {
    actor.start();
    if (signal?.aborted === true) onAbort?.();
    actor.send({ type: 'START' });
  };
  return { handle, run, start };
}

export type { WorkflowCounts };
