import { createActor, type AnyActorRef } from 'xstate';
import { OaoError, serializeError, type PolicyViolation, type SerializedError } from '../errors.js';
import { EventHub } from '../events/EventHub.js';
import type { OaoEvent } from '../events/schema.js';
import type { SkipReason, StoredWorkflowEvent, WorkflowCounts, WorkflowEvent, WorkflowEventType, WorkflowHaltKind } from '../events/workflowSchema.js';
import type { ResumePoint } from '../log/resumePoint.js';
import { agentLifecycleMachine } from '../machines/agentLifecycleMachine.js';
import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { ExecutionReport, TokenUsage } from '../report/schema.js';
import type { OrchestratorInternals } from '../runtime/orchestratorInternals.js';
import { prepareResume, prepareRun } from '../runtime/prepareRun.js';
import type { EventSink, RunSession } from '../runtime/RunSession.js';
import { SharedBudget, type SharedBudgetLimits } from '../runtime/SharedBudget.js';
import type { Lease } from '../store/RunStore.js';
import type { Workflow, WorkflowNodeSpec, WorkflowResults } from './defineWorkflow.js';
import { holdsWorkflowLogs, WorkflowLog } from './WorkflowLog.js';

export type WorkflowNodeStatus = 'SUCCESS' | 'FAILED' | 'SKIPPED';

/** One node's part of a workflow result. */
export interface WorkflowNodeResult {
  readonly status: WorkflowNodeStatus;
  /** The node's run report (a node without `each` that ran). */
  readonly report?: ExecutionReport;
  /** Every run's report, in input order (a fan-out node). */
  readonly reports?: readonly ExecutionReport[];
  /** Why a SKIPPED node did not run. */
  readonly reason?: SkipReason;
  /** Why a node FAILED before any run could start (its `task`, `each` or `when` threw, or a task was invalid). */
  readonly error?: SerializedError;
}

/** The JSON-safe account of one workflow run. */
export interface WorkflowResult {
  readonly workflow: string;
  readonly workflowRunId: string;
  /** sha256 over the definition's shape, the effective policy, the shared budget and the runtime version. */
  readonly workflowHash: string;
  /** SUCCESS when no node FAILED and no node was skipped for anything but a condition. */
  readonly status: 'SUCCESS' | 'FAILED';
  readonly nodes: Readonly<Record<string, WorkflowNodeResult>>;
  /** Why the workflow stopped early, when it did. */
  readonly halted: { readonly kind: WorkflowHaltKind; readonly reason: string } | null;
  readonly counts: WorkflowCounts;
  readonly tokenUsage: TokenUsage;
  readonly toolUsage: { readonly total: number; readonly byTool: Readonly<Record<string, number>> };
  readonly executionTimeMs: number;
  readonly startedAt: string;
  readonly finishedAt: string;
}

export type OnFailure = 'skip-dependents' | 'fail-fast';

export interface WorkflowRunInit {
  readonly workflow: Workflow;
  readonly workflowRunId: string;
  readonly workflowHash: string;
  readonly input: unknown;
  readonly internals: OrchestratorInternals;
  /** The orchestrator's policy narrowed by the run's options: every node narrows it further. */
  readonly policy: StrictPolicy;
  readonly maxConcurrency: number;
  readonly onFailure: OnFailure;
  readonly budget: SharedBudgetLimits | undefined;
  /** What the stored log says of a workflow run being resumed (see `resumeWorkflow`). */
  readonly recovered?: RecoveredWorkflow;
}

/** A node as the stored log of an interrupted workflow run leaves it. */
export type RecoveredNode =
  | { readonly status: 'SUCCESS' | 'FAILED'; readonly error: SerializedError | undefined; readonly executionIds: readonly string[] }
  | { readonly status: 'SKIPPED'; readonly reason: SkipReason }
  /** Ready (or with runs in the store): its condition held; `announced` when NODE_START is logged. */
  | { readonly status: 'running'; readonly readyLogged: boolean; readonly announced: boolean };

/** A node run found in the store: finished (its report), or cut short (where it goes on, under the lease taken for it). */
export type RecoveredRun =
  | { readonly report: ExecutionReport }
  | { readonly point: ResumePoint; readonly lease: Lease };

/** The state of an interrupted workflow run, read from its log and its node runs' logs. */
export interface RecoveredWorkflow {
  /** The next `seq` of the stored log. */
  readonly nextSeq: number;
  /** When the workflow first started, and the timestamp of its log's last event. */
  readonly startedAt: number;
  readonly lastTimestamp: number;
  /** Who resumes it (the orchestrator's lease owner). */
  readonly owner: string | null;
  readonly halted: { readonly kind: WorkflowHaltKind; readonly reason: string; readonly node: string | undefined } | undefined;
  readonly nodes: ReadonlyMap<string, RecoveredNode>;
  /** By execution id. */
  readonly runs: ReadonlyMap<string, RecoveredRun>;
}

/**
 * The execution id of a node's run: `<workflowRunId>:<node>`, with `:<index>` for each run of a
 * fan-out node. Derived, not generated, so a resumed workflow finds its node runs in the store.
 */
export function nodeRunId(workflowRunId: string, node: string, index: number | null): string {
  return index === null ? `${workflowRunId}:${node}` : `${workflowRunId}:${node}:${index}`;
}

interface RunItem {
  readonly node: NodeState;
  readonly index: number;
  readonly executionId: string;
  /** Undefined for a run the stored log had finished already (its report is the node's). */
  readonly session: RunSession | undefined;
  /** A run continued from its log: it starts with EXECUTION_RESUMED. */
  readonly resumed: boolean;
  started: boolean;
  done: boolean;
}

/** Where a running node's runs live: the node's `nodeRuns` actor. */
interface NodeRunner {
  readonly self: AnyActorRef;
  readonly settle: () => void;
}

interface NodeState {
  readonly spec: WorkflowNodeSpec;
  status: 'waiting' | 'running' | WorkflowNodeStatus;
  actor: AnyActorRef | undefined;
  runner: NodeRunner | undefined;
  items: RunItem[];
  reports: (ExecutionReport | undefined)[];
  open: number;
  announced: boolean;
  /** NODE_READY is in the stored log already (a resumed run). */
  readyLogged: boolean;
  reason: SkipReason | undefined;
  error: SerializedError | undefined;
  condition: { readonly value: boolean } | { readonly error: SerializedError } | undefined;
}

const DONE_PREFIX = 'xstate.done.actor.';
const ERROR_PREFIX = 'xstate.error.actor.';

/**
 * The ledger of one workflow run: each node's status, the ready queue of runs, the slots they
 * hold, the shared budget, why the run stopped early, and the result. The workflow machine and its
 * node machines decide when things happen (their guards read this ledger); this object does the
 * bookkeeping, so every node ends SUCCESS, FAILED or SKIPPED, with a reason.
 */
export class WorkflowRun {
  readonly workflow: Workflow;
  readonly workflowRunId: string;
  readonly workflowHash: string;
  readonly input: unknown;
  readonly maxConcurrency: number;
  readonly onFailure: OnFailure;
  readonly shared: SharedBudget | undefined;
  readonly hub: EventHub<WorkflowEvent>;
  halted: { readonly kind: WorkflowHaltKind; readonly reason: string } | undefined;
  result: WorkflowResult | undefined;
  running = 0;

  readonly #internals: OrchestratorInternals;
  readonly #policy: StrictPolicy;
  readonly #nodes = new Map<string, NodeState>();
  readonly #queue: RunItem[] = [];
  #queueHead = 0;
  readonly #byExecutionId = new Map<string, RunItem>();
  readonly #timeoutMs: number | undefined;
  readonly #budget: SharedBudgetLimits | undefined;
  #deadline: unknown;
  #seq = 0;
  #startedAt = 0;
  #begun = false;
  #settled = 0;
  #filling = false;
  #refill = false;
  #disposed = false;
  /** Each finished node's report (or reports), by name. */
  readonly #finishedResults: Record<string, ExecutionReport | readonly ExecutionReport[]> = {};
  /** A read-only view of it: user code can read every finished node, and change none. */
  readonly #resultsView: WorkflowResults = new Proxy(this.#finishedResults, {
    set: () => false,
    defineProperty: () => false,
    deleteProperty: () => false,
    setPrototypeOf: () => false,
  });
  /** The node whose failure halted the run under fail-fast. */
  #haltNode: string | undefined;
  readonly #finished: ((result: WorkflowResult) => void)[] = [];
  /** The durable log of the workflow's own events, with a store that holds workflow logs. */
  readonly #log: WorkflowLog | undefined;
  #logSeq = 0;
  readonly #recovered: RecoveredWorkflow | undefined;

  constructor(init: WorkflowRunInit) {
    this.workflow = init.workflow;
    this.workflowRunId = init.workflowRunId;
    this.workflowHash = init.workflowHash;
    this.input = init.input;
    this.maxConcurrency = init.maxConcurrency;
    this.onFailure = init.onFailure;
    this.#internals = init.internals;
    this.#policy = init.policy;
    this.#timeoutMs = init.budget?.timeoutMs;
    this.#budget = init.budget;
    this.hub = new EventHub<WorkflowEvent>((error, event) => console.error(`[oao] a hook for ${event.type} failed:`, error));
    this.shared =
      init.budget === undefined
        ? undefined
        : new SharedBudget(init.budget, (violation, runId) =>
            this.halt('budget', `Stopped: the workflow's shared ${violation.rule} budget was spent (${violation.message})`, violation, runId),
          );
    for (const spec of init.workflow.nodes) {
      this.#nodes.set(spec.name, {
        spec,
        status: 'waiting',
        actor: undefined,
        runner: undefined,
        items: [],
        reports: [],
        open: 0,
        announced: false,
        readyLogged: false,
        reason: undefined,
        error: undefined,
        condition: undefined,
      });
    }
    const store = init.internals.store;
    this.#log = holdsWorkflowLogs(store)
      ? new WorkflowLog(store, init.workflowRunId, (error) => this.halt('cancelled', `Stopped: the workflow's log could not be written (${error.message})`))
      : undefined;
    const recovered = init.recovered;
    this.#recovered = recovered;
    if (recovered !== undefined) this.#restore(recovered);
  }

  /** Takes the ledger to where the stored log left the run. */
  #restore(recovered: RecoveredWorkflow): void {
    this.#logSeq = recovered.nextSeq;
    for (const [name, state] of recovered.nodes) {
      const node = this.#nodes.get(name);
      if (node === undefined) continue;
      if (state.status === 'running') {
        node.condition = { value: true };
        node.readyLogged = state.readyLogged;
        node.announced = state.announced;
      } else if (state.status === 'SKIPPED') {
        node.reason = state.reason;
      } else {
        node.error = state.error;
        node.reports = state.executionIds.map((id) => {
          const run = recovered.runs.get(id);
          return run !== undefined && 'report' in run ? run.report : undefined;
        });
      }
    }
    // The shared budget goes on from what the node runs spent before the crash.
    const shared = this.shared;
    if (shared !== undefined) {
      for (const run of recovered.runs.values()) {
        if ('report' in run) {
          shared.steps += run.report.totalSteps;
          shared.tokens += run.report.tokenUsage.total;
          shared.toolCalls += run.report.toolUsage.total;
          shared.costMicros += run.report.cost?.micros ?? 0;
        } else {
          shared.steps += run.point.fold.steps;
          shared.tokens += run.point.fold.tokens.total;
          shared.toolCalls += run.point.fold.toolCalls;
          shared.costMicros += run.point.fold.costMicros;
        }
      }
    }
  }

  /** How the stored log had settled a node of a resumed run, if it had. */
  recoveredStatus(name: string): WorkflowNodeStatus | undefined {
    const state = this.#recovered?.nodes.get(name);
    return state === undefined || state.status === 'running' ? undefined : state.status;
  }

  get total(): number {
    return this.#nodes.size;
  }

  get allSettled(): boolean {
    return this.#settled === this.#nodes.size;
  }

  /** Each node's status now: 'waiting', 'running', or its final status. */
  statuses(): Record<string, NodeState['status']> {
    const out: Record<string, NodeState['status']> = {};
    for (const [name, node] of this.#nodes) out[name] = node.status;
    return out;
  }

  /** One node's status now. */
  statusOf(name: string): NodeState['status'] | undefined {
    return this.#nodes.get(name)?.status;
  }

  /** Calls `callback` with the result once the run is complete (at once if it is). */
  onFinish(callback: (result: WorkflowResult) => void): void {
    if (this.result !== undefined) callback(this.result);
    else this.#finished.push(callback);
  }

  // ---- the workflow machine's side -----------------------------------------------------------

  /** Announces the run and arms its time limit; called when the workflow machine starts running. */
  begin(): void {
    if (this.#begun) return;
    this.#begun = true;
    const now = this.#internals.clock.now();
    const recovered = this.#recovered;
    let liveMs = 0;
    if (recovered === undefined) {
      this.#startedAt = now;
      this.#emit(
        'WORKFLOW_START',
        {
          workflowHash: this.workflowHash,
          nodes: this.workflow.nodes.map((spec) => ({
            name: spec.name,
            needs: [...spec.needs],
            fanOut: spec.each !== undefined,
            conditional: spec.when !== undefined,
          })),
          maxConcurrency: this.maxConcurrency,
          onFailure: this.onFailure,
          input: this.input,
          policy: this.#policy.limits,
          budget: this.#budget ?? null,
        },
        now,
      );
    } else {
      this.#startedAt = recovered.startedAt;
      // Time while no process held the workflow is not charged to its time limit.
      liveMs = Math.max(0, recovered.lastTimestamp - recovered.startedAt);
      const settled: string[] = [];
      const inFlight: string[] = [];
      for (const [name, state] of recovered.nodes) (state.status === 'running' ? inFlight : settled).push(name);
      this.#emit('WORKFLOW_RESUMED', { owner: recovered.owner, settled, inFlight, idleMs: Math.max(0, now - recovered.lastTimestamp) }, now);
      if (recovered.halted !== undefined && this.halted === undefined) {
        this.halted = { kind: recovered.halted.kind, reason: recovered.halted.reason };
        this.#haltNode = recovered.halted.node;
      }
    }
    if (this.#timeoutMs !== undefined && this.halted === undefined) {
      const timeoutMs = this.#timeoutMs;
      this.#deadline = this.#internals.clock.setTimeout(() => {
        this.#deadline = undefined;
        this.halt('budget', `The workflow exceeded its time limit of ${timeoutMs} ms`);
      }, Math.max(0, timeoutMs - liveMs));
    }
  }

  /**
   * Creates one node actor per node as a child of the workflow actor, and checks the nodes that
   * need nothing. Node actors are tracked here rather than in the machine's `children`, which
   * XState copies on every spawn: at a thousand nodes that copy dominated (see docs/workflows.md).
   */
  spawnNodes(createNode: (name: string) => AnyActorRef): void {
    for (const node of this.#nodes.values()) node.actor = createNode(node.spec.name);
    for (const node of this.#nodes.values()) node.actor?.start();
    for (const node of this.#nodes.values()) {
      if (node.spec.needs.length === 0 || this.halted !== undefined || this.recoveredStatus(node.spec.name) !== undefined) node.actor?.send({ type: 'CHECK' });
    }
  }

  /** The node actors still waiting that need `name`. */
  waitingDependents(name: string): AnyActorRef[] {
    const refs: AnyActorRef[] = [];
    for (const dependent of this.#nodes.get(name)?.spec.dependents ?? []) {
      const state = this.#nodes.get(dependent);
      if (state?.status === 'waiting' && state.actor !== undefined) refs.push(state.actor);
    }
    return refs;
  }

  /**
   * Tells the nodes that need `name` to look again now that it has settled. Each is checked when
   * its turn comes: one that settled meanwhile (a halt skips waiting nodes) is not told again.
   */
  checkDependents(name: string): void {
    const node = this.#nodes.get(name);
    if (node === undefined) return;
    for (const dependent of node.spec.dependents) {
      const state = this.#nodes.get(dependent);
      if (state?.status === 'waiting') state.actor?.send({ type: 'CHECK' });
    }
  }

  /** A node actor reached its final state: under fail-fast, a failure stops the rest. */
  afterNode(name: string): void {
    const node = this.#nodes.get(name);
    if (node?.status === 'FAILED' && this.onFailure === 'fail-fast') {
      this.halt('fail_fast', `Fail-fast: node "${name}" failed`, undefined, undefined, name);
    }
  }

  /** A node actor failed (a defect): the node settles FAILED with the error, and its dependents are told. */
  crashNode(name: string, error: unknown): void {
    const node = this.#nodes.get(name);
    if (node === undefined || node.status === 'SUCCESS' || node.status === 'FAILED' || node.status === 'SKIPPED') return;
    node.error = serializeError(error);
    this.complete(name, 'FAILED');
    this.checkDependents(name);
    this.afterNode(name);
  }

  /** The workflow machine was asked to cancel. */
  cancel(reason: string): void {
    this.halt('cancelled', reason);
  }

  /**
   * The workflow actor is going away (stopped, or its parent left the invoking state) before the
   * run completed: every run is cancelled, every waiting node skipped, and the result filed.
   */
  dispose(): void {
    if (this.result !== undefined || this.#disposed) return;
    this.#disposed = true;
    this.halt('cancelled', 'The workflow actor was stopped');
    if (this.allSettled) this.complete();
  }

  // ---- the node machine's guards and actions ---------------------------------------------------

  /** Why the node cannot run at all (a failed or skipped need, or a halt), if it cannot. */
  blockedReason(name: string): SkipReason | undefined {
    // A node whose runs were in flight when a halted run's process died still starts: its runs
    // are then stopped with the halt's reason, as they would have been, and end with reports.
    if (this.halted !== undefined && this.#recovered?.nodes.get(name)?.status !== 'running') {
      const kind = this.halted.kind;
      return { kind, ...(this.#haltNode === undefined ? {} : { node: this.#haltNode }), message: this.halted.reason };
    }
    const node = this.#nodes.get(name) as NodeState;
    for (const need of node.spec.needs) {
      const state = this.#nodes.get(need) as NodeState;
      if (state.status === 'FAILED') return { kind: 'dependency_failed', node: need, message: `Needs "${need}", which FAILED` };
      if (state.status === 'SKIPPED') {
        const upstream = state.reason as SkipReason;
        const origin = upstream.node ?? need;
        return {
          kind: upstream.kind,
          node: origin,
          message:
            upstream.kind === 'dependency_failed'
              ? `Needs "${need}", skipped because "${origin}" FAILED`
              : upstream.kind === 'condition'
                ? `Needs "${need}", skipped because the condition of "${origin}" was false`
                : upstream.message,
        };
      }
    }
    return undefined;
  }

  needsPending(name: string): boolean {
    const node = this.#nodes.get(name) as NodeState;
    return node.spec.needs.some((need) => (this.#nodes.get(need) as NodeState).status !== 'SUCCESS');
  }

  /** The node's `when`, evaluated once (its value, or the error it threw). */
  condition(name: string): { readonly value: boolean } | { readonly error: SerializedError } {
    const node = this.#nodes.get(name) as NodeState;
    if (node.condition !== undefined) return node.condition;
    const when = node.spec.when;
    if (when === undefined) return (node.condition = { value: true });
    try {
      const value: unknown = when({ input: this.input, results: this.#results() });
      node.condition =
        typeof value === 'boolean'
          ? { value }
          : { error: { name: 'OaoError', code: 'OAO_ERR_INVALID_ARGUMENT', message: `The "when" of node "${name}" returned ${typeof value}, not a boolean` } };
    } catch (error) {
      node.condition = { error: serializeError(error) };
    }
    return node.condition;
  }

  skip(name: string): void {
    const node = this.#nodes.get(name) as NodeState;
    if (node.status !== 'waiting') return;
    if (this.recoveredStatus(name) === 'SKIPPED') {
      // Logged before the crash: settled again, not announced again.
      node.status = 'SKIPPED';
      this.#settle();
      return;
    }
    const condition = node.condition;
    node.reason =
      this.blockedReason(name) ??
      (condition !== undefined && 'value' in condition && !condition.value
        ? { kind: 'condition', message: `The condition of "${name}" was false` }
        : { kind: 'cancelled', message: 'Skipped' });
    node.status = 'SKIPPED';
    this.#emit('NODE_SKIPPED', { node: name, reason: node.reason });
    this.#settle();
  }

  /** Needs met and condition true: the node is ready, and its runs join the queue. */
  ready(name: string): void {
    const node = this.#nodes.get(name) as NodeState;
    node.status = 'running';
    if (node.readyLogged) return;
    node.readyLogged = true;
    this.#emit('NODE_READY', { node: name });
  }

  /** A node that could not start (its `when` threw). */
  failBeforeStart(name: string): void {
    const node = this.#nodes.get(name) as NodeState;
    const condition = node.condition;
    if (condition !== undefined && 'error' in condition) node.error = condition.error;
  }

  /** Whether every run of the node succeeded (and nothing failed before them). */
  nodeSucceeded(name: string): boolean {
    const node = this.#nodes.get(name) as NodeState;
    return node.error === undefined && node.reports.every((report) => report?.status === 'SUCCESS');
  }

  /** The node actor entered `succeeded` or `failed`. */
  complete(name: string, status: 'SUCCESS' | 'FAILED'): void;
  complete(): void;
  complete(name?: string, status?: 'SUCCESS' | 'FAILED'): void {
    if (name === undefined) {
      this.#completeRun();
      return;
    }
    const node = this.#nodes.get(name) as NodeState;
    node.status = status as 'SUCCESS' | 'FAILED';
    node.runner = undefined;
    const reports = node.reports.filter((report): report is ExecutionReport => report !== undefined);
    const finished = node.spec.each !== undefined ? Object.freeze(reports) : reports[0];
    if (finished !== undefined) this.#finishedResults[name] = finished;
    if (this.recoveredStatus(name) === undefined) {
      this.#emit('NODE_COMPLETE', {
        node: name,
        status: node.status,
        executionIds: node.items.map((item) => item.executionId),
        ...(node.error === undefined ? {} : { error: { ...node.error } }),
      });
    }
    this.#settle();
  }

  // ---- the nodeRuns actor's side -------------------------------------------------------------

  /**
   * A node's runs start: its task (or, with `each`, its items) is computed, every run prepared,
   * and each joins the ready queue. A task that throws or is invalid fails the node at once.
   */
  startNode(name: string, runner: NodeRunner): void {
    const node = this.#nodes.get(name) as NodeState;
    node.runner = runner;
    const spec = node.spec;
    const tasks: { task: unknown }[] = [];
    try {
      const results = this.#results();
      if (spec.each !== undefined) {
        const items: unknown = spec.each({ input: this.input, results });
        if (!Array.isArray(items)) {
          throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The "each" of node "${name}" must return an array, got ${items === null ? 'null' : typeof items}`, {
            details: { node: name, field: 'each' },
          });
        }
        items.forEach((item: unknown, index) => tasks.push({ task: spec.task === undefined ? item : spec.task({ input: this.input, results, item, index }) }));
      } else {
        const task =
          spec.task !== undefined
            ? spec.task({ input: this.input, results })
            : spec.needs.length === 0
              ? this.input
              : Object.fromEntries(spec.needs.map((need) => [need, results[need]]));
        tasks.push({ task });
      }
      node.items = tasks.map(({ task }, index) => this.#prepare(node, index, task));
    } catch (error) {
      node.error = serializeError(error);
      node.items = [];
      runner.settle();
      return;
    }
    node.reports = new Array<ExecutionReport | undefined>(node.items.length);
    node.open = 0;
    for (const item of node.items) {
      const recorded = this.#recovered?.runs.get(item.executionId);
      if (item.session === undefined && recorded !== undefined && 'report' in recorded) node.reports[item.index] = recorded.report;
      else node.open += 1;
    }
    if (node.open === 0) {
      runner.settle();
      return;
    }
    for (const item of node.items) {
      if (item.done) continue;
      this.#queue.push(item);
      this.#byExecutionId.set(item.executionId, item);
    }
    if (this.halted !== undefined) this.#closeQueued();
    this.fill();
  }

  /** An event reached a node's runs actor: a run finished (or crashed). */
  runEvent(type: string, event: unknown): void {
    if (type.startsWith(DONE_PREFIX)) {
      const item = this.#byExecutionId.get(type.slice(DONE_PREFIX.length));
      if (item !== undefined) this.#collect(item, (event as { output: ExecutionReport }).output);
    } else if (type.startsWith(ERROR_PREFIX)) {
      const item = this.#byExecutionId.get(type.slice(ERROR_PREFIX.length));
      if (item?.session !== undefined && !item.done) this.#collect(item, item.session.crash((event as { error: unknown }).error));
    }
  }

  /** A node's runs actor stopped before its node settled: its runs end cancelled. */
  releaseNode(name: string): void {
    const node = this.#nodes.get(name) as NodeState;
    if (node.status !== 'running') return;
    for (const item of node.items) {
      if (item.done) continue;
      if (item.started) item.session?.cancel('The workflow node was stopped');
    }
  }

  /** Starts queued runs while slots are free: the ready queue, first ready first started. */
  fill(): void {
    if (this.#filling) {
      this.#refill = true;
      return;
    }
    this.#filling = true;
    try {
      do {
        this.#refill = false;
        while (this.halted === undefined && this.running < this.maxConcurrency && this.#queueHead < this.#queue.length) {
          const item = this.#queue[this.#queueHead++] as RunItem;
          if (item.done) continue;
          this.#startItem(item);
        }
        if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
          this.#queue.splice(0, this.#queueHead);
          this.#queueHead = 0;
        }
      } while (this.#refill);
    } finally {
      this.#filling = false;
    }
  }

  #startItem(item: RunItem): void {
    const node = item.node;
    const runner = node.runner as NodeRunner;
    item.started = true;
    this.running += 1;
    if (!node.announced) {
      node.announced = true;
      this.#emit('NODE_START', { node: node.spec.name, runs: node.items.length, executionIds: node.items.map((each) => each.executionId) });
    }
    const session = item.session as RunSession;
    // Live in the orchestrator while it runs: approvals and raises by execution id reach it.
    const live = this.#internals.live;
    live.set(session.executionId, session);
    session.onFinish(() => {
      if (live.get(session.executionId) === session) live.delete(session.executionId);
    });
    if (item.resumed) session.beginResumed(this.#internals.ownership?.owner ?? null, false);
    else session.begin(false);
    // A child of the node's runs actor: its done and error events come back there, and
    // inspectors show it under the node.
    const actor = createActor(agentLifecycleMachine, { id: session.executionId, parent: runner.self, input: { session } });
    session.bindActor(actor);
    actor.start();
    actor.send({ type: 'START' });
    session.armDeadline();
  }

  #prepare(node: NodeState, index: number, task: unknown): RunItem {
    const internals = this.#internals;
    const fanOut = node.spec.each !== undefined;
    const executionId = nodeRunId(this.workflowRunId, node.spec.name, fanOut ? index : null);
    const recorded = this.#recovered?.runs.get(executionId);
    if (recorded !== undefined && 'report' in recorded) {
      return { node, index, executionId, session: undefined, resumed: false, started: false, done: true };
    }
    const env = {
      policy: this.#policy,
      clock: internals.clock,
      sink: this.#sinkFor(node.spec.name, fanOut ? index : null),
      generateId: internals.generateId,
      syncOnly: false,
      record: false,
      ...(this.shared === undefined ? {} : { shared: this.shared }),
      ...(internals.store === undefined ? {} : { store: internals.store, ownership: internals.ownership }),
      ...(internals.plugins === undefined ? {} : { plugins: internals.plugins }),
    };
    if (recorded !== undefined) {
      // Cut short by the crash: it goes on from its log, with its recorded calls served from it.
      const { session } = prepareResume(recorded.point, { agent: node.spec.agent, ...(node.spec.tools === undefined ? {} : { tools: node.spec.tools }) }, { ...env, lease: recorded.lease });
      return { node, index, executionId, session, resumed: true, started: false, done: false };
    }
    const { session } = prepareRun(
      {
        executionId,
        agent: node.spec.agent,
        agentName: node.spec.agentName,
        task,
        ...(node.spec.tools === undefined ? {} : { tools: node.spec.tools }),
        ...(node.spec.policy === undefined ? {} : { policy: node.spec.policy }),
      },
      env,
    );
    return { node, index, executionId, session, resumed: false, started: false, done: false };
  }

  /** A node run's events reach the orchestrator's stream as they are, and the workflow's wrapped. */
  #sinkFor(node: string, item: number | null): EventSink {
    const orchHub = this.#internals.hub;
    const observed = (): boolean => orchHub.observed || this.#observed;
    return {
      get observed() {
        return observed();
      },
      emit: (event: OaoEvent) => {
        if (orchHub.observed) orchHub.emit(event);
        if (this.#observed) this.#emit('RUN_EVENT', { node, item, event });
      },
    };
  }

  #collect(item: RunItem, report: ExecutionReport): void {
    if (item.done) return;
    item.done = true;
    const node = item.node;
    node.reports[item.index] = report;
    if (item.started) this.running -= 1;
    node.open -= 1;
    // Fail-fast stops at the first failed run, even one of a fan-out whose siblings still run.
    if (report.status === 'FAILED' && this.onFailure === 'fail-fast') this.halt('fail_fast', `Fail-fast: node "${node.spec.name}" failed`, undefined, undefined, node.spec.name);
    if (node.open === 0) node.runner?.settle();
    this.fill();
  }

  /** Runs still queued when the workflow halts never start; each gets a report saying why. */
  #closeQueued(violation?: PolicyViolation): void {
    const halted = this.halted;
    if (halted === undefined) return;
    const queued = this.#queue.slice(this.#queueHead);
    this.#queue.length = 0;
    this.#queueHead = 0;
    for (const item of queued) {
      const session = item.session;
      if (item.done || session === undefined) continue;
      if (item.resumed) session.beginResumed(this.#internals.ownership?.owner ?? null, false);
      else session.begin(false);
      this.#stop(session, halted.kind, halted.reason, violation);
      this.#collect(item, session.finish('FAILED'));
    }
  }

  #stop(session: RunSession, kind: WorkflowHaltKind, reason: string, violation: PolicyViolation | undefined): void {
    if (kind === 'budget') {
      if (violation !== undefined) session.violate({ ...violation, scope: 'shared', message: reason });
      else session.timeOut(reason);
    } else {
      session.cancel(reason);
    }
  }

  /**
   * Stops the workflow: runs still queued never start, running ones stop (cancelled, or over the
   * budget), and waiting nodes are skipped with the halt's reason. Only the first halt counts.
   */
  halt(kind: WorkflowHaltKind, reason: string, violation?: PolicyViolation, causedBy?: string, failedNode?: string): void {
    if (this.halted !== undefined || this.result !== undefined) return;
    this.halted = { kind, reason };
    if (this.#deadline !== undefined) {
      this.#internals.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    this.#emit('WORKFLOW_HALTED', { kind, reason, ...(failedNode === undefined ? {} : { node: failedNode }) });
    this.#haltNode = failedNode;
    this.#closeQueued(violation);
    for (const item of this.#byExecutionId.values()) {
      if (item.started && !item.done && item.session !== undefined && item.executionId !== causedBy) this.#stop(item.session, kind, reason, violation);
    }
    if (!this.#begun) return;
    for (const node of this.#nodes.values()) {
      // Checked one by one: a node skipped by an earlier check's cascade is not told again.
      if (node.status === 'waiting') node.actor?.send({ type: 'CHECK' });
    }
  }

  #settle(): void {
    this.#settled += 1;
    if (this.#disposed && this.allSettled) this.#completeRun();
  }

  #completeRun(): void {
    if (this.result !== undefined) return;
    if (this.#deadline !== undefined) {
      this.#internals.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    const clock = this.#internals.clock;
    const finishedAt = clock.now();
    const nodes: Record<string, WorkflowNodeResult> = {};
    const counts = { total: this.#nodes.size, succeeded: 0, failed: 0, skipped: 0 };
    const tokenUsage = { input: 0, output: 0, total: 0 };
    const byTool: Record<string, number> = {};
    let toolTotal = 0;
    let failed = false;
    for (const [name, node] of this.#nodes) {
      const status: WorkflowNodeStatus = node.status === 'SUCCESS' || node.status === 'FAILED' || node.status === 'SKIPPED' ? node.status : 'SKIPPED';
      const reports = node.reports.filter((report): report is ExecutionReport => report !== undefined);
      for (const report of reports) {
        tokenUsage.input += report.tokenUsage.input;
        tokenUsage.output += report.tokenUsage.output;
        tokenUsage.total += report.tokenUsage.total;
        toolTotal += report.toolUsage.total;
        for (const [tool, calls] of Object.entries(report.toolUsage.byTool)) byTool[tool] = (byTool[tool] ?? 0) + calls;
      }
      if (status === 'SUCCESS') counts.succeeded += 1;
      else if (status === 'FAILED') counts.failed += 1;
      else counts.skipped += 1;
      const reason = status === 'SKIPPED' ? (node.reason ?? { kind: 'cancelled' as const, message: 'The workflow ended before the node could run' }) : undefined;
      if (status === 'FAILED' || (reason !== undefined && reason.kind !== 'condition')) failed = true;
      nodes[name] = {
        status,
        ...(node.spec.each !== undefined ? (status === 'SKIPPED' ? {} : { reports }) : reports[0] === undefined ? {} : { report: reports[0] }),
        ...(reason === undefined ? {} : { reason }),
        ...(node.error === undefined ? {} : { error: node.error }),
      };
    }
    const executionTimeMs = Math.max(0, finishedAt - this.#startedAt);
    const result: WorkflowResult = {
      workflow: this.workflow.id,
      workflowRunId: this.workflowRunId,
      workflowHash: this.workflowHash,
      status: failed ? 'FAILED' : 'SUCCESS',
      nodes,
      halted: this.halted ?? null,
      counts,
      tokenUsage,
      toolUsage: { total: toolTotal, byTool },
      executionTimeMs,
      startedAt: new Date(this.#startedAt).toISOString(),
      finishedAt: new Date(finishedAt).toISOString(),
    };
    this.result = result;
    this.#emit('WORKFLOW_COMPLETE', { status: result.status, counts, tokenUsage, executionTimeMs }, finishedAt);
    for (const callback of this.#finished.splice(0)) callback(result);
  }

  /** Waits until every node run's log is durable, and closes the logs. */
  async settleLogs(): Promise<void> {
    await Promise.all(
      [...this.#byExecutionId.values()].map(async (item) => {
        await item.session?.log?.settled();
        item.session?.log?.end();
      }),
    );
    await this.#log?.settled();
  }

  /**
   * Every node finished so far, by name: its report, or its reports for a fan-out node. Kept up to
   * date as nodes finish (building it per node would cost O(nodes) each time); what `task`, `each`
   * and `when` receive is a read-only view of it.
   */
  #results(): WorkflowResults {
    return this.#resultsView;
  }

  get #observed(): boolean {
    return this.hub.observed || this.#internals.workflowHub.observed;
  }

  /**
   * Emits an event to the live streams (when anyone listens) and, for the workflow's own events,
   * to its durable log. The log numbers its events on its own (it never holds RUN_EVENT), so a
   * stored event's `seq` is its place in the log, not in the live stream.
   */
  #emit<T extends WorkflowEventType>(type: T, payload: Extract<WorkflowEvent, { type: T }>['payload'], timestamp?: number): void {
    const log = type === 'RUN_EVENT' ? undefined : this.#log;
    const observed = this.#observed;
    if (!observed && log === undefined) return;
    const at = timestamp ?? this.#internals.clock.now();
    if (log !== undefined) {
      log.add(Object.freeze({ workflowRunId: this.workflowRunId, workflow: this.workflow.id, seq: this.#logSeq++, timestamp: at, type, payload }) as StoredWorkflowEvent);
    }
    if (!observed) return;
    const event = Object.freeze({
      workflowRunId: this.workflowRunId,
      workflow: this.workflow.id,
      seq: this.#seq++,
      timestamp: at,
      type,
      payload,
    }) as WorkflowEvent;
    this.hub.emit(event);
    this.#internals.workflowHub.emit(event);
  }
}
