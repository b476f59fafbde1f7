import { randomUUID } from 'node:crypto';
import type { Plugin } from '../plugins/definePlugin.js';
import { hostname } from 'node:os';
import { from, Observable } from 'rxjs';
import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import { MultiAgentOrchestrator, type BatchHandle } from '../MultiAgentOrchestrator.js';
import type { Metrics } from '../observability/metrics/createMetrics.js';
import { Orchestrator, type OaoInspector, type RunHandle } from '../Orchestrator.js';
import { parseTimeBound } from '../log/parseTimeBound.js';
import { costOf, foldRun } from '../log/foldRun.js';
import { whatIf, type WhatIfFilter } from '../log/whatIf.js';
import type { PolicyLimits, PolicyOptions } from '../policy/schema.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { ExecutionReport } from '../report/schema.js';
import { systemClock, type Clock } from '../runtime/clock.js';
import { useTenantBudgets } from '../runtime/orchestratorInternals.js';
import type { TenantBudgetSource } from '../tenants/TenantLevel.js';
import type { Lease, RunListFilter, RunStore, StoredRun } from '../store/RunStore.js';
import { AppendTracker } from './AppendTracker.js';
import { applyDecision, batchRunDecision, beingTakenUp, finishedHere, notWaiting, oldestFirst, PerKeyQueue, type ApprovalInput, type DecisionApplied } from './approvalDecisions.js';
import { InterruptedRunSweep } from './InterruptedRunSweep.js';
import { QueuedRuns } from './QueuedRuns.js';
import type { RunQueue } from '../queue/createQueue.js';
import { RecordedRun, type LiveRun } from './RecordedRun.js';
import { ResumedRun } from './ResumedRun.js';
import {
  MAX_COUNTED_RUNS,
  MAX_TASK_DEPTH,
  type RunMultiRequestBody,
  type RunRequestBody,
  type RunState,
  type PendingApprovalBody,
  type RunStatus,
  type RunSummary,
  type ServerPolicyResponse,
  type WhatIfRequestBody,
  type WhatIfResponse,
} from './schemas.js';
import { storeCall } from './storeCall.js';
import { randomRunId } from '../runtime/runId.js';

export interface RunServiceInit {
  readonly agents: ReadonlyMap<string, AgentLike>;
  readonly policy: StrictPolicy;
  readonly tools: ToolSet | undefined;
  readonly maxConcurrency: number;
  readonly maxTaskLength: number;
  readonly maxConcurrentRuns: number;
  /** Longest id a request may give its run: what the router can serve in `/runs/:id`. */
  readonly maxExecutionIdLength: number;
  readonly bodyLimit: number;
  /** Where every run is recorded, and where lists, runs and event streams are read from. */
  readonly store: RunStore;
  /** How long a run's lease lasts without renewal. */
  readonly runLeaseTtlMs: number;
  readonly clock: Clock | undefined;
  /** Counts every run and batch of this service. */
  readonly metrics?: Metrics | undefined;
  /** Sees every run actor and supervisor actor of this service. */
  readonly inspect?: OaoInspector | undefined;
  /** Govern every run and batch of this service. */
  readonly plugins?: readonly Plugin[] | undefined;
  /**
   * Take up the runs that stopped processes left live in the store (`interrupted`): resume those
   * whose agent is registered here, end the others FAILED. Swept when {@link RunService.startSweeping}
   * is called, then every `runLeaseTtlMs`.
   */
  readonly resumeInterrupted?: boolean;
  /**
   * Runs go to workers through this queue instead of running here (see `QueuedRuns`); interrupted
   * runs are then enqueued again by the sweep, whatever `resumeInterrupted` says.
   */
  readonly queue?: RunQueue | undefined;
  /** Where failures nobody awaits go. */
  readonly logError: (error: unknown, message: string) => void;
  /** Where what the service did on its own (runs it took up) is told. @default nowhere */
  readonly logInfo?: (message: string) => void;
}

export interface AgentInfo {
  readonly name: string;
  readonly description?: string;
}

export interface RunListQuery {
  readonly limit: number;
  readonly offset?: number | undefined;
  readonly cursor?: string | undefined;
  readonly status?: RunStatus | undefined;
  readonly agent?: string | undefined;
}

export interface CancelOutcome {
  readonly executionId: string;
  /** True when this request cancelled the run. */
  readonly cancelled: boolean;
  /** False when the run was still stopping when the answer was sent. */
  readonly settled: boolean;
  readonly status: RunStatus;
  readonly message: string;
  readonly termination: ExecutionReport['termination'] | null;
}

/**
 * Where a run's event stream comes from: events (stored, then live or followed in the store)
 * that complete after EXECUTION_COMPLETE, or nothing more to send because the run was interrupted.
 */
export type EventSource = { readonly events$: Observable<OaoEvent> } | { readonly interrupted: true };

/** A run live in this process, with what the server knew of it before its first event. */
interface Live {
  readonly run: LiveRun;
  readonly agent: string;
  /** Admission time (ISO 8601): a queued batch run has no EXECUTION_START yet. */
  readonly admittedAt: string;
  readonly policy: PolicyLimits;
}

/** A finished run of this process whose log the store could not complete. */
interface Unfiled {
  readonly agent: string;
  readonly report: ExecutionReport;
  readonly events: readonly OaoEvent[];
  readonly policy: PolicyLimits;
}

/** How long a cancel request waits for the run to reach its final state before answering 202. */
const CANCEL_SETTLE_MS = 1_000;
/** How often a stream of a run live in another process looks for its new events. */
const FOLLOW_POLL_MS = 250;
/** Runs per page when the service counts or skips runs through the store's pages. */
const SCAN_PAGE = 1_000;
/** Finished runs of this process remembered in memory (their batch, or a report the store lacks). */
const REMEMBERED_RUNS = 10_000;
/** The store's retention is applied after this many runs end here, or this long after the last time. */
const PRUNE_EVERY_RUNS = 64;
const PRUNE_EVERY_MS = 60_000;
const SHUTDOWN_REASON = 'the server is shutting down';
/** The codes a run's report carries when its own log could not be written. */
const LOG_FAILURES: ReadonlySet<string> = new Set(['OAO_ERR_STORE', 'OAO_ERR_STORE_UNAVAILABLE', 'OAO_ERR_LEASE_LOST']);

/**
 * The runs of one server: admission (maxConcurrentRuns), policy narrowing, task limits, and the
 * live runs of this process. Every run is recorded in the store by the orchestrator that runs it
 * (its event log, leased to this service); lists, finished runs and the streams of runs that are
 * not live here are read back from the store, so they outlive the process. Routes are thin
 * wrappers around it. It never holds a run's state: that is in each run's actor while it is
 * live, and in its log.
 */
export class RunService {
  readonly #agents: ReadonlyMap<string, AgentLike>;
  readonly #policy: StrictPolicy;
  readonly #tools: ToolSet | undefined;
  readonly #maxConcurrency: number;
  readonly #maxTaskLength: number;
  readonly #maxConcurrentRuns: number;
  readonly #maxExecutionIdLength: number;
  readonly #bodyLimit: number;
  /** The store, as lists and reads use it. */
  readonly #store: RunStore;
  /** The same store, as this service's runs are recorded to it (its appends tracked). */
  readonly #recorded: RunStore;
  readonly #appends = new AppendTracker();
  readonly #owner: string;
  readonly #leaseTtlMs: number;
  readonly #clock: Clock | undefined;
  readonly #logError: (error: unknown, message: string) => void;
  readonly #metrics: Metrics | undefined;
  readonly #inspect: OaoInspector | undefined;
  readonly #plugins: readonly Plugin[] | undefined;
  readonly #orchestrator: Orchestrator;
  /** Accounts on the tenants' budgets for the runs this process starts (see `useTenantBudgets`). */
  #tenantBudgets: TenantBudgetSource | undefined;
  readonly #stopObserving: () => void;
  readonly #live = new Map<string, Live>();
  /** Ids taken by runs that are being set up (checked for duplicates like live ones). */
  readonly #reserved = new Set<string>();
  /** Slots held by admitted requests; `active` is their sum. */
  readonly #admitted = new Set<{ readonly slots: number }>();
  /** The batch of each batch run of this process (a log records only the queued batch whose shared budget its run spends). */
  readonly #batchOf = new Map<string, string>();
  /**
   * The tenant of each run this process started with one: its log records it, but the store's
   * index (what GET /runs lists) does not.
   */
  readonly #tenantOf = new Map<string, string>();
  readonly #unfiled = new Map<string, Unfiled>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Decisions on tool calls, one run at a time. */
  readonly #decisions = new PerKeyQueue();
  readonly #sweep: InterruptedRunSweep | undefined;
  readonly #queued: QueuedRuns | undefined;
  #closing = false;
  /** Runs ended since the store's retention was last applied, and when that was (ms). */
  #endedSincePrune = 0;
  #prunedAt = Number.NEGATIVE_INFINITY;

  constructor(init: RunServiceInit) {
    this.#agents = init.agents;
    this.#policy = init.policy;
    this.#tools = init.tools;
    this.#maxConcurrency = init.maxConcurrency;
    this.#maxTaskLength = init.maxTaskLength;
    this.#maxConcurrentRuns = init.maxConcurrentRuns;
    this.#maxExecutionIdLength = init.maxExecutionIdLength;
    this.#bodyLimit = init.bodyLimit;
    this.#store = init.store;
    this.#recorded = this.#appends.wrap(init.store);
    // One owner per service: a run leased by it is live in this process and nowhere else.
    this.#owner = `oao-server:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.#leaseTtlMs = init.runLeaseTtlMs;
    this.#clock = init.clock;
    this.#logError = init.logError;
    this.#metrics = init.metrics;
    this.#inspect = init.inspect;
    this.#plugins = init.plugins;
    this.#orchestrator = new Orchestrator({
      policy: init.policy,
      store: this.#recorded,
      owner: this.#owner,
      leaseTtlMs: init.runLeaseTtlMs,
      ...(init.clock === undefined ? {} : { clock: init.clock }),
      ...(init.inspect === undefined ? {} : { inspect: init.inspect }),
      ...(init.plugins === undefined ? {} : { plugins: init.plugins }),
      onHookError: (error) => init.logError(error, 'an event hook failed'),
    });
    this.#stopObserving = init.metrics?.observe(this.#orchestrator) ?? (() => undefined);
    const queued = init.queue === undefined ? undefined : new QueuedRuns(init.queue, init.store, init.policy, init.tools, init.clock ?? systemClock);
    this.#queued = queued;
    this.#sweep =
      init.resumeInterrupted === true || queued !== undefined
        ? new InterruptedRunSweep({
            store: init.store,
            agents: init.agents,
            owner: this.#owner,
            leaseTtlMs: init.runLeaseTtlMs,
            // A run's lease expires at most a TTL after its process died: sweeping as often finds it within two.
            intervalMs: init.runLeaseTtlMs,
            now: () => (init.clock ?? systemClock).now(),
            isHere: (executionId) => this.#live.has(executionId) || this.#reserved.has(executionId) || this.#unfiled.has(executionId),
            // With a queue, a run nobody holds goes back to the workers (a no-op while its job exists).
            resume: (run, agent) => (queued === undefined ? this.#resumeInterrupted(run, agent) : queued.requeue(run)),
            logError: init.logError,
            logInfo: init.logInfo ?? (() => undefined),
          })
        : undefined;
  }

  /**
   * Starts taking up interrupted runs (when `resumeInterrupted`): one sweep now, then one every
   * `runLeaseTtlMs`, until {@link close}. The server calls it once it is ready.
   */
  startSweeping(): void {
    if (!this.#closing) this.#sweep?.start();
  }

  /** The metrics this service counts into, if any. */
  get metrics(): Metrics | undefined {
    return this.#metrics;
  }

  /**
   * Checks every run this process starts for a tenant (POST /run, /runs, /run-multi) against what
   * its tenant's budget has left, at each step, tool call and model call (see TenantBudgets).
   */
  useTenantBudgets(source: TenantBudgetSource | undefined): void {
    this.#tenantBudgets = source;
    useTenantBudgets(this.#orchestrator, source);
  }

  /** Runs executing now, over all endpoints. */
  get active(): number {
    let slots = 0;
    for (const admission of this.#admitted) slots += admission.slots;
    return slots;
  }

  /** The server's own limits: what a request's policy and body can at most be. */
  limits(): ServerPolicyResponse {
    return {
      policy: this.#policy.limits,
      maxConcurrency: this.#maxConcurrency,
      limits: {
        bodyLimit: this.#bodyLimit,
        maxTaskLength: this.#maxTaskLength,
        maxConcurrentRuns: this.#maxConcurrentRuns,
        maxExecutionIdLength: this.#maxExecutionIdLength,
      },
    };
  }

  agents(): AgentInfo[] {
    return [...this.#agents].map(([name, agent]) => {
      const description = (agent as { description?: unknown }).description;
      return typeof description === 'string' ? { name, description } : { name };
    });
  }

  /**
   * Starts one run and returns at once; `finished` settles with its report once the run's whole
   * log is in the store (so a GET right after sees it finished). `effectivePolicy` is what the
   * run runs under: the server's policy narrowed by the request's. A store that cannot take the
   * run is `OAO_ERR_STORE_UNAVAILABLE`, and then no run was started. `tenant` is the request's
   * API key's (never the body's): recorded in the run's EXECUTION_START.
   */
  async start(body: RunRequestBody, tenant?: string): Promise<{ executionId: string; effectivePolicy: PolicyLimits; finished: Promise<ExecutionReport> }> {
    const agent = this.#agent(body.agent, 'body.agent');
    const policy = this.#narrow(body.policy);
    this.#checkTask(body.task);
    if (this.#queued !== undefined) return this.#enqueue(body, agent, policy, this.#queued, tenant);
    const release = this.#admit(1);
    let executionId: string;
    let handle: RunHandle;
    try {
      const claim = await this.#claim(body.executionId);
      executionId = claim.executionId;
      try {
        handle = this.#orchestrator.start({
          agent,
          // The registered name, not the agent's own: two agents registered apart never share one.
          agentName: body.agent,
          task: body.task,
          policy,
          executionId,
          ...(tenant === undefined ? {} : { tenant }),
          ...(this.#tools === undefined ? {} : { tools: this.#tools }),
        });
      } catch (error) {
        this.#releaseLease(claim.lease);
        throw bodyField(error);
      } finally {
        this.#reserved.delete(executionId);
      }
    } catch (error) {
      release();
      throw error;
    }
    const started = handle;
    this.#live.set(executionId, { run: started, agent: body.agent, admittedAt: this.#now(), policy: policy.limits });
    if (tenant !== undefined) this.#remember(this.#tenantOf, executionId, tenant);
    const finished = this.#track(
      started.report.then((report) => {
        this.#settle(executionId, report);
        release();
        return report;
      }),
    );
    return { executionId, effectivePolicy: policy.limits, finished };
  }

  /**
   * `runMulti()` with a queue: each job is a run of its own on the workers (recorded, then
   * enqueued, in job order), and the answer waits for every report. The queue's limits apply to
   * them, not the batch's `maxConcurrency`. The batch's `budget` is created in Redis first, and
   * every run's job names it: the workers charge it atomically (see `RunQueue.createBatch`).
   */
  async #enqueueBatch(
    body: RunMultiRequestBody,
    jobs: readonly Job[],
    policy: StrictPolicy,
    maxConcurrency: number,
    queued: QueuedRuns,
    tenant: string | undefined,
  ): Promise<{ batchId: string; maxConcurrency: number; effectivePolicy: PolicyLimits; reports: Record<string, ExecutionReport> }> {
    const batchId = randomRunId();
    if (body.budget !== undefined) {
      const budget = body.budget;
      // A budget the queue cannot hold (timeoutMs) is the body's fault; Redis not answering is 503.
      await queued.createBatch(batchId, budget).catch((error: unknown) => {
        throw bodyField(error);
      });
    }
    const batch = body.budget === undefined ? undefined : batchId;
    const started: Promise<ExecutionReport>[] = [];
    for (const job of jobs) {
      const run = await this.#enqueue({ agent: job.agentName, task: body.task, ...(body.policy === undefined ? {} : { policy: body.policy }) }, job.agent, policy, queued, tenant, batch);
      this.#remember(this.#batchOf, run.executionId, batchId);
      started.push(run.finished);
    }
    const reports = await Promise.all(started);
    const byName = Object.fromEntries(jobs.map((job, index) => [job.name, reports[index] as ExecutionReport]));
    return { batchId, maxConcurrency, effectivePolicy: policy.limits, reports: byName };
  }

  /**
   * `start()` with a queue: the run's start is recorded, then it is enqueued (the queue's error
   * when it does not take it); `finished` settles once a worker has stored its report.
   */
  async #enqueue(
    body: RunRequestBody,
    agent: AgentLike,
    policy: StrictPolicy,
    queued: QueuedRuns,
    tenant: string | undefined,
    batch?: string,
  ): Promise<{ executionId: string; effectivePolicy: PolicyLimits; finished: Promise<ExecutionReport> }> {
    if (this.#closing) throw shuttingDown();
    const { executionId, lease } = await this.#claim(body.executionId);
    const submission = { executionId, lease, agent, agentName: body.agent, task: body.task, policyOptions: body.policy, policy, tenant, batch };
    try {
      await storeCall('start', () => queued.recordStart(submission));
    } catch (error) {
      this.#reserved.delete(executionId);
      this.#releaseLease(lease);
      throw bodyField(error);
    }
    try {
      await queued.enqueue(submission);
    } finally {
      this.#reserved.delete(executionId);
    }
    if (tenant !== undefined) this.#remember(this.#tenantOf, executionId, tenant);
    const finished = queued.waitForReport(executionId);
    // POST /runs answers without it: a report nobody awaits must not become an unhandled rejection.
    finished.catch(() => {});
    return { executionId, effectivePolicy: policy.limits, finished };
  }

  /** Runs several agents on one task under a MultiAgentOrchestrator; one report per job name, every run of `tenant`. */
  async runMulti(
    body: RunMultiRequestBody,
    tenant?: string,
  ): Promise<{ batchId: string; maxConcurrency: number; effectivePolicy: PolicyLimits; reports: Record<string, ExecutionReport> }> {
    const jobs = this.#jobsOf(body.agents);
    const policy = this.#narrow(body.policy);
    this.#checkTask(body.task);
    const maxConcurrency = Math.min(body.maxConcurrency ?? this.#maxConcurrency, this.#maxConcurrency, this.#maxConcurrentRuns);
    if (this.#queued !== undefined) return this.#enqueueBatch(body, jobs, policy, maxConcurrency, this.#queued, tenant);
    const release = this.#admit(Math.min(jobs.length, maxConcurrency));
    const batchId = randomRunId();
    const admittedAt = this.#now();
    const controllers = jobs.map(() => new AbortController());
    let runs: RecordedRun[];
    let handle: BatchHandle;
    let stopObservingBatch: () => void;
    try {
      // The first job's id is claimed in the store (its lease taken) before anything starts: a
      // store that cannot take runs now refuses the whole batch.
      const claim = await this.#claim(undefined);
      const ids = jobs.map((_, index) => (index === 0 ? claim.executionId : randomRunId()));
      runs = ids.map((id, index) => new RecordedRun(id, (reason) => controllers[index]?.abort(reason)));
      let batchIdGiven = false;
      const multi = new MultiAgentOrchestrator({
        maxConcurrency,
        ...(body.budget === undefined ? {} : { budget: body.budget }),
        policy: this.#policy,
        store: this.#recorded,
        owner: this.#owner,
        leaseTtlMs: this.#leaseTtlMs,
        ...(this.#clock === undefined ? {} : { clock: this.#clock }),
        ...(this.#inspect === undefined ? {} : { inspect: this.#inspect }),
        ...(this.#plugins === undefined ? {} : { plugins: this.#plugins }),
        // Every job has its execution id, so the only id made here is the batch's.
        generateId: () => (batchIdGiven ? randomRunId() : ((batchIdGiven = true), batchId)),
        onHookError: (error) => this.#logError(error, 'a batch event hook failed'),
      });
      useTenantBudgets(multi, this.#tenantBudgets);
      // One supervisor per request: it is observed for as long as its batch runs.
      stopObservingBatch = this.#metrics?.observeSupervisor(multi) ?? (() => undefined);
      try {
        handle = multi.submit(
          jobs.map((job, index) => ({
            name: job.name,
            agent: job.agent,
            agentName: job.agentName,
            task: body.task,
            policy,
            executionId: ids[index] as string,
            ...(tenant === undefined ? {} : { tenant }),
            signal: (controllers[index] as AbortController).signal,
            ...(this.#tools === undefined ? {} : { tools: this.#tools }),
          })),
        );
      } catch (error) {
        stopObservingBatch();
        this.#releaseLease(claim.lease);
        throw bodyField(error);
      } finally {
        this.#reserved.delete(claim.executionId);
      }
    } catch (error) {
      release();
      throw error;
    }
    for (const [index, run] of runs.entries()) {
      this.#live.set(run.executionId, { run, agent: (jobs[index] as Job).agentName, admittedAt, policy: policy.limits });
      this.#remember(this.#batchOf, run.executionId, batchId);
      if (tenant !== undefined) this.#remember(this.#tenantOf, run.executionId, tenant);
    }
    const subscription = handle.events$.subscribe((event) => {
      if (event.type === 'RUN_EVENT') runs[event.payload.job.index]?.record(event.payload.event);
    });
    // A child reads as finished as soon as its EXECUTION_COMPLETE arrives (from its live events);
    // it is read from the store once the batch has handed out its reports, when every log is durable.
    const reports = await this.#track(
      handle.reports.then((batchReports) => {
        subscription.unsubscribe();
        stopObservingBatch();
        batchReports.forEach((report, index) => {
          const run = runs[index] as RecordedRun;
          run.settle(report);
          this.#settle(run.executionId, report);
        });
        release();
        return batchReports;
      }),
    );
    // Job names are the caller's: defined as own data properties, so "__proto__" is a name like any other.
    const byName = Object.fromEntries(jobs.map((job, index) => [job.name, reports[index] as ExecutionReport]));
    return { batchId, maxConcurrency, effectivePolicy: policy.limits, reports: byName };
  }

  /** A run: from its live events when it runs in this process, else from its log in the store. */
  async state(executionId: string): Promise<RunState> {
    const live = this.#live.get(executionId);
    if (live !== undefined) {
      const events = live.run.events();
      const report = reportOf(events);
      return project({
        executionId,
        agent: live.agent,
        status: report?.status ?? 'running',
        startedAt: startOf(events)?.timestamp ?? live.admittedAt,
        batchId: this.#batchOf.get(executionId),
        tenant: this.#tenantOf.get(executionId),
        report,
        events,
        policy: live.policy,
      });
    }
    const unfiled = this.#unfiled.get(executionId);
    if (unfiled !== undefined) return this.#unfiledState(executionId, unfiled);
    const run = await this.#read(() => this.#store.get(executionId));
    if (run === undefined) throw runNotFound(executionId);
    const [events, report] = await Promise.all([
      this.#read(() => this.#store.events(executionId)),
      isFinished(run.status) ? this.#read(() => this.#store.report(executionId)) : undefined,
    ]);
    return project({
      executionId,
      agent: run.agentName,
      status: run.status,
      startedAt: run.startedAt,
      batchId: this.#batchOf.get(executionId),
      tenant: this.#tenantOf.get(executionId),
      report,
      events,
      policy: undefined,
    });
  }

  /**
   * A page of the store's runs, newest first, with how many match over all pages (counted up to
   * MAX_COUNTED_RUNS). `offset` and the total walk the store's pages: a cursor is the cheap way
   * through a long list.
   */
  async list(query: RunListQuery): Promise<{ runs: RunSummary[]; total: number; totalCapped?: true; nextCursor: string | null }> {
    if (query.offset !== undefined && query.cursor !== undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'query.cursor: pass either offset or cursor, not both', { details: { field: 'query.cursor' } });
    }
    const filter: RunListFilter = {
      ...(query.status === undefined ? {} : { status: query.status }),
      ...(query.agent === undefined ? {} : { agentName: query.agent }),
    };
    let cursor = query.cursor;
    if (query.offset !== undefined && query.offset > 0) {
      const after = await this.#skip(filter, query.offset);
      if (after === null) return { runs: [], ...(await this.#count(filter)), nextCursor: null };
      cursor = after;
    }
    const page = await this.#page(filter, query.limit, cursor);
    const [runs, counted] = await Promise.all([Promise.all(page.runs.map((run) => this.#summary(run))), this.#count(filter)]);
    return { runs, ...counted, nextCursor: page.nextCursor };
  }

  /**
   * POST /what-if: the request's policy evaluated against the runs in the store, from their logs
   * alone (see `whatIf`). The policy is taken as it is, not narrowed by the server's: it runs
   * nothing, so it may be wider or narrower. A duration in `since` or `until` is read against the
   * server's clock, the one the runs' timestamps come from.
   */
  async whatIf(body: WhatIfRequestBody): Promise<WhatIfResponse> {
    const policy = inRequestPolicy(() => new StrictPolicy(body.policy));
    const now = (this.#clock ?? systemClock).now();
    const since = timeBound(body.since, now, 'since');
    const until = timeBound(body.until, now, 'until');
    if (since !== undefined && until !== undefined && until <= since) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `body.until: must be later than since (${new Date(since).toISOString()})`, {
        details: { field: 'body.until' },
      });
    }
    const filter: WhatIfFilter = {
      ...(body.agent === undefined ? {} : { agentName: body.agent }),
      ...(since === undefined ? {} : { since }),
      ...(until === undefined ? {} : { until }),
    };
    const { runs, totals } = await whatIf({ policy, store: readThrough(this.#store), filter, ...(body.runs === undefined ? {} : { runs: body.runs }) });
    return { runs: [...runs], totals };
  }

  /** Tool calls waiting for a person's decision in the runs live here, oldest first (runs of POST /run-multi aside). */
  pendingApprovals(): PendingApprovalBody[] {
    return oldestFirst(this.#orchestrator.pendingApprovals());
  }

  /**
   * Approves or denies a waiting tool call. A run live here goes on at once. Any other is decided
   * through the store (`orch.approve()` appends the decision to its log); when no process holds
   * it, its agent is registered here and this service takes up interrupted runs, it is then
   * resumed here. Decisions on one run are taken in turn: of two racing requests one decides and
   * the other is `OAO_ERR_ALREADY_DECIDED`.
   */
  decide(executionId: string, callId: string, input: ApprovalInput): Promise<DecisionApplied> {
    return this.#decisions.run(executionId, () => this.#decide(executionId, callId, input));
  }

  async #decide(executionId: string, callId: string, input: ApprovalInput): Promise<DecisionApplied> {
    const live = this.#live.get(executionId);
    if (live !== undefined) {
      if (live.run instanceof RecordedRun) throw batchRunDecision(executionId, callId);
      // Checked and decided in one turn: a run that waits now is decided live, never through the store.
      if (!this.#orchestrator.pendingApprovals().some((pending) => pending.executionId === executionId && pending.callId === callId)) {
        throw notWaiting(executionId, callId, live.run.events());
      }
      await applyDecision(this.#orchestrator, executionId, callId, input);
      return 'live';
    }
    if (this.#unfiled.has(executionId)) throw finishedHere(executionId, callId);
    if (this.#reserved.has(executionId)) throw beingTakenUp(executionId);
    // Reserved until it is resumed here (or not): the sweep leaves it alone meanwhile.
    this.#reserved.add(executionId);
    let stored: StoredRun | undefined;
    try {
      await applyDecision(this.#orchestrator, executionId, callId, input);
      stored = this.#sweep === undefined || this.#closing ? undefined : await this.#storedAfterDecision(executionId);
    } catch (error) {
      if (OaoError.isInstance(error) && error.code === 'OAO_ERR_RUN_NOT_FOUND') throw runNotFound(executionId);
      throw error;
    } finally {
      this.#reserved.delete(executionId);
    }
    if (this.#queued !== undefined) {
      // A worker continues the run from the decision in its log.
      if (stored?.status === 'interrupted') await this.#queued.requeue(stored).catch((error: unknown) => this.#logError(error, `run ${executionId} could not be enqueued again after a decision on it; a later sweep tries again`));
      return 'logged';
    }
    // No turn of the event loop from here to the resume's own reservation: the sweep cannot take it in between.
    const agent = stored?.status === 'interrupted' ? this.#agents.get(stored.agentName) : undefined;
    if (stored === undefined || agent === undefined) return 'logged';
    try {
      return (await this.#resumeInterrupted(stored, agent)) ? 'resumed' : 'logged';
    } catch (error) {
      // The decision is in the log either way; the sweep takes the run up later (or another process has).
      if (!OaoError.isInstance(error) || !['OAO_ERR_LEASE_HELD', 'OAO_ERR_RUN_FINISHED'].includes(error.code)) {
        this.#logError(error, `run ${executionId} could not be resumed after a decision on it; a later sweep tries again`);
      }
      return 'logged';
    }
  }

  /**
   * The tenant a run belongs to: the one this process started it for, else its log's (undefined
   * for a run without one, or one the store does not have).
   */
  async tenantOfRun(executionId: string): Promise<string | undefined> {
    const known = this.#tenantOf.get(executionId);
    if (known !== undefined) return known;
    const events = await this.#read(() => this.#store.events(executionId));
    return startOf(events)?.tenant;
  }

  /**
   * Raises the limits of a run paused at a limit (POST /runs/:id/budget), the server's policy
   * being the ceiling: at once when it is live here, else in its log (409 while another process
   * holds it). Says which.
   */
  async raise(executionId: string, limits: { maxSteps?: number; maxToolCalls?: number; maxTokens?: number }, decision: { by?: string; reason?: string }): Promise<'live' | 'logged'> {
    const live = this.#live.get(executionId);
    if (live !== undefined) {
      if (live.run instanceof RecordedRun) {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Run "${executionId}" belongs to a batch of POST /run-multi: its budget cannot be raised over HTTP`, {
          details: { field: 'params.id', executionId },
        });
      }
      await this.#orchestrator.raise(executionId, limits, decision);
      return 'live';
    }
    // Not live here: the raise goes into the run's log (refused while another process holds the
    // run), and the run goes on when it is resumed: by this server's sweep when it has the agent.
    try {
      await this.#orchestrator.raise(executionId, limits, decision);
    } catch (error) {
      if (OaoError.isInstance(error) && error.code === 'OAO_ERR_RUN_NOT_FOUND') throw runNotFound(executionId);
      throw error;
    }
    return 'logged';
  }

  /** The run's index entry once a decision is in its log; undefined (the sweep takes it up later) when the store cannot say. */
  async #storedAfterDecision(executionId: string): Promise<StoredRun | undefined> {
    try {
      return await this.#store.get(executionId);
    } catch (error) {
      this.#logError(error, `the run store could not be read after a decision on run ${executionId}; a later sweep takes it up`);
      return undefined;
    }
  }

  async cancel(executionId: string, reason: string): Promise<CancelOutcome> {
    const live = this.#live.get(executionId);
    if (live !== undefined) {
      live.run.cancel(reason);
      const report = await settleWithin(live.run.report, CANCEL_SETTLE_MS);
      if (report === undefined) {
        return { executionId, cancelled: true, settled: false, status: 'running', message: 'Cancellation requested; the run is stopping', termination: null };
      }
      return cancelOutcomeOf(executionId, report);
    }
    const known = this.#unfiled.get(executionId)?.report;
    const run = known === undefined ? await this.#read(() => this.#store.get(executionId)) : undefined;
    if (known === undefined && run === undefined) throw runNotFound(executionId);
    const report = known ?? (run !== undefined && isFinished(run.status) ? await this.#read(() => this.#store.report(executionId)) : undefined);
    if (report !== undefined) {
      return {
        executionId,
        cancelled: false,
        settled: true,
        status: report.status,
        message: `Run ${executionId} had already finished (${report.status}); there was nothing to cancel`,
        termination: report.termination,
      };
    }
    // A queued run lists as interrupted until a worker takes it: the queue still cancels it.
    if (run?.status === 'interrupted' && this.#queued === undefined) {
      return {
        executionId,
        cancelled: false,
        settled: true,
        status: 'interrupted',
        message: `Run ${executionId} was interrupted: the process that ran it stopped before it ended, so nothing runs it to cancel`,
        termination: null,
      };
    }
    if (this.#queued !== undefined) return this.#cancelQueued(executionId, reason, this.#queued, run);
    return {
      executionId,
      cancelled: false,
      settled: false,
      status: 'running',
      message: `Run ${executionId} is not running in this server process (it is starting, or another process runs it)`,
      termination: null,
    };
  }

  /** Cancels a run that a worker runs (or will take): through the queue, then waits a moment for its report. */
  async #cancelQueued(executionId: string, reason: string, queued: QueuedRuns, run: StoredRun | undefined): Promise<CancelOutcome> {
    await queued.cancel(executionId, reason);
    // Nobody holds it (queued, or unloaded while it waits for a decision): a worker takes it up and ends it cancelled.
    if (run?.status === 'interrupted') await queued.requeue(run, true).catch((error: unknown) => this.#logError(error, `run ${executionId} could not be enqueued to be cancelled`));
    const stop = new AbortController();
    const waiting = queued.waitForReport(executionId, stop.signal).catch(() => undefined);
    const report = await settleWithin(waiting, CANCEL_SETTLE_MS);
    stop.abort();
    if (report === undefined) {
      return { executionId, cancelled: true, settled: false, status: 'running', message: 'Cancellation sent to the worker that runs it; the run is stopping', termination: null };
    }
    return cancelOutcomeOf(executionId, report);
  }

  /**
   * Where a run's events after `afterSeq` come from: a run live here streams from memory (what
   * it recorded, then live, each event once the store holds it); any other from its log in the
   * store, followed there while another process runs it, or while this service is to take it up
   * after its process stopped. Any other interrupted run with nothing after `afterSeq` has nothing
   * more to send.
   */
  async eventSource(executionId: string, afterSeq: number): Promise<EventSource> {
    const live = this.#live.get(executionId);
    // Each event once it is stored: an id a client has seen is one any later process can resume after.
    if (live !== undefined) return { events$: this.#appends.stored(executionId, live.run.events$) };
    const unfiled = this.#unfiled.get(executionId);
    if (unfiled !== undefined) return { events$: from(unfiled.events) };
    const run = await this.#read(() => this.#store.get(executionId));
    if (run === undefined) throw runNotFound(executionId);
    const events = await this.#read(() => this.#store.events(executionId, { fromSeq: afterSeq + 1 }));
    // An interrupted run this service is about to take up (resume or end) has more events to come.
    if (run.status === 'running' || (run.status === 'interrupted' && this.#takesUp(executionId))) {
      return { events$: this.#follow(executionId, afterSeq + 1, events) };
    }
    if (run.status === 'interrupted' && events.length === 0) return { interrupted: true };
    return { events$: from(events) };
  }

  /** Cancels every live run and waits until each has its report and log; no new run is admitted after. */
  async close(): Promise<void> {
    this.#closing = true;
    // A sweep in progress finishes taking up its run first, so that run is cancelled below too.
    await this.#sweep?.stop();
    for (const { run } of this.#live.values()) run.cancel(SHUTDOWN_REASON);
    await Promise.allSettled([...this.#pending]);
    this.#stopObserving();
  }

  // ---- helpers -----------------------------------------------------------------------------

  #agent(name: string, field: string): AgentLike {
    const agent = this.#agents.get(name);
    if (agent === undefined) {
      throw new OaoError('OAO_ERR_UNKNOWN_AGENT', `No agent "${name}" is registered on this server; it has: ${[...this.#agents.keys()].join(', ')}`, {
        details: { field, agent: name },
      });
    }
    return agent;
  }

  #jobsOf(agents: RunMultiRequestBody['agents']): Job[] {
    if (Array.isArray(agents)) {
      const seen = new Set<string>();
      return agents.map((agentName, index) => {
        if (seen.has(agentName)) {
          throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `body.agents.${index}: "${agentName}" is listed twice; to run an agent more than once, name each job: { "a": "${agentName}", "b": "${agentName}" }`, {
            details: { field: `body.agents.${index}` },
          });
        }
        seen.add(agentName);
        return { name: agentName, agentName, agent: this.#agent(agentName, `body.agents.${index}`) };
      });
    }
    return Object.entries(agents).map(([name, agentName]) => ({ name, agentName, agent: this.#agent(agentName, `body.agents.${name}`) }));
  }

  #narrow(policy: PolicyOptions | undefined): StrictPolicy {
    if (policy === undefined) return this.#policy;
    return inRequestPolicy(() => this.#policy.narrow(policy));
  }

  #checkTask(task: unknown): void {
    const max = this.#maxTaskLength;
    if (typeof task === 'string') {
      if (task.length > max) throw taskError(`body.task is ${task.length} characters long; this server accepts at most ${max}`, max);
      return;
    }
    // Iterative, so a deeply nested task is refused here rather than overflowing a recursive walk later.
    const stack: [unknown, number][] = [[task, 1]];
    while (stack.length > 0) {
      const [value, depth] = stack.pop() as [unknown, number];
      if (typeof value === 'number' && !Number.isFinite(value)) {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'body.task holds a number JSON cannot represent (too large)', { details: { field: 'body.task' } });
      }
      if (typeof value !== 'object' || value === null) continue;
      if (depth > MAX_TASK_DEPTH) {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `body.task nests deeper than ${MAX_TASK_DEPTH} levels`, {
          details: { field: 'body.task', maxDepth: MAX_TASK_DEPTH },
        });
      }
      for (const child of Object.values(value)) stack.push([child, depth + 1]);
    }
    const length = JSON.stringify(task).length;
    if (length > max) throw taskError(`body.task is ${length} characters of JSON; this server accepts at most ${max}`, max);
  }

  /**
   * Takes an id for a new run (the requested one, or a new one) and the run's lease in the store
   * for this service's owner: one write that proves the store can take runs now, and that no
   * other process is running a run with that id. The orchestrator's run then renews that lease.
   * A requested id is first looked up, so that the id of a stored run (an interrupted one
   * included) is refused without touching its lease. The id stays reserved until the caller has
   * started the run (or given up).
   */
  async #claim(requested: string | undefined): Promise<{ executionId: string; lease: Lease }> {
    if (requested !== undefined) {
      if (requested.length > this.#maxExecutionIdLength) {
        throw new OaoError(
          'OAO_ERR_INVALID_ARGUMENT',
          `body.executionId is ${requested.length} characters long; this server can serve ids of at most ${this.#maxExecutionIdLength} ` +
            '(its router\'s maxParamLength)',
          { details: { field: 'body.executionId', maxLength: this.#maxExecutionIdLength } },
        );
      }
      if (this.#live.has(requested) || this.#reserved.has(requested) || this.#unfiled.has(requested)) throw idTaken(requested);
    }
    const executionId = requested ?? randomRunId();
    this.#reserved.add(executionId);
    try {
      if (requested !== undefined && (await storeCall('start', () => this.#store.get(executionId))) !== undefined) throw idTaken(executionId);
      const lease = await storeCall('start', () => this.#store.acquireLease(executionId, this.#owner, this.#leaseTtlMs));
      // Another process holds it: a run of its own with that id is starting or running.
      if (lease === undefined) throw idTaken(executionId);
      if (this.#closing) {
        // The server began to close while the store answered: start nothing it would not stop.
        this.#releaseLease(lease);
        throw shuttingDown();
      }
      return { executionId, lease };
    } catch (error) {
      this.#reserved.delete(executionId);
      throw error;
    }
  }

  /** Gives a claimed lease back (a run that did not start); a failure only delays it to its expiry. */
  #releaseLease(lease: Lease): void {
    void Promise.resolve()
      .then(() => this.#store.releaseLease(lease))
      .catch((error: unknown) => this.#logError(error, `the run store could not release the lease of run ${lease.executionId}`));
  }

  /** Admits a request that runs `slots` runs at once; returns how to give the slots back (once). */
  #admit(slots: number): () => void {
    if (this.#closing) throw shuttingDown();
    const active = this.active;
    if (active + slots > this.#maxConcurrentRuns) {
      throw new OaoError(
        'OAO_ERR_TOO_MANY_RUNS',
        `The server is running ${active} of at most ${this.#maxConcurrentRuns} runs at once; this request needs ${slots} more`,
        { details: { active, maxConcurrentRuns: this.#maxConcurrentRuns, requested: slots } },
      );
    }
    const admission = { slots };
    this.#admitted.add(admission);
    return () => this.#admitted.delete(admission);
  }

  /**
   * Makes an interrupted run live here again: `orch.startResumed()` with the agent registered
   * under the run's name and the server's tools, admitted like any run (false when no slot is
   * free: a later sweep tries again). Once it returns, the run is served as a live run of this
   * process: its state, its event stream (the stored events, then the new ones) and cancel.
   * `OAO_ERR_LEASE_HELD` and the orchestrator's other errors are thrown as they are.
   */
  async #resumeInterrupted(run: StoredRun, agent: AgentLike): Promise<boolean> {
    if (this.#closing) return false;
    let release: () => void;
    try {
      release = this.#admit(1);
    } catch (error) {
      if (OaoError.isInstance(error) && error.code === 'OAO_ERR_TOO_MANY_RUNS') return false;
      throw error;
    }
    const { executionId } = run;
    this.#reserved.add(executionId);
    try {
      // Read before the run is taken over: the run's events up to where the resumed run goes on.
      const before = await this.#store.events(executionId);
      const handle = await this.#orchestrator.startResumed(executionId, { agent, ...(this.#tools === undefined ? {} : { tools: this.#tools }) });
      const resumedAt = handle.events()[0]?.seq ?? before.length;
      // A writer whose lease had expired may have appended after the read above (its last events).
      const recorded = resumedAt === before.length ? before : await this.#eventsBefore(executionId, resumedAt, before);
      this.#appends.storedUpTo(executionId, resumedAt - 1);
      const first = recorded[0];
      this.#live.set(executionId, {
        run: new ResumedRun(handle, recorded),
        agent: run.agentName,
        admittedAt: this.#now(),
        policy: first?.type === 'EXECUTION_START' ? first.payload.policy : this.#policy.limits,
      });
      void this.#track(
        handle.report.then((report) => {
          this.#settle(executionId, report);
          release();
          return report;
        }),
      );
      return true;
    } catch (error) {
      release();
      throw error;
    } finally {
      this.#reserved.delete(executionId);
    }
  }

  /** Whether this service's sweep will take the interrupted run up (it has not given up on it). */
  #takesUp(executionId: string): boolean {
    // With a queue, a worker takes the run up (or the sweep enqueues it again).
    if (this.#queued !== undefined) return !this.#closing;
    return this.#sweep?.willTakeUp(executionId) === true && !this.#closing;
  }

  /** The stored events of a run before `seq`; `fallback` when the store cannot say. */
  async #eventsBefore(executionId: string, seq: number, fallback: readonly OaoEvent[]): Promise<readonly OaoEvent[]> {
    try {
      return (await this.#store.events(executionId)).slice(0, seq);
    } catch (error) {
      this.#logError(error, `the run store could not read the log of resumed run ${executionId}`);
      return fallback;
    }
  }

  /** A live run has its report (and its log is as complete as the store let it be): let it go. */
  #settle(executionId: string, report: ExecutionReport): void {
    const live = this.#live.get(executionId);
    if (live === undefined) return;
    this.#live.delete(executionId);
    this.#appends.release(executionId);
    this.#pruneWhenDue();
    if (report.termination.reason === 'error' && report.error !== undefined && LOG_FAILURES.has(report.error.code)) {
      // The store lacks the end of this run: this process keeps what it knows, so that GET
      // /runs/:id answers with the report rather than a log cut short.
      this.#remember(this.#unfiled, executionId, { agent: live.agent, report, events: live.run.events(), policy: live.policy });
      this.#logError(report.error, `run ${executionId} could not be recorded to the end; its report is kept in memory`);
    }
  }

  /**
   * Applies the store's retention (`maxRuns`, `maxAgeMs`) now and then as runs end: at the first
   * run, then every PRUNE_EVERY_RUNS runs or PRUNE_EVERY_MS, whichever comes first. A store that
   * fails here only delays it.
   */
  #pruneWhenDue(): void {
    this.#endedSincePrune += 1;
    const now = Date.now();
    if (this.#endedSincePrune < PRUNE_EVERY_RUNS && now - this.#prunedAt < PRUNE_EVERY_MS) return;
    this.#endedSincePrune = 0;
    this.#prunedAt = now;
    void Promise.resolve()
      .then(() => this.#store.prune())
      .catch((error: unknown) => this.#logError(error, 'the run store could not apply its retention'));
  }

  #unfiledState(executionId: string, unfiled: Unfiled): RunState {
    return project({
      executionId,
      agent: unfiled.agent,
      status: unfiled.report.status,
      startedAt: unfiled.report.startedAt,
      batchId: this.#batchOf.get(executionId),
      tenant: this.#tenantOf.get(executionId),
      report: unfiled.report,
      events: unfiled.events,
      policy: unfiled.policy,
    });
  }

  /** A stored run as GET /runs lists it. */
  async #summary(run: StoredRun): Promise<RunSummary> {
    const unfiled = this.#unfiled.get(run.executionId)?.report;
    const report = unfiled ?? (isFinished(run.status) ? await this.#read(() => this.#store.report(run.executionId)) : undefined);
    return {
      executionId: run.executionId,
      agent: run.agentName,
      status: report?.status ?? run.status,
      startedAt: run.startedAt,
      finishedAt: report?.finishedAt ?? run.finishedAt ?? null,
      batchId: this.#batchOf.get(run.executionId) ?? null,
      termination: report?.termination ?? null,
      ...tenantField(this.#tenantOf.get(run.executionId)),
    };
  }

  #page(filter: RunListFilter, limit: number, cursor: string | undefined) {
    return this.#read(() => this.#store.list(filter, { limit, ...(cursor === undefined ? {} : { cursor }) })).catch((error: unknown) => {
      throw OaoError.isInstance(error) && error.code === 'OAO_ERR_INVALID_ARGUMENT' && error.details?.field === 'cursor'
        ? new OaoError(error.code, `query.cursor: ${error.message}`, { details: { ...error.details, field: 'query.cursor' } })
        : error;
    });
  }

  /** The cursor after the first `offset` runs, or null when there are no more. */
  async #skip(filter: RunListFilter, offset: number): Promise<string | null> {
    let cursor: string | undefined;
    let left = offset;
    while (left > 0) {
      const page = await this.#page(filter, Math.min(left, SCAN_PAGE), cursor);
      left -= page.runs.length;
      if (page.nextCursor === null) return null;
      cursor = page.nextCursor;
    }
    return cursor ?? null;
  }

  /** How many stored runs match the filter, up to MAX_COUNTED_RUNS (then `totalCapped`). */
  async #count(filter: RunListFilter): Promise<{ total: number; totalCapped?: true }> {
    let total = 0;
    let cursor: string | undefined;
    for (;;) {
      const page = await this.#page(filter, Math.min(SCAN_PAGE, MAX_COUNTED_RUNS + 1 - total), cursor);
      total += page.runs.length;
      if (total > MAX_COUNTED_RUNS) return { total: MAX_COUNTED_RUNS, totalCapped: true };
      if (page.nextCursor === null) return { total };
      cursor = page.nextCursor;
    }
  }

  /**
   * The events of a run that another process runs: those already read, then new ones as they
   * are stored. Completes after EXECUTION_COMPLETE, when the run is gone or interrupted (unless this
   * service is to take it up), or when the store fails (the client resumes with Last-Event-ID).
   */
  #follow(executionId: string, fromSeq: number, first: readonly OaoEvent[]): Observable<OaoEvent> {
    return new Observable<OaoEvent>((subscriber) => {
      let next = fromSeq;
      let timer: NodeJS.Timeout | undefined;
      /** Sends what is new; true once the run's EXECUTION_COMPLETE is sent. */
      const emit = (events: readonly OaoEvent[]): boolean => {
        for (const event of events) {
          if (subscriber.closed) return true;
          if (event.seq < next) continue;
          next = event.seq + 1;
          subscriber.next(event);
          if (event.type === 'EXECUTION_COMPLETE') {
            subscriber.complete();
            return true;
          }
        }
        return false;
      };
      const schedule = () => {
        timer = setTimeout(() => void poll(), FOLLOW_POLL_MS);
        timer.unref();
      };
      const poll = async (): Promise<void> => {
        try {
          const events = await this.#read(() => this.#store.events(executionId, { fromSeq: next }));
          if (subscriber.closed || emit(events)) return;
          if (events.length === 0) {
            const run = await this.#read(() => this.#store.get(executionId));
            if (subscriber.closed) return;
            if (run === undefined || (run.status === 'interrupted' && !this.#takesUp(executionId))) {
              subscriber.complete();
              return;
            }
          }
          // A run that finished between the two reads has its last events read on the next poll.
          schedule();
        } catch {
          subscriber.complete();
        }
      };
      if (!emit(first)) schedule();
      return () => clearTimeout(timer);
    });
  }

  /** A read of the store for a request: a store that fails answers 503 with the cause. */
  #read<T>(call: () => T | Promise<T>): Promise<T> {
    return storeCall('read', call);
  }

  #remember<T>(map: Map<string, T>, executionId: string, value: T): void {
    map.set(executionId, value);
    if (map.size > REMEMBERED_RUNS) {
      const oldest = map.keys().next();
      if (oldest.done !== true) map.delete(oldest.value);
    }
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const untrack = () => this.#pending.delete(promise);
    promise.then(untrack, untrack);
    return promise;
  }

  #now(): string {
    return new Date(this.#clock === undefined ? Date.now() : this.#clock.now()).toISOString();
  }
}

interface Job {
  readonly name: string;
  readonly agentName: string;
  readonly agent: AgentLike;
}

function taskError(message: string, max: number): OaoError {
  return new OaoError('OAO_ERR_INVALID_ARGUMENT', message, { details: { field: 'body.task', maxTaskLength: max } });
}

function shuttingDown(): OaoError {
  return new OaoError('OAO_ERR_TOO_MANY_RUNS', 'The server is shutting down and starts no new runs');
}

function idTaken(executionId: string): OaoError {
  return new OaoError('OAO_ERR_INVALID_ARGUMENT', `body.executionId: a run with id "${executionId}" already exists`, {
    details: { field: 'body.executionId' },
  });
}

function runNotFound(executionId: string): OaoError {
  return new OaoError('OAO_ERR_RUN_NOT_FOUND', `No run "${executionId}" is known to this server (it may have been removed by the store's retention)`, {
    details: { executionId },
  });
}

/** Errors the core raised about a request field name it without the `body.` prefix. */
function bodyField(error: unknown): unknown {
  if (!OaoError.isInstance(error)) return error;
  const field = error.details?.field;
  if (typeof field !== 'string' || field.startsWith('body.')) return error;
  return new OaoError(error.code, `body.${field}: ${error.message}`, { details: { ...error.details, field: `body.${field}` }, cause: error });
}

function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    void promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

function isFinished(status: RunStatus): status is 'SUCCESS' | 'FAILED' {
  return status === 'SUCCESS' || status === 'FAILED';
}

function startOf(
  events: readonly OaoEvent[],
): { readonly timestamp: string; readonly policy: PolicyLimits; readonly tenant: string | undefined; readonly batch: string | undefined } | undefined {
  const first = events[0];
  if (first?.type !== 'EXECUTION_START') return undefined;
  return { timestamp: new Date(first.timestamp).toISOString(), policy: first.payload.policy, tenant: first.payload.tenant, batch: first.payload.batch };
}

/** A run view's `tenant`: present only for a run that has one. */
function tenantField(tenant: string | undefined): { tenant?: string } {
  return tenant === undefined ? {} : { tenant };
}

function reportOf(events: readonly OaoEvent[]): ExecutionReport | undefined {
  const last = events.at(-1);
  return last?.type === 'EXECUTION_COMPLETE' ? last.payload.report : undefined;
}

const NO_SPEND = Object.freeze({ steps: 0, tokens: 0, toolCalls: 0 });

interface Projection {
  readonly executionId: string;
  readonly agent: string;
  readonly status: RunStatus;
  readonly startedAt: string;
  readonly batchId: string | undefined;
  /** The tenant this process knows the run by, when its events do not say yet (a queued batch run). */
  readonly tenant: string | undefined;
  readonly report: ExecutionReport | undefined;
  /** The run's events (all of them; a queued batch run has none yet). */
  readonly events: readonly OaoEvent[];
  /** The limits the server gave the run, when it is known without its events. */
  readonly policy: PolicyLimits | undefined;
}

/** What a running run has cost, folded from its events (null when it is not costed, or its log cannot be folded). */
function liveCost(events: readonly OaoEvent[]): { micros: number; usd: number } | null {
  if (events.length === 0) return null;
  try {
    const fold = foldRun(events);
    return fold === undefined ? null : (costOf(fold) ?? null);
  } catch {
    return null;
  }
}

/** GET /runs/:id's view of a run: the report once there is one, else where its events stand. */
function project(run: Projection): RunState {
  const { report, events } = run;
  const last = events.at(-1);
  const start = startOf(events);
  const summary = {
    executionId: run.executionId,
    agent: run.agent,
    status: report?.status ?? run.status,
    startedAt: run.startedAt,
    finishedAt: report?.finishedAt ?? null,
    // A queued batch's runs name it in their log, which outlives this process's memory.
    batchId: run.batchId ?? start?.batch ?? null,
    termination: report?.termination ?? null,
    ...tenantField(start?.tenant ?? run.tenant),
  };
  return {
    ...summary,
    state: report !== undefined ? (report.stateHistory.at(-1)?.state ?? (report.status === 'SUCCESS' ? 'TERMINATE' : 'FAILED')) : (last?.state ?? null),
    counters:
      report !== undefined
        ? { steps: report.totalSteps, tokens: report.tokenUsage.total, toolCalls: report.toolUsage.total }
        : (last?.counters ?? { ...NO_SPEND }),
    cost: report !== undefined ? (report.cost ?? null) : liveCost(events),
    events: events.length,
    report: report ?? null,
    effectivePolicy: start?.policy ?? run.policy ?? null,
  };
}

/** Builds a policy from a request's `policy`: an invalid option is named as the body's field (`body.policy.<field>`). */
function inRequestPolicy(build: () => StrictPolicy): StrictPolicy {
  try {
    return build();
  } catch (error) {
    if (!OaoError.isInstance(error)) throw error;
    const field = `body.policy${typeof error.details?.field === 'string' && error.details.field !== 'policy' ? `.${error.details.field}` : ''}`;
    throw new OaoError(error.code, error.message.replace(/^Invalid policy option "[^"]*"/, `Invalid policy option "${field}"`), {
      details: { ...error.details, field },
      cause: error,
    });
  }
}

/** A request's `since` or `until` in ms since the epoch (its form was checked by the body's schema). */
function timeBound(value: string | undefined, now: number, field: 'since' | 'until'): number | undefined {
  if (value === undefined) return undefined;
  const time = parseTimeBound(value, now);
  if (time === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `body.${field}: expected an ISO 8601 time or a duration such as 7d`, { details: { field: `body.${field}` } });
  }
  return time;
}

/**
 * The store as a request reads it: every call goes through `storeCall('read')`, so a store that
 * cannot be read answers 503 `OAO_ERR_STORE_UNAVAILABLE`, while what the reader itself raises
 * (an unknown run, a damaged log) keeps its own code.
 */
function readThrough(store: RunStore): RunStore {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      // Called on the store itself: a class with private fields needs its own `this`.
      return (...args: unknown[]) => storeCall('read', () => (value as (...rest: unknown[]) => unknown).apply(target, args));
    },
  });
}

/** What a cancel request answers once the run's report is in: cancelled, or finished first. */
function cancelOutcomeOf(executionId: string, report: ExecutionReport): CancelOutcome {
  const cancelled = report.termination.reason === 'cancelled';
  return {
    executionId,
    cancelled,
    settled: true,
    status: report.status,
    message: cancelled ? `Run ${executionId} was cancelled` : `Run ${executionId} finished (${report.status}) before it could be cancelled`,
    termination: report.termination,
  };
}
