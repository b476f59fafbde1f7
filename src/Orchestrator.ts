import { Observable } from 'rxjs';
import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import type { AgentLike, ToolSet } from './agent.js';
import { OaoError, safeString } from './errors.js';
import { EventHub } from './events/EventHub.js';
import type { OaoEvent, OaoEventOf, OaoEventType } from './events/schema.js';
import { agentLifecycleMachine, type AgentLifecycleMachine } from './machines/agentLifecycleMachine.js';
import { StrictPolicy } from './policy/StrictPolicy.js';
import type { PolicyLimits, PolicyOptions } from './policy/schema.js';
import type { ExecutionReport } from './report/schema.js';
import { systemClock, type Clock } from './runtime/clock.js';
import { typeOf } from './options.js';
import { abortReason, prepareResume, prepareRun, type ResumeRequest, type RunRequest } from './runtime/prepareRun.js';
import type { BudgetRaise, PendingApprovalView, RunSession } from './runtime/RunSession.js';
import type { SharedBudget } from './runtime/SharedBudget.js';
import { foldRun } from './log/foldRun.js';
import { checkRaise } from './policy/raiseLimits.js';
import type { RunStore } from './store/RunStore.js';
import type { RunOwnership } from './store/RunLog.js';
import { checkStore, resolveOwnership } from './store/storeOption.js';
import { createMemoryStore } from './store/createMemoryStore.js';
import type { Plugin, PluginToolCall } from './plugins/definePlugin.js';
import { installPlugins, type InstalledPlugins } from './plugins/installPlugins.js';
import { replayLog } from './log/replayLog.js';
import { verifyReplay } from './log/verifyReplay.js';
import { resumePoint } from './log/resumePoint.js';
import { internalsOf, registerInternals } from './runtime/orchestratorInternals.js';
import type { TenantAccount, TenantBudgetSource } from './tenants/TenantLevel.js';
import type { WorkflowEvent } from './events/workflowSchema.js';
import type { Workflow } from './workflow/defineWorkflow.js';
import type { WorkflowResult } from './workflow/WorkflowRun.js';
import { startWorkflow, type WorkflowHandle, type WorkflowRunOptions } from './workflow/startWorkflow.js';
import { resumeWorkflow, type ResumeWorkflowOptions } from './workflow/resumeWorkflow.js';
import { replayWorkflow } from './workflow/replayWorkflow.js';
import { whatIfWorkflow, type WorkflowWhatIfResult } from './workflow/whatIfWorkflow.js';
import { randomRunId } from './runtime/runId.js';

export type { RunRequest, ResumeRequest };

/** Options of `orch.replay()`. */
export interface ReplayOptions {
  /**
   * Re-run `agent` against the log (tool and model results served from it, zero tool bodies and
   * model calls) and confirm it emits the same events; `OAO_ERR_REPLAY_DIVERGED` names the first
   * difference. @default false: rebuild the report from the log alone
   */
  readonly verify?: boolean;
  /** The agent's current code, for `verify`. */
  readonly agent?: AgentLike;
  /** The tools' names for `verify` (their bodies are never run). @default the recorded tool names */
  readonly tools?: ToolSet;
}

/** A started run. */
export interface RunHandle {
  readonly executionId: string;
  /** The run's XState actor: subscribe to snapshots or inspect it. */
  readonly actor: Actor<AgentLifecycleMachine>;
  /** The run's events: those already emitted first, then live ones; completes after EXECUTION_COMPLETE. */
  readonly events$: Observable<OaoEvent>;
  /** Settles with the report; never rejects for agent or policy failures. */
  readonly report: Promise<ExecutionReport>;
  /** Cancels the run (its signal aborts, the report says `cancelled`). No effect once finished. */
  cancel(reason?: string): void;
  /** The events emitted so far. */
  events(): readonly OaoEvent[];
  /** Tool calls of this run waiting for a decision now (see the policy's `tools.approve`). */
  pendingApprovals(): readonly PendingApprovalView[];
  /**
   * Approves a waiting tool call: its body runs (with `args` in place of the requested arguments
   * when given, checked by the policy again). `OAO_ERR_UNKNOWN_APPROVAL` for a call that does not
   * wait, `OAO_ERR_ALREADY_DECIDED` for one already decided or a finished run.
   */
  approve(callId: string, decision?: ApprovalDecision): void;
  /** Denies a waiting tool call: its body never runs and the run ends `policy_violation` (rule `approval_denied`). */
  deny(callId: string, decision?: Omit<ApprovalDecision, 'args'>): void;
  /**
   * Takes a run that waits for approval out of this process, so that it costs no memory while a
   * person decides: its actor stops, its log is flushed and its lease given up; `report` rejects
   * with OAO_ERR_RUN_UNLOADED. Decide with `orch.approve(executionId, callId)` (any process on the
   * store) and continue it with `orch.resume()`. Needs a store; only a waiting run can be unloaded.
   */
  unload(): Promise<void>;
  /**
   * Raises limits of a run paused at a limit (the policy's `onLimit: { maxSteps: 'pause' }`), up
   * to the orchestrator's own policy, and lets it go on. `handle.cancel()` ends it instead.
   */
  raise(limits: BudgetRaise, decision?: { readonly by?: string; readonly reason?: string }): void;
}

export type { BudgetRaise };

/** Who decided on a waiting tool call, and why; an approver may also edit its arguments. */
export interface ApprovalDecision {
  readonly by?: string;
  readonly reason?: string;
  /** Arguments to run the tool with instead of the requested ones (JSON; the tool's schema, if any, must accept them). */
  readonly args?: unknown;
}

export type { PendingApprovalView };

export type OaoInspector = Observer<InspectionEvent> | ((event: InspectionEvent) => void);

export interface OrchestratorOptions {
  /**
   * The limits every run is held to; a run may only narrow them.
   * @default new StrictPolicy()
   */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Passed to every run actor: an XState inspector (for example from `@statelyai/inspect`). */
  readonly inspect?: OaoInspector;
  /**
   * Time source for timestamps, deadlines and retry backoff; XState's `SimulatedClock` fits.
   * @default the system clock
   */
  readonly clock?: Clock;
  /** Called when a hook registered with `on()` throws or rejects. @default logs with console.error */
  readonly onHookError?: (error: unknown, event: OaoEvent) => void;
  /** Makes execution ids. @default time-ordered random UUIDs (version 7) */
  readonly generateId?: () => string;
  /**
   * Where every run's event log is written (see docs/durability.md). A run's promise settles once
   * its last event is durable; a run whose log cannot be written ends FAILED with the store's error
   * before doing anything more. `false` records nothing: `replay(executionId)`, `resume()` and
   * decisions on runs that are not live are then unavailable.
   * @default createMemoryStore({ maxRuns: 1000 }): every run is recorded in this process's memory,
   * and the 1,000 most recently finished runs are kept
   */
  readonly store?: RunStore | false;
  /**
   * The name this orchestrator leases its recorded runs under: while a run is live its lease is
   * renewed, so a run whose process died lists as `interrupted` once the lease expires.
   * @default host name, process id and a random part
   */
  readonly owner?: string;
  /** How long a run's lease lasts without renewal (renewed every third of it). @default 10000 */
  readonly leaseTtlMs?: number;
  /**
   * Plugins made by `definePlugin()`: their rules are asked before every step, tool call, model
   * call and usage charge of every run, like the policy's limits; their tools join every run's;
   * their hooks see every event. They can never widen a limit. See docs/plugins.md.
   * @default none
   */
  readonly plugins?: readonly Plugin[];
}

/** Finished runs the default memory store keeps (the newest). */
const DEFAULT_MEMORY_RUNS = 1_000;

const defaultHookError = (error: unknown, event: OaoEvent): void => {
  console.error(`[oao] a hook for ${event.type} failed:`, error);
};

/**
 * Runs agents under a policy. It holds configuration and hooks, never run state: one instance can
 * run any number of runs, one after another or at once, each in its own actor.
 *
 * @example
 * ```ts
 * import { Orchestrator, StrictPolicy } from 'open-agent-orchestrator';
 * class DummyAgent { invoke(task: string) { return { output: `Processed: ${task}` }; } }
 * const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 5 }) });
 * const report = await orch.run({ agent: new DummyAgent(), task: 'Explain AI orchestration' });
 * report.status; // 'SUCCESS'
 * ```
 */
export class Orchestrator {
  readonly policy: StrictPolicy;
  /** Every event of every run of this orchestrator. */
  readonly events$: Observable<OaoEvent>;
  /** Every event of every workflow run of this orchestrator (its node runs' events also reach `events$`). */
  readonly workflowEvents$: Observable<WorkflowEvent>;
  readonly #hub: EventHub<OaoEvent>;
  readonly #workflowHub: EventHub<WorkflowEvent>;
  readonly #inspect: OaoInspector | undefined;
  readonly #clock: Clock;
  readonly #customClock: boolean;
  readonly #generateId: () => string;
  readonly #store: RunStore | undefined;
  readonly #ownership: RunOwnership | undefined;
  /** Runs live in this orchestrator, by id: decisions by execution id reach them. */
  readonly #live = new Map<string, RunSession>();
  readonly #plugins: InstalledPlugins | undefined;
  /** Set by a server with tenant budgets (see `useTenantBudgets`); undefined otherwise. */
  #tenantBudgets: TenantBudgetSource | undefined;

  constructor(options: OrchestratorOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected Orchestrator options to be an object, got ${typeOf(options)}`);
    }
    this.policy = options.policy instanceof StrictPolicy ? options.policy : new StrictPolicy(options.policy ?? {});
    this.#inspect = options.inspect;
    this.#clock = options.clock ?? systemClock;
    this.#customClock = options.clock !== undefined;
    this.#generateId = options.generateId ?? randomRunId;
    this.#store = options.store === undefined ? createMemoryStore({ maxRuns: DEFAULT_MEMORY_RUNS }) : options.store === false ? undefined : checkStore(options.store);
    this.#ownership = resolveOwnership(this.#store, options.owner, options.leaseTtlMs);
    const hub = new EventHub<OaoEvent>(options.onHookError ?? defaultHookError);
    this.#hub = hub;
    this.events$ = hub.events$;
    this.#plugins = installPlugins(options.plugins, (type, hook) => {
      hub.on(type, hook);
    });
    this.#workflowHub = new EventHub<WorkflowEvent>((error, event) => console.error(`[oao] a hook for ${event.type} failed:`, error));
    this.workflowEvents$ = this.#workflowHub.events$;
    registerInternals(this, {
      policy: this.policy,
      clock: this.#clock,
      customClock: this.#customClock,
      generateId: this.#generateId,
      store: this.#store,
      ownership: this.#ownership,
      inspect: this.#inspect,
      hub,
      workflowHub: this.#workflowHub,
      plugins: this.#plugins,
      live: this.#live,
      useTenantBudgets: (source) => {
        this.#tenantBudgets = source;
      },
      startShared: (request, shared, tenant) => {
        const report = reportPromise();
        const { session, actor } = this.#launch(request, false, report.resolve, true, shared, tenant);
        return new Handle(session, actor, report, () => this.#forget(session));
      },
      startResumedShared: async (executionId, request, shared, tenant) => {
        const started = await this.#resume(executionId, request, true, shared, tenant);
        if ('report' in started) {
          throw new OaoError('OAO_ERR_RUN_FINISHED', `Run "${executionId}" has finished: there is nothing to resume`, {
            details: { executionId, status: started.report.status },
          });
        }
        return new Handle(started.session, started.actor, started.done, () => this.#forget(started.session));
      },
    });
  }

  /**
   * Runs a workflow (see `defineWorkflow` and docs/workflows.md) to its end: its nodes are
   * governed runs of this orchestrator. Rejects only for invalid arguments; every node's outcome
   * is in the result.
   */
  runWorkflow<I>(workflow: Workflow<I>, input: I, options?: WorkflowRunOptions): Promise<WorkflowResult> {
    try {
      return this.startWorkflow(workflow, input, options).result;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Starts a workflow and returns its handle at once. Throws a typed error for invalid arguments. */
  startWorkflow<I>(workflow: Workflow<I>, input: I, options?: WorkflowRunOptions): WorkflowHandle {
    return startWorkflow(internalsOf(this), workflow, input, options);
  }

  /**
   * Continues a workflow run whose process died, from this orchestrator's store (see
   * docs/workflows.md, "Durable workflows"): `workflow` supplies the agents and tools, and must
   * have the shape it ran with (`OAO_ERR_WORKFLOW_MISMATCH`). Nodes the log had settled are not
   * run again; node runs cut short go on from their logs as `resume()` continues a run; the rest
   * are scheduled as usual. A workflow run that had finished resolves with its stored result.
   */
  async resumeWorkflow<I>(workflowRunId: string, workflow: Workflow<I>, options?: ResumeWorkflowOptions): Promise<WorkflowResult> {
    const resumed = await this.startResumedWorkflow(workflowRunId, workflow, options);
    return 'finished' in resumed ? resumed.finished : resumed.result;
  }

  /** `resumeWorkflow()`, answering the resumed run's handle once its node runs are leased (or the stored result of a finished one). */
  async startResumedWorkflow<I>(workflowRunId: string, workflow: Workflow<I>, options?: ResumeWorkflowOptions): Promise<WorkflowHandle | { readonly finished: WorkflowResult }> {
    const resumed = await resumeWorkflow(internalsOf(this), workflowRunId, workflow, options);
    if ('finished' in resumed) return resumed;
    queueMicrotask(resumed.start);
    return resumed.handle;
  }

  /**
   * Rebuilds a finished workflow run's result from the store alone, with zero agent, tool and
   * model calls (each node run's report from its own log, as `replay()` does). Its own method
   * because it answers a `WorkflowResult`, not a report.
   */
  replayWorkflow(workflowRunId: string): Promise<WorkflowResult> {
    return replayWorkflow(this.#store, workflowRunId);
  }

  /**
   * Evaluates `policy` against a recorded workflow run: which nodes' runs it would have stopped,
   * and which nodes would then have been skipped. From the store alone.
   */
  whatIfWorkflow(workflowRunId: string, policy: StrictPolicy | PolicyOptions): Promise<WorkflowWhatIfResult> {
    return whatIfWorkflow(this.#store, workflowRunId, policy);
  }

  /** Where this orchestrator records its runs; undefined when created with `store: false`. */
  get store(): RunStore | undefined {
    return this.#store;
  }

  /** Runs an agent to its end. Rejects only for invalid arguments; every run outcome is in the report. */
  run(request: RunRequest): Promise<ExecutionReport> {
    return new Promise<ExecutionReport>((resolve) => this.#launch(request, false, resolve));
  }

  /**
   * Runs a synchronous agent to its end without the event loop, through the same machine. Throws
   * `OAO_ERR_ASYNC_IN_SYNC_RUN` (with the failed report on `error.details.report`) if the agent
   * returns a promise. Time limits cannot interrupt a blocking agent here.
   */
  runSync(request: RunRequest): ExecutionReport {
    if (this.#store !== undefined && this.#store.synchronous !== true) {
      throw new OaoError(
        'OAO_ERR_INVALID_ARGUMENT',
        'runSync() cannot record to a store that writes asynchronously (such as PostgreSQL): use run(), or a synchronous store (memory, SQLite)',
        { details: { field: 'store' } },
      );
    }
    const { session, actor } = this.#launch(request, true);
    if (session.report === undefined) {
      // Something is waiting on a timer (only retry backoff can): a sync run cannot wait.
      session.failWith(new OaoError('OAO_ERR_ASYNC_IN_SYNC_RUN', 'runSync() could not finish without waiting'));
      actor.send({ type: 'CANCEL' });
    }
    const report = session.report as ExecutionReport;
    // A synchronous store: the last events are written before runSync returns. A failure here
    // comes after the report was final; it is reported like any store failure, never thrown.
    try {
      void session.log?.flush();
      session.log?.end();
    } catch {
      // the stored log ends without EXECUTION_COMPLETE: the run lists as interrupted
    }
    if (report.error?.code === 'OAO_ERR_ASYNC_IN_SYNC_RUN') {
      throw new OaoError('OAO_ERR_ASYNC_IN_SYNC_RUN', report.error.message, { details: { report } });
    }
    return report;
  }

  /** Starts a run and returns its handle at once. Throws a typed error for invalid arguments. */
  start(request: RunRequest): RunHandle {
    const report = reportPromise();
    const { session, actor } = this.#launch(request, false, report.resolve, true);
    return new Handle(session, actor, report, () => this.#forget(session));
  }

  /**
   * Rebuilds a finished run's report from its log alone, with zero agent, tool and model calls:
   * from the events given, or from this orchestrator's store by execution id. The result is the
   * report the run returned (same canonical JSON and executionHash). A damaged log is
   * `OAO_ERR_LOG_CORRUPT`; a log that has not finished, or an id without a store,
   * `OAO_ERR_INVALID_ARGUMENT`.
   */
  async replay(source: string | readonly OaoEvent[], options?: ReplayOptions): Promise<ExecutionReport> {
    let events: readonly OaoEvent[];
    if (typeof source === 'string') {
      if (this.#store === undefined) {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'replay(executionId) reads the run from the store, and this orchestrator was created with store: false: pass the events', {
          details: { field: 'store' },
        });
      }
      events = await this.#store.events(source);
      if (events.length === 0) throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no run "${source}"`, { details: { executionId: source } });
    } else if (Array.isArray(source)) {
      events = source;
    } else {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected an execution id or an array of events, got ${typeOf(source)}`, { details: { field: 'source' } });
    }
    if (options === undefined || options.verify !== true) return replayLog(events);
    if (options.agent === undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'replay(..., { verify: true }) needs the agent to re-run', { details: { field: 'agent' } });
    }
    return verifyReplay(events, { agent: options.agent, ...(options.tools === undefined ? {} : { tools: options.tools }) });
  }

  /**
   * Calls `hook` for every event of `type` (or every event, with '*'). A hook that throws or
   * rejects is reported to `onHookError` and never changes a run. Returns the unsubscribe function.
   */
  on<T extends OaoEventType>(type: T | '*', hook: (event: T extends OaoEventType ? OaoEventOf<T> : OaoEvent) => unknown): () => void {
    return this.#hub.on(type, hook as (event: OaoEvent) => unknown);
  }

  /**
   * Continues a run whose process died (or that was unloaded) from its log in this
   * orchestrator's store, under the same `executionId`: `seq` continues without a gap, completed
   * steps are not run again, and the step that was in flight runs again with its recorded tool
   * calls, model calls and usage served from the log (a tool call recorded without a result runs
   * again under the same `ctx.callId`). Limits count everything already spent; time while no
   * process held the run is not charged to `timeoutMs` (the report's `wallTimeMs` includes it).
   *
   * The run is leased first: `OAO_ERR_LEASE_HELD` while another owner's lease is live, so two
   * processes never continue the same run. A run that has already finished resolves with its
   * stored report. An unknown id is `OAO_ERR_RUN_NOT_FOUND`.
   */
  /**
   * Approves a tool call waiting for a decision, by run and call id: a run live in this
   * orchestrator continues at once; a run held by the store (its process died, or it was left by
   * another process) gets the decision recorded in its log, and continues when it is resumed
   * (`resume()`; `oao serve` resumes such runs itself). Typed errors: `OAO_ERR_RUN_NOT_FOUND`,
   * `OAO_ERR_UNKNOWN_APPROVAL`, `OAO_ERR_ALREADY_DECIDED`, `OAO_ERR_LEASE_HELD` (another live
   * process holds the run: decide there).
   */
  async approve(executionId: string, callId: string, decision: ApprovalDecision = {}): Promise<void> {
    await this.#decide(executionId, callId, true, decision);
  }

  /** Denies a waiting tool call by run and call id (see `approve()`); the run ends `policy_violation`. */
  async deny(executionId: string, callId: string, decision: Omit<ApprovalDecision, 'args'> = {}): Promise<void> {
    await this.#decide(executionId, callId, false, decision);
  }

  /**
   * Raises limits of a run paused at a limit (see `handle.raise()`), up to this orchestrator's own
   * policy. A run live here goes on at once; a run no process holds gets BUDGET_RAISED in its log
   * and goes on when resumed. `OAO_ERR_RUN_NOT_FOUND`, `OAO_ERR_ALREADY_DECIDED` (finished),
   * `OAO_ERR_LEASE_HELD` (live in another process), `OAO_ERR_INVALID_ARGUMENT` (not paused, or a
   * value out of range).
   */
  raise(executionId: string, limits: BudgetRaise, decision: { readonly by?: string; readonly reason?: string } = {}): Promise<void> {
    const live = this.#live.get(executionId);
    if (live === undefined) {
      return this.#appendToStored(executionId, (events, now) => recordRaise(events, limits, decision, now, this.policy.limits));
    }
    try {
      live.raise(limits, decision);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Tool calls waiting for a decision in the runs live in this orchestrator. */
  pendingApprovals(): readonly (PendingApprovalView & { readonly executionId: string; readonly agentName: string })[] {
    const pending: (PendingApprovalView & { executionId: string; agentName: string })[] = [];
    for (const session of this.#live.values()) {
      if (!session.waitingForApproval) continue;
      for (const view of session.pendingApprovals) pending.push({ ...view, executionId: session.executionId, agentName: session.agentName });
    }
    return pending;
  }

  #forget(session: RunSession): void {
    if (this.#live.get(session.executionId) === session) this.#live.delete(session.executionId);
  }

  async #decide(executionId: string, callId: string, approve: boolean, decision: ApprovalDecision): Promise<void> {
    if (typeof decision !== 'object' || decision === null) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the decision to be an object, got ${typeOf(decision)}`, { details: { field: 'decision' } });
    }
    const live = this.#live.get(executionId);
    if (live !== undefined) {
      live.decide(callId, { approve, by: decision.by, reason: decision.reason, ...(approve && decision.args !== undefined ? { args: decision.args } : {}) });
      return;
    }
    await this.#appendToStored(executionId, (events, now) => recordDecision(events, callId, approve, decision, now));
  }

  /**
   * Records one event in the log of a run that is not live here: under the run's lease (so no
   * live owner elsewhere is written over), built from the log as it stands. A conflicting append
   * (another decider of this process got there first) is answered from the log as it is then.
   */
  async #appendToStored(executionId: string, build: (events: readonly OaoEvent[], now: number) => OaoEvent): Promise<void> {
    const store = this.#store;
    const ownership = this.#ownership;
    if (store === undefined || ownership === undefined) {
      throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `No run "${safeString(executionId)}" is live in this orchestrator, and it has no store to find it in`, {
        details: { executionId: safeString(executionId) },
      });
    }
    const stored = await store.get(executionId);
    if (stored === undefined) throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no run "${executionId}"`, { details: { executionId } });
    const lease = await store.acquireLease(executionId, ownership.owner, ownership.ttlMs);
    if (lease === undefined) {
      throw new OaoError('OAO_ERR_LEASE_HELD', `Run "${executionId}" is live in another process: decide there`, { details: { executionId } });
    }
    try {
      const events = await store.events(executionId);
      const event = build(events, this.#clock.now());
      try {
        await store.append(executionId, [event], { lease });
      } catch (error) {
        // Another decider of this process (same owner, so the same lease) appended first: say why
        // this one is refused, from the log as it is now.
        if (OaoError.isInstance(error) && error.code === 'OAO_ERR_LOG_CONFLICT') build(await store.events(executionId), this.#clock.now());
        throw error;
      }
    } finally {
      await Promise.resolve(store.releaseLease(lease)).catch(() => {});
    }
  }

  async resume(executionId: string, request: ResumeRequest): Promise<ExecutionReport> {
    const started = await this.#resume(executionId, request, false);
    if ('report' in started) return started.report;
    return started.done.promise;
  }

  /**
   * `resume()`, returning the continued run's handle once its lease is taken and its log read:
   * its `events$` and `events()` carry the events emitted from here on. A run that has already
   * finished is `OAO_ERR_RUN_FINISHED`.
   */
  async startResumed(executionId: string, request: ResumeRequest): Promise<RunHandle> {
    const started = await this.#resume(executionId, request, true);
    if ('report' in started) {
      throw new OaoError('OAO_ERR_RUN_FINISHED', `Run "${executionId}" has finished: there is nothing to resume`, {
        details: { executionId, status: started.report.status },
      });
    }
    return new Handle(started.session, started.actor, started.done, () => this.#forget(started.session));
  }

  async #resume(
    executionId: string,
    request: ResumeRequest,
    keepEvents: boolean,
    shared?: SharedBudget,
    tenant?: TenantAccount,
  ): Promise<{ report: ExecutionReport } | { session: RunSession; actor: Actor<AgentLifecycleMachine>; done: ReportPromise }> {
    const store = this.#store;
    const ownership = this.#ownership;
    if (store === undefined || ownership === undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'resume() continues a run from its stored log: this orchestrator was created with store: false', {
        details: { field: 'store' },
      });
    }
    if (typeof executionId !== 'string' || executionId.length === 0) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected an execution id, got ${typeOf(executionId)}`, { details: { field: 'executionId' } });
    }
    const stored = await store.get(executionId);
    if (stored === undefined) {
      throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no run "${executionId}"`, { details: { executionId } });
    }
    const finished = await store.report(executionId);
    if (finished !== undefined) return { report: finished };
    const lease = await store.acquireLease(executionId, ownership.owner, ownership.ttlMs);
    if (lease === undefined) {
      throw new OaoError('OAO_ERR_LEASE_HELD', `Run "${executionId}" is held by another owner whose lease is still live`, {
        details: { executionId },
      });
    }
    let point;
    let pluginToolCalls: PluginToolCall[] | undefined;
    try {
      // Read after the lease is taken: a stale owner can append nothing from now on.
      const events = await store.events(executionId);
      if (events[events.length - 1]?.type === 'EXECUTION_COMPLETE') {
        await store.releaseLease(lease);
        return { report: (await store.report(executionId)) as ExecutionReport };
      }
      point = resumePoint(events);
      // Plugins' rules see every tool call of the run, those before the crash too.
      if (this.#plugins?.rules !== undefined) {
        pluginToolCalls = [];
        for (const event of events) if (event.type === 'TOOL_CALL') pluginToolCalls.push(Object.freeze({ tool: event.payload.tool, args: event.payload.args }));
      }
    } catch (error) {
      await Promise.resolve(store.releaseLease(lease)).catch(() => {});
      throw error;
    }
    let prepared;
    try {
      prepared = prepareResume(point, request, {
        policy: this.policy,
        clock: this.#clock,
        sink: this.#hub,
        generateId: this.#generateId,
        syncOnly: false,
        record: keepEvents,
        store,
        ownership,
        lease,
        ...(shared === undefined ? {} : { shared }),
        tenantBudgets: tenant === undefined ? this.#tenantBudgets : () => tenant,
        ...(this.#plugins === undefined ? {} : { plugins: this.#plugins }),
        ...(pluginToolCalls === undefined ? {} : { pluginToolCalls }),
      });
      // What the run spent before it was cut short counts against the budgets it continues under.
      const spent = prepared.session;
      if (shared !== undefined) {
        shared.steps += spent.steps;
        shared.tokens += spent.tokensTotal;
        shared.toolCalls += spent.toolCalls;
        shared.costMicros += spent.costMicros;
      }
      spent.tenantBudget?.chargePrior({ steps: spent.steps, tokens: spent.tokensTotal, toolCalls: spent.toolCalls, costMicros: spent.costMicros });
    } catch (error) {
      await Promise.resolve(store.releaseLease(lease)).catch(() => {});
      throw error;
    }
    const done = reportPromise();
    const { session, actor } = this.#startSession(prepared.session, prepared.signal, false, done.resolve, ownership.owner);
    return { session, actor, done };
  }

  #launch(
    request: RunRequest,
    syncOnly: boolean,
    onFinish?: (report: ExecutionReport) => void,
    keepEvents = false,
    shared?: SharedBudget,
    tenant?: TenantAccount,
  ): { session: RunSession; actor: Actor<AgentLifecycleMachine> } {
    const { session, signal } = prepareRun(request, {
      policy: this.policy,
      clock: this.#clock,
      sink: this.#hub,
      generateId: this.#generateId,
      syncOnly,
      // Only a handle can read a run's events after the fact; plain run() and runSync() keep none.
      record: keepEvents,
      tenantBudgets: tenant === undefined ? this.#tenantBudgets : () => tenant,
      // Plain fields, undefined when absent: spreading optional parts into this literal on every
      // run cost more than the rest of it.
      shared,
      store: this.#store,
      ownership: this.#store === undefined ? undefined : this.#ownership,
      plugins: this.#plugins,
    });
    return this.#startSession(session, signal, syncOnly, onFinish);
  }

  /** Starts a prepared run's actor; `resumedBy` marks a run continued from its log. */
  #startSession(
    session: RunSession,
    signal: AbortSignal | undefined,
    syncOnly: boolean,
    onFinish?: (report: ExecutionReport) => void,
    resumedBy?: string,
  ): { session: RunSession; actor: Actor<AgentLifecycleMachine> } {
    const actor = createActor(agentLifecycleMachine, {
      id: session.executionId,
      input: { session },
      ...(this.#inspect === undefined ? {} : { inspect: this.#inspect }),
      ...(this.#customClock ? { clock: this.#clock } : {}),
    });
    session.bindActor(actor);
    this.#live.set(session.executionId, session);
    const onAbort = signal === undefined ? undefined : () => session.cancel(abortReason(signal));
    session.onFinish((report) => {
      if (this.#live.get(session.executionId) === session) this.#live.delete(session.executionId);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      const log = session.log;
      // Durable first: whoever awaits the report may rely on the whole log being stored.
      if (log === undefined || syncOnly) {
        onFinish?.(report);
        return;
      }
      // A synchronous store (memory, SQLite) has the whole log once this flush returns: the report
      // goes out without another turn of the event loop.
      let pending: void | Promise<void>;
      try {
        pending = log.flush();
      } catch {
        pending = undefined; // reported through the log's onFailure; the report is final
      }
      if (pending === undefined) {
        log.end();
        onFinish?.(report);
      } else
        void pending.then(undefined, () => {}).then(() => {
          log.end();
          onFinish?.(report);
        });
    });
    // An error inside the actor is a defect, but it must still end in a report.
    actor.subscribe({ error: (error) => session.crash(error) });
    if (resumedBy === undefined) session.begin(false);
    else session.beginResumed(resumedBy, false);
    actor.start();
    if (signal !== undefined && onAbort !== undefined) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    // A run whose signal was aborted before it started has already ended (cancelled).
    if (actor.getSnapshot().status === 'active') actor.send({ type: 'START' });
    // A run whose agent answered synchronously is already over: it never needs a timer.
    if (!syncOnly) session.armDeadline();
    return { session, actor };
  }
}

/** A run's report promise with its settlers: resolved when the run ends, rejected only by unload(). */
interface ReportPromise {
  readonly promise: Promise<ExecutionReport>;
  readonly resolve: (report: ExecutionReport) => void;
  readonly reject: (error: OaoError) => void;
}

function reportPromise(): ReportPromise {
  let resolve!: (report: ExecutionReport) => void;
  let reject!: (error: OaoError) => void;
  const promise = new Promise<ExecutionReport>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

class Handle implements RunHandle {
  readonly #session: RunSession;
  readonly actor: Actor<AgentLifecycleMachine>;
  readonly report: Promise<ExecutionReport>;
  #events$: Observable<OaoEvent> | undefined;

  readonly #forget: () => void;
  readonly #reject: (error: OaoError) => void;

  constructor(session: RunSession, actor: Actor<AgentLifecycleMachine>, report: ReportPromise, forget: () => void) {
    this.#session = session;
    this.actor = actor;
    this.report = report.promise;
    this.#reject = report.reject;
    this.#forget = forget;
  }

  async unload(): Promise<void> {
    const session = this.#session;
    const error = session.unload();
    this.#forget();
    this.actor.stop();
    const log = session.log;
    if (log !== undefined) {
      await log.settled();
      log.end();
    }
    // Only unload() rejects the report; whoever unloads need not also await it.
    this.report.catch(() => {});
    this.#reject(error);
  }

  get executionId(): string {
    return this.#session.executionId;
  }

  get events$(): Observable<OaoEvent> {
    return (this.#events$ ??= replayThenLive(this.#session));
  }

  cancel(reason = 'cancelled by caller'): void {
    // Never throws, whatever the reason is (a Proxy, a throwing toString).
    this.#session.cancel(safeString(reason) || 'cancelled by caller');
  }

  events(): readonly OaoEvent[] {
    return this.#session.events.slice();
  }

  pendingApprovals(): readonly PendingApprovalView[] {
    return this.#session.pendingApprovals;
  }

  approve(callId: string, decision: ApprovalDecision = {}): void {
    this.#session.decide(callId, { approve: true, by: decision.by, reason: decision.reason, ...(decision.args === undefined ? {} : { args: decision.args }) });
  }

  deny(callId: string, decision: Omit<ApprovalDecision, 'args'> = {}): void {
    this.#session.decide(callId, { approve: false, by: decision.by, reason: decision.reason });
  }

  raise(limits: BudgetRaise, decision: { readonly by?: string; readonly reason?: string } = {}): void {
    this.#session.raise(limits, decision);
  }
}

/** The event that raises the limits of a stored run paused at a limit, or the typed error that says why not. */
function recordRaise(events: readonly OaoEvent[], limits: BudgetRaise, decision: { readonly by?: string; readonly reason?: string }, now: number, ceiling: PolicyLimits): OaoEvent {
  const fold = foldRun(events);
  const executionId = events[0]?.executionId ?? '';
  if (fold === undefined) throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no run "${executionId}"`, { details: { executionId } });
  if (fold.report !== undefined || fold.termination !== undefined) {
    throw new OaoError('OAO_ERR_ALREADY_DECIDED', `Run "${executionId}" has finished (or is ending): nothing is left to raise`, { details: { executionId } });
  }
  if (!fold.budgetWaiting) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Run "${executionId}" is not waiting for budget: only a paused run's limits can be raised`, {
      details: { field: 'state', executionId },
    });
  }
  const raised = checkRaise(limits, fold.policy, ceiling);
  const text = (value: unknown, field: string): string | null => {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string' || value.length > 2_000) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${field}" must be a string of at most 2000 characters`, { details: { field } });
    }
    return value;
  };
  const seq = fold.seq;
  return {
    id: `${executionId}:${seq}`,
    executionId,
    seq,
    timestamp: Math.max(now, fold.lastTimestamp),
    state: fold.state ?? 'REVIEW',
    counters: { steps: fold.steps, tokens: fold.tokens.total, toolCalls: fold.toolCalls },
    type: 'BUDGET_RAISED',
    payload: { limits: raised, by: text(decision.by, 'by'), reason: text(decision.reason, 'reason') },
  };
}

/**
 * The event that records a decision on a call a stored run left waiting, or the typed error
 * that says why there is nothing to decide.
 */
function recordDecision(events: readonly OaoEvent[], callId: string, approve: boolean, decision: ApprovalDecision, now: number): OaoEvent {
  const fold = foldRun(events);
  const executionId = events[0]?.executionId ?? '';
  if (fold === undefined) throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no run "${executionId}"`, { details: { executionId } });
  if (fold.report !== undefined || fold.termination !== undefined) {
    throw new OaoError('OAO_ERR_ALREADY_DECIDED', `Run "${executionId}" has finished (or is ending): nothing is left to decide`, { details: { executionId, callId } });
  }
  const pending = fold.pendingApprovals.get(callId);
  if (pending === undefined) {
    if (fold.approvals.some((record) => record.callId === callId)) {
      throw new OaoError('OAO_ERR_ALREADY_DECIDED', `Tool call ${callId} of run "${executionId}" was already decided`, { details: { executionId, callId } });
    }
    throw new OaoError('OAO_ERR_UNKNOWN_APPROVAL', `Run "${executionId}" has no tool call ${safeString(callId)} awaiting approval`, {
      details: { executionId, callId: safeString(callId), pending: [...fold.pendingApprovals.keys()] },
    });
  }
  const text = (value: unknown, field: string): string | null => {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string' || value.length > 2_000) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${field}" must be a string of at most 2000 characters`, { details: { field } });
    }
    return value;
  };
  const by = text(decision.by, 'by');
  const reason = text(decision.reason, 'reason');
  let args: unknown;
  if (approve && decision.args !== undefined) {
    try {
      args = JSON.parse(JSON.stringify(decision.args));
    } catch {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'The edited arguments must be JSON', { details: { field: 'args' } });
    }
  }
  const seq = fold.seq;
  const base = {
    id: `${executionId}:${seq}`,
    executionId,
    seq,
    timestamp: Math.max(now, fold.lastTimestamp),
    state: fold.state ?? 'EXECUTE',
    counters: { steps: fold.steps, tokens: fold.tokens.total, toolCalls: fold.toolCalls },
  };
  return approve
    ? { ...base, type: 'APPROVAL_GRANTED', payload: { step: pending.step, callId, tool: pending.tool, by, reason, ...(args === undefined ? {} : { args }) } }
    : { ...base, type: 'APPROVAL_DENIED', payload: { step: pending.step, callId, tool: pending.tool, by, reason, timedOut: false } };
}

function replayThenLive(session: RunSession): Observable<OaoEvent> {
  return new Observable<OaoEvent>((subscriber) => {
    const recorded = session.events;
    // By index: a subscriber may cause new events while it is being replayed to.
    for (let i = 0; i < recorded.length && !subscriber.closed; i++) subscriber.next(recorded[i] as OaoEvent);
    if (session.finished) {
      subscriber.complete();
      return undefined;
    }
    return session.listen((event) => {
      subscriber.next(event);
      if (event.type === 'EXECUTION_COMPLETE') subscriber.complete();
    });
  });
}
