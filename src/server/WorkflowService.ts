import { from, Observable, Subject } from 'rxjs';
import { OaoError } from '../errors.js';
import type { WorkflowEvent } from '../events/workflowSchema.js';
import { invalidOption, typeOf } from '../options.js';
import { Orchestrator, type OaoInspector } from '../Orchestrator.js';
import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { Clock } from '../runtime/clock.js';
import type { SharedBudgetLimits } from '../runtime/SharedBudget.js';
import type { RunStore } from '../store/RunStore.js';
import { isWorkflow, type Workflow, type WorkflowShape } from '../workflow/defineWorkflow.js';
import type { OnFailure, WorkflowResult } from '../workflow/WorkflowRun.js';
import { foldWorkflowLog } from '../workflow/foldWorkflowLog.js';
import { readWorkflowLog, replayWorkflow } from '../workflow/replayWorkflow.js';
import { holdsWorkflowLogs } from '../workflow/WorkflowLog.js';
import type { WorkflowHandle } from '../workflow/startWorkflow.js';

/** How many finished workflow runs the service keeps for GET /workflow-runs/:id. */
const KEPT_RUNS = 1_000;

/** What POST /workflows/:name/runs may ask for. */
export interface WorkflowRunBody {
  readonly input?: unknown;
  readonly maxConcurrency?: number;
  readonly onFailure?: OnFailure;
  readonly budget?: SharedBudgetLimits;
}

/** GET /workflow-runs/:id. */
export interface WorkflowRunView {
  readonly workflowRunId: string;
  readonly workflow: string;
  /**
   * `interrupted`: a workflow run read from the store that no process of this server runs and
   * that has not finished (its process died); `orch.resumeWorkflow()` continues it.
   */
  readonly status: 'running' | 'interrupted' | 'SUCCESS' | 'FAILED';
  /** Each node's status now. */
  readonly nodes: Record<string, string>;
  readonly shape: WorkflowShape;
  readonly result: WorkflowResult | null;
}

interface RunRecord {
  readonly workflow: Workflow;
  readonly handle: WorkflowHandle;
  readonly events: WorkflowEvent[];
  readonly live: Subject<WorkflowEvent>;
  result: WorkflowResult | undefined;
}

/** Checks a module's or an option's `workflows`: an object of workflows made by defineWorkflow. */
export function resolveWorkflows(workflows: unknown): ReadonlyMap<string, Workflow> {
  if (workflows === undefined) return new Map();
  if (typeof workflows !== 'object' || workflows === null || Array.isArray(workflows)) {
    throw invalidOption('workflows', `Expected workflows to be an object of workflows, got ${typeOf(workflows)}`);
  }
  const map = new Map<string, Workflow>();
  for (const [name, workflow] of Object.entries(workflows)) {
    if (!isWorkflow(workflow)) {
      throw new OaoError('OAO_ERR_INVALID_WORKFLOW', `"workflows.${name}" is not a workflow: make it with defineWorkflow()`, {
        details: { problem: 'invalid_definition', field: `workflows.${name}` },
      });
    }
    map.set(name, workflow);
  }
  return map;
}

/**
 * The server's workflows: starts runs of the registered workflows on an orchestrator of the
 * server's policy, clock and store (so every node run is listed with the other runs), keeps each
 * workflow run's events for its stream, and the last results.
 */
export class WorkflowService {
  readonly #workflows: ReadonlyMap<string, Workflow>;
  readonly #orch: Orchestrator;
  readonly #maxConcurrency: number;
  readonly #runs = new Map<string, RunRecord>();

  constructor(init: {
    readonly workflows: ReadonlyMap<string, Workflow>;
    readonly policy: StrictPolicy;
    readonly maxConcurrency: number;
    readonly clock?: Clock | undefined;
    readonly store?: RunStore | undefined;
    readonly inspect?: OaoInspector | undefined;
  }) {
    this.#workflows = init.workflows;
    this.#maxConcurrency = init.maxConcurrency;
    this.#orch = new Orchestrator({
      policy: init.policy,
      ...(init.clock === undefined ? {} : { clock: init.clock }),
      ...(init.store === undefined ? {} : { store: init.store }),
      ...(init.inspect === undefined ? {} : { inspect: init.inspect }),
    });
  }

  get size(): number {
    return this.#workflows.size;
  }

  list(): { readonly name: string; readonly shape: WorkflowShape }[] {
    return [...this.#workflows].map(([name, workflow]) => ({ name, shape: workflow.shape }));
  }

  #workflow(name: string): Workflow {
    const workflow = this.#workflows.get(name);
    if (workflow === undefined) {
      throw new OaoError('OAO_ERR_UNKNOWN_WORKFLOW', `No workflow is registered as "${name}"`, { details: { workflow: name, workflows: [...this.#workflows.keys()] } });
    }
    return workflow;
  }

  /** Starts a run; typed errors for an unknown workflow or bad options. A request's concurrency is capped by the server's. */
  start(name: string, body: WorkflowRunBody): { readonly workflowRunId: string; readonly workflow: string } {
    const workflow = this.#workflow(name);
    const handle = this.#orch.startWorkflow(workflow, body.input ?? null, {
      maxConcurrency: Math.min(body.maxConcurrency ?? this.#maxConcurrency, this.#maxConcurrency),
      ...(body.onFailure === undefined ? {} : { onFailure: body.onFailure }),
      ...(body.budget === undefined ? {} : { budget: body.budget }),
    });
    const record: RunRecord = { workflow, handle, events: [], live: new Subject<WorkflowEvent>(), result: undefined };
    handle.events$.subscribe({
      next: (event) => {
        record.events.push(event);
        record.live.next(event);
      },
      complete: () => record.live.complete(),
    });
    void handle.result.then((result) => {
      record.result = result;
    });
    this.#runs.set(handle.workflowRunId, record);
    this.#evict();
    return { workflowRunId: handle.workflowRunId, workflow: workflow.id };
  }

  #evict(): void {
    if (this.#runs.size <= KEPT_RUNS) return;
    for (const [id, record] of this.#runs) {
      if (this.#runs.size <= KEPT_RUNS) return;
      if (record.result !== undefined) this.#runs.delete(id);
    }
  }

  #record(id: string): RunRecord {
    const record = this.#runs.get(id);
    if (record === undefined) throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `No workflow run "${id}"`, { details: { workflowRunId: id } });
    return record;
  }

  /**
   * The run's view: from memory while this server keeps it, else from the store (a run of an
   * earlier server process, or one evicted from memory), with its result rebuilt from the logs.
   */
  async get(id: string): Promise<WorkflowRunView> {
    const record = this.#runs.get(id);
    if (record === undefined) return this.#stored(id);
    return {
      workflowRunId: id,
      workflow: record.workflow.id,
      status: record.result?.status ?? 'running',
      nodes: record.handle.nodes(),
      shape: record.workflow.shape,
      result: record.result ?? null,
    };
  }

  async #stored(id: string): Promise<WorkflowRunView> {
    const store = this.#orch.store;
    if (!holdsWorkflowLogs(store)) throw this.#notFound(id);
    let read;
    try {
      read = await readWorkflowLog(store, id);
    } catch (error) {
      if (OaoError.isInstance(error) && error.code === 'OAO_ERR_RUN_NOT_FOUND') throw this.#notFound(id);
      throw error;
    }
    const folded = foldWorkflowLog(id, read.events);
    const result = folded.complete === undefined ? null : await replayWorkflow(store, id);
    const registered = [...this.#workflows.values()].find((workflow) => workflow.id === folded.workflow);
    const shape: WorkflowShape = registered?.shape ?? {
      id: folded.workflow,
      nodes: folded.start.payload.nodes.map((node) => ({ ...node, agent: '', policy: null, tools: [] })),
    };
    return {
      workflowRunId: id,
      workflow: folded.workflow,
      status: result?.status ?? 'interrupted',
      nodes: Object.fromEntries([...folded.nodes.values()].map((node) => [node.name, node.status])),
      shape,
      result,
    };
  }

  #notFound(id: string): OaoError {
    return new OaoError('OAO_ERR_RUN_NOT_FOUND', `No workflow run "${id}"`, { details: { workflowRunId: id } });
  }

  /**
   * The run's events: those recorded, then live ones; completes after WORKFLOW_COMPLETE. A run this
   * server does not hold is read from the store: its stored log (the workflow's own events), then
   * the stream completes.
   */
  async events$(id: string): Promise<Observable<WorkflowEvent>> {
    if (!this.#runs.has(id)) {
      const store = this.#orch.store;
      if (!holdsWorkflowLogs(store)) throw this.#notFound(id);
      const stored = await store.workflowEvents(id);
      if (stored.length === 0) throw this.#notFound(id);
      return from(stored);
    }
    const record = this.#record(id);
    return new Observable<WorkflowEvent>((subscriber) => {
      const recorded = record.events;
      for (let i = 0; i < recorded.length && !subscriber.closed; i++) subscriber.next(recorded[i] as WorkflowEvent);
      if (record.live.closed || recorded[recorded.length - 1]?.type === 'WORKFLOW_COMPLETE') {
        subscriber.complete();
        return undefined;
      }
      const subscription = record.live.subscribe(subscriber);
      return () => subscription.unsubscribe();
    });
  }

  /** Cancels every workflow run still going (the server is closing). */
  close(): void {
    for (const record of this.#runs.values()) if (record.result === undefined) record.handle.cancel('The server is closing');
  }
}
