import { randomUUID } from 'node:crypto';
import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import { MultiAgentOrchestrator, type BatchHandle } from '../MultiAgentOrchestrator.js';
import type { Metrics } from '../observability/metrics/createMetrics.js';
import { Orchestrator, type OaoInspector, type RunHandle } from '../Orchestrator.js';
import type { PolicyLimits, PolicyOptions } from '../policy/schema.js';
import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Clock } from '../runtime/clock.js';
import { RecordedRun } from './RecordedRun.js';
import type { LiveRun, RunRecord, RunStatus, RunStore } from './RunStore.js';
import {
  MAX_TASK_DEPTH,
  type RunMultiRequestBody,
  type RunRequestBody,
  type RunState,
  type RunSummary,
  type ServerPolicyResponse,
} from './schemas.js';

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
  readonly store: RunStore;
  readonly clock: Clock | undefined;
  /** Counts every run and batch of this service. */
  readonly metrics?: Metrics | undefined;
  /** Sees every run actor and supervisor actor of this service. */
  readonly inspect?: OaoInspector | undefined;
  /** Where failures nobody awaits go (a store that throws while filing a finished run). */
  readonly logError: (error: unknown, message: string) => void;
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

export type EventSource = { readonly run: LiveRun } | { readonly events: readonly OaoEvent[] };

interface Live {
  readonly run: LiveRun;
  /** Settles once the finished run is filed in the store. */
  readonly filed: Promise<RunRecord>;
}

/** How long a cancel request waits for the run to reach its final state before answering 202. */
const CANCEL_SETTLE_MS = 1_000;
const SHUTDOWN_REASON = 'the server is shutting down';

/**
 * The runs of one server: admission (maxConcurrentRuns), policy narrowing, task limits, the run
 * store, and the live runs of this process. Routes are thin wrappers around it. It holds the
 * orchestrator's configuration and the live handles, never a run's state: that is in each run's
 * actor, and in the store once finished.
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
  readonly #store: RunStore;
  readonly #clock: Clock | undefined;
  readonly #logError: (error: unknown, message: string) => void;
  readonly #metrics: Metrics | undefined;
  readonly #inspect: OaoInspector | undefined;
  readonly #orchestrator: Orchestrator;
  readonly #stopObserving: () => void;
  readonly #live = new Map<string, Live>();
  /** Ids taken by runs that are being set up (checked for duplicates like live ones). */
  readonly #reserved = new Set<string>();
  readonly #pending = new Set<Promise<unknown>>();
  #active = 0;
  #closing = false;

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
    this.#clock = init.clock;
    this.#logError = init.logError;
    this.#metrics = init.metrics;
    this.#inspect = init.inspect;
    this.#orchestrator = new Orchestrator({
      policy: init.policy,
      ...(init.clock === undefined ? {} : { clock: init.clock }),
      ...(init.inspect === undefined ? {} : { inspect: init.inspect }),
      onHookError: (error) => init.logError(error, 'an event hook failed'),
    });
    this.#stopObserving = init.metrics?.observe(this.#orchestrator) ?? (() => undefined);
  }

  /** The metrics this service counts into, if any. */
  get metrics(): Metrics | undefined {
    return this.#metrics;
  }

  /** Runs executing now, over all endpoints. */
  get active(): number {
    return this.#active;
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
   * Starts one run and returns at once; `finished` settles with its report once the run is filed
   * in the store (so a GET right after sees it finished). `effectivePolicy` is what the run runs
   * under: the server's policy narrowed by the request's.
   */
  async start(body: RunRequestBody): Promise<{ executionId: string; effectivePolicy: PolicyLimits; finished: Promise<ExecutionReport> }> {
    const agent = this.#agent(body.agent, 'body.agent');
    const policy = this.#narrow(body.policy);
    this.#checkTask(body.task);
    const executionId = await this.#claimId(body.executionId);
    const base: RunRecord = { executionId, agent: body.agent, status: 'running', startedAt: this.#now(), policy: policy.limits };
    let handle: RunHandle;
    try {
      this.#admit(1);
      try {
        await this.#store.put(base);
      } catch (error) {
        this.#active -= 1;
        throw error;
      }
      try {
        handle = this.#orchestrator.start({
          agent,
          // The registered name, not the agent's own: two agents registered apart never share one.
          agentName: body.agent,
          task: body.task,
          policy,
          executionId,
          ...(this.#tools === undefined ? {} : { tools: this.#tools }),
        });
      } catch (error) {
        this.#active -= 1;
        await this.#forget(executionId);
        throw bodyField(error);
      }
    } finally {
      this.#reserved.delete(executionId);
    }
    const started = handle;
    const filed = started.report.then((report) => this.#file(base, report, started.events()));
    this.#live.set(executionId, { run: started, filed });
    const finished = this.#track(
      filed.then((record) => {
        this.#active -= 1;
        return record.report as ExecutionReport;
      }),
    );
    try {
      // Issued before the run can finish (its report settles on a later tick), so it cannot
      // overwrite the finished record.
      await this.#store.put({ ...base, handle: started });
    } catch (error) {
      this.#logError(error, `the run store could not keep the handle of run ${executionId}`);
    }
    return { executionId, effectivePolicy: policy.limits, finished };
  }

  /** Runs several agents on one task under a MultiAgentOrchestrator; one report per job name. */
  async runMulti(
    body: RunMultiRequestBody,
  ): Promise<{ batchId: string; maxConcurrency: number; effectivePolicy: PolicyLimits; reports: Record<string, ExecutionReport> }> {
    const jobs = this.#jobsOf(body.agents);
    const policy = this.#narrow(body.policy);
    this.#checkTask(body.task);
    const maxConcurrency = Math.min(body.maxConcurrency ?? this.#maxConcurrency, this.#maxConcurrency, this.#maxConcurrentRuns);
    const slots = Math.min(jobs.length, maxConcurrency);
    this.#admit(slots);
    const batchId = randomUUID();
    const startedAt = this.#now();
    const controllers = jobs.map(() => new AbortController());
    const runs = jobs.map((_, index) => new RecordedRun(randomUUID(), (reason) => controllers[index]?.abort(reason)));
    const bases = runs.map((run, index): RunRecord => ({
      executionId: run.executionId,
      agent: (jobs[index] as Job).agentName,
      status: 'running',
      startedAt,
      batchId,
      policy: policy.limits,
    }));
    const stored: string[] = [];
    try {
      for (const [index, base] of bases.entries()) {
        await this.#store.put({ ...base, handle: runs[index] });
        stored.push(base.executionId);
      }
    } catch (error) {
      this.#active -= slots;
      await Promise.all(stored.map((id) => this.#forget(id)));
      throw error;
    }
    let batchIdGiven = false;
    const multi = new MultiAgentOrchestrator({
      maxConcurrency,
      policy: this.#policy,
      ...(this.#clock === undefined ? {} : { clock: this.#clock }),
      ...(this.#inspect === undefined ? {} : { inspect: this.#inspect }),
      // Every job has its execution id, so the only id made here is the batch's: the one stored.
      generateId: () => (batchIdGiven ? randomUUID() : ((batchIdGiven = true), batchId)),
      onHookError: (error) => this.#logError(error, 'a batch event hook failed'),
    });
    const requests = jobs.map((job, index) => ({
      name: job.name,
      agent: job.agent,
      agentName: job.agentName,
      task: body.task,
      policy,
      executionId: (runs[index] as RecordedRun).executionId,
      signal: (controllers[index] as AbortController).signal,
      ...(this.#tools === undefined ? {} : { tools: this.#tools }),
    }));
    // One supervisor per request: it is observed for as long as its batch runs.
    const stopObservingBatch = this.#metrics?.observeSupervisor(multi) ?? (() => undefined);
    let handle: BatchHandle;
    try {
      handle = multi.submit(requests);
    } catch (error) {
      stopObservingBatch();
      this.#active -= slots;
      await Promise.all(stored.map((id) => this.#forget(id)));
      throw bodyField(error);
    }
    const subscription = handle.events$.subscribe((event) => {
      if (event.type === 'RUN_EVENT') runs[event.payload.job.index]?.record(event.payload.event);
    });
    // Each child is filed as soon as it finishes, not when the whole batch does.
    const filed = runs.map((run, index) => {
      const record = run.report.then((report) => this.#file(bases[index] as RunRecord, report, run.events()));
      this.#live.set(run.executionId, { run, filed: record });
      return record;
    });
    const reports = await this.#track(
      handle.reports.then(async (batchReports) => {
        subscription.unsubscribe();
        stopObservingBatch();
        batchReports.forEach((report, index) => runs[index]?.settle(report));
        await Promise.all(filed);
        this.#active -= slots;
        return batchReports;
      }),
    );
    // Job names are the caller's: defined as own data properties, so "__proto__" is a name like any other.
    const byName = Object.fromEntries(jobs.map((job, index) => [job.name, reports[index] as ExecutionReport]));
    return { batchId, maxConcurrency, effectivePolicy: policy.limits, reports: byName };
  }

  async state(executionId: string): Promise<RunState> {
    const record = await this.#record(executionId);
    const live = this.#live.get(executionId)?.run ?? record.handle;
    return toRunState(record, live);
  }

  async list(query: RunListQuery): Promise<{ runs: RunSummary[]; total: number; nextCursor: string | null }> {
    if (query.offset !== undefined && query.cursor !== undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'query.cursor: pass either offset or cursor, not both', { details: { field: 'query.cursor' } });
    }
    let page;
    try {
      page = await this.#store.list(
        { ...(query.status === undefined ? {} : { status: query.status }), ...(query.agent === undefined ? {} : { agent: query.agent }) },
        {
          limit: query.limit,
          ...(query.offset === undefined ? {} : { offset: query.offset }),
          ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
        },
      );
    } catch (error) {
      throw OaoError.isInstance(error) && error.details?.field === 'cursor'
        ? new OaoError(error.code, `query.cursor: ${error.message}`, { details: { ...error.details, field: 'query.cursor' } })
        : error;
    }
    return { runs: page.runs.map(toSummary), total: page.total, nextCursor: page.nextCursor };
  }

  async cancel(executionId: string, reason: string): Promise<CancelOutcome> {
    const live = this.#live.get(executionId);
    if (live !== undefined) {
      live.run.cancel(reason);
      const record = await settleWithin(live.filed, CANCEL_SETTLE_MS);
      if (record === undefined) {
        return { executionId, cancelled: true, settled: false, status: 'running', message: 'Cancellation requested; the run is stopping', termination: null };
      }
      const cancelled = record.report?.termination.reason === 'cancelled';
      return {
        executionId,
        cancelled,
        settled: true,
        status: record.status,
        message: cancelled ? `Run ${executionId} was cancelled` : `Run ${executionId} finished (${record.status}) before it could be cancelled`,
        termination: record.report?.termination ?? null,
      };
    }
    const record = await this.#record(executionId);
    if (record.report !== undefined) {
      return {
        executionId,
        cancelled: false,
        settled: true,
        status: record.status,
        message: `Run ${executionId} had already finished (${record.status}); there was nothing to cancel`,
        termination: record.report.termination,
      };
    }
    return {
      executionId,
      cancelled: false,
      settled: false,
      status: record.status,
      message: `Run ${executionId} is not running in this server process (it is starting, or was started by another one)`,
      termination: null,
    };
  }

  /** Where a run's events come from: its live stream, or the events kept with its record. */
  async eventSource(executionId: string): Promise<EventSource> {
    const live = this.#live.get(executionId);
    if (live !== undefined) return { run: live.run };
    const record = await this.#record(executionId);
    if (record.handle !== undefined) return { run: record.handle };
    if (record.events !== undefined) return { events: record.events };
    throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The events of run ${executionId} are no longer kept; GET /runs/${executionId} has its report`, {
      details: { executionId },
    });
  }

  /** Cancels every live run and waits until each is filed; no new run is admitted after. */
  async close(): Promise<void> {
    this.#closing = true;
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
    try {
      return this.#policy.narrow(policy);
    } catch (error) {
      if (!OaoError.isInstance(error)) throw error;
      const field = `body.policy${typeof error.details?.field === 'string' && error.details.field !== 'policy' ? `.${error.details.field}` : ''}`;
      throw new OaoError(error.code, error.message.replace(/^Invalid policy option "[^"]*"/, `Invalid policy option "${field}"`), {
        details: { ...error.details, field },
        cause: error,
      });
    }
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

  async #claimId(requested: string | undefined): Promise<string> {
    if (requested === undefined) {
      const id = randomUUID();
      this.#reserved.add(id);
      return id;
    }
    if (requested.length > this.#maxExecutionIdLength) {
      throw new OaoError(
        'OAO_ERR_INVALID_ARGUMENT',
        `body.executionId is ${requested.length} characters long; this server can serve ids of at most ${this.#maxExecutionIdLength} ` +
          '(its router\'s maxParamLength)',
        { details: { field: 'body.executionId', maxLength: this.#maxExecutionIdLength } },
      );
    }
    const taken = () => this.#live.has(requested) || this.#reserved.has(requested);
    if (taken() || (await this.#store.get(requested)) !== undefined || taken()) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `body.executionId: a run with id "${requested}" already exists`, {
        details: { field: 'body.executionId' },
      });
    }
    this.#reserved.add(requested);
    return requested;
  }

  #admit(slots: number): void {
    if (this.#closing) {
      throw new OaoError('OAO_ERR_TOO_MANY_RUNS', 'The server is shutting down and starts no new runs');
    }
    if (this.#active + slots > this.#maxConcurrentRuns) {
      throw new OaoError(
        'OAO_ERR_TOO_MANY_RUNS',
        `The server is running ${this.#active} of at most ${this.#maxConcurrentRuns} runs at once; this request needs ${slots} more`,
        { details: { active: this.#active, maxConcurrentRuns: this.#maxConcurrentRuns, requested: slots } },
      );
    }
    this.#active += slots;
  }

  async #record(executionId: string): Promise<RunRecord> {
    const record = await this.#store.get(executionId);
    if (record === undefined) {
      throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `No run "${executionId}" is known to this server (it may have been evicted)`, {
        details: { executionId },
      });
    }
    return record;
  }

  /** Files a finished run in the store (without its live handle), then lets the handle go. */
  async #file(base: RunRecord, report: ExecutionReport, events: readonly OaoEvent[]): Promise<RunRecord> {
    const record: RunRecord = { ...base, status: report.status, finishedAt: report.finishedAt, report, events };
    try {
      await this.#store.put(record);
    } catch (error) {
      this.#logError(error, `the run store could not file the finished run ${base.executionId}`);
    }
    this.#live.delete(base.executionId);
    return record;
  }

  async #forget(executionId: string): Promise<void> {
    try {
      await this.#store.delete(executionId);
    } catch (error) {
      this.#logError(error, `the run store could not forget run ${executionId}`);
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

const NO_SPEND = Object.freeze({ steps: 0, tokens: 0, toolCalls: 0 });

function toSummary(record: RunRecord): RunSummary {
  return {
    executionId: record.executionId,
    agent: record.agent,
    status: record.status,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt ?? null,
    batchId: record.batchId ?? null,
    termination: record.report?.termination ?? null,
  };
}

function toRunState(record: RunRecord, live: LiveRun | undefined): RunState {
  const report = record.report;
  if (report !== undefined) {
    return {
      ...toSummary(record),
      state: report.stateHistory.at(-1)?.state ?? (report.status === 'SUCCESS' ? 'TERMINATE' : 'FAILED'),
      counters: { steps: report.totalSteps, tokens: report.tokenUsage.total, toolCalls: report.toolUsage.total },
      events: record.events?.length ?? 0,
      report,
      effectivePolicy: effectivePolicyOf(record, record.events),
    };
  }
  const events = live?.events() ?? [];
  const last = events.at(-1);
  return {
    ...toSummary(record),
    state: last?.state ?? null,
    counters: last?.counters ?? { ...NO_SPEND },
    events: events.length,
    report: null,
    effectivePolicy: effectivePolicyOf(record, events),
  };
}

/** The run's limits: as filed, else from its EXECUTION_START (a store may keep one or the other). */
function effectivePolicyOf(record: RunRecord, events: readonly OaoEvent[] | undefined): PolicyLimits | null {
  if (record.policy !== undefined) return record.policy;
  const start = events?.find((event) => event.type === 'EXECUTION_START');
  return start?.type === 'EXECUTION_START' ? start.payload.policy : null;
}
