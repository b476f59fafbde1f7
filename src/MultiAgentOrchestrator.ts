import { filter, Observable, takeWhile } from 'rxjs';
import { createActor, type Actor } from 'xstate';
import type { AgentLike, ToolSet } from './agent.js';
import { OaoError, safeString } from './errors.js';
import type { RunStore } from './store/RunStore.js';
import type { RunOwnership } from './store/RunLog.js';
import { checkStore, resolveOwnership } from './store/storeOption.js';
import type { Plugin } from './plugins/definePlugin.js';
import { installPlugins, type InstalledPlugins } from './plugins/installPlugins.js';
import { ownRecord } from './policy/schema.js';
import type { BatchEvent, BatchEventOf, BatchEventType, BatchProgress } from './events/batchSchema.js';
import { EventHub } from './events/EventHub.js';
import { supervisorMachine, type SupervisorMachine } from './machines/supervisorMachine.js';
import type { OaoInspector } from './Orchestrator.js';
import { StrictPolicy } from './policy/StrictPolicy.js';
import type { PolicyOptions } from './policy/schema.js';
import type { ExecutionReport } from './report/schema.js';
import { Batch } from './runtime/Batch.js';
import { systemClock, type Clock } from './runtime/clock.js';
import { randomRunId } from './runtime/runId.js';
import { positiveIntegerOption, typeOf } from './options.js';
import { abortReason, prepareRun, type RunRequest } from './runtime/prepareRun.js';
import { tenantBudgetsOf } from './runtime/orchestratorInternals.js';
import { SharedBudget, type SharedBudgetLimits } from './runtime/SharedBudget.js';

/** One job of a batch: a run request plus its name and start priority. */
export interface BatchJobRequest extends RunRequest {
  /** Names the job in events and in `runMulti`'s result. @default `job-<index>` */
  readonly name?: string;
  /** Higher starts first; equal priorities start in submission order. @default 0 */
  readonly priority?: number;
}

export interface BatchOptions {
  /** Aborting it cancels the batch. */
  readonly signal?: AbortSignal;
  /** Overrides the supervisor's fail-fast setting for this batch. */
  readonly failFast?: boolean;
}

export interface MultiAgentOrchestratorOptions {
  /**
   * At most this many runs execute at once; the rest wait in the queue.
   * @default 4
   */
  readonly maxConcurrency?: number;
  /** The limits of every child run; a job's own policy can only narrow them. @default new StrictPolicy() */
  readonly policy?: StrictPolicy | PolicyOptions;
  /**
   * Totals across all runs of one batch (steps, tokens, tool calls, wall time). When one is spent,
   * running children stop with `policy_violation` (or `timeout`) and queued ones never start.
   */
  readonly budget?: SharedBudgetLimits;
  /** Cancel the rest of a batch on the first failed run. @default false */
  readonly failFast?: boolean;
  /** Passed to every supervisor actor, and so to its child run actors. */
  readonly inspect?: OaoInspector;
  /** @default the system clock */
  readonly clock?: Clock;
  /** @default logs with console.error */
  readonly onHookError?: (error: unknown, event: BatchEvent) => void;
  /** Makes execution and batch ids. @default time-ordered random UUIDs (version 7) */
  readonly generateId?: () => string;
  /** Where every child run's event log is written (see docs/durability.md). @default none */
  readonly store?: RunStore;
  /** The name child runs are leased under in the store. @default host name, process id and a random part */
  readonly owner?: string;
  /** How long a child run's lease lasts without renewal. @default 10000 */
  readonly leaseTtlMs?: number;
  /**
   * Plugins made by `definePlugin()`, governing every child run as they do an `Orchestrator`'s
   * runs; their `onEvent` hooks see every child run's events. See docs/plugins.md. @default none
   */
  readonly plugins?: readonly Plugin[];
}

/** A submitted batch. */
export interface BatchHandle {
  readonly batchId: string;
  /** The supervisor actor: its children are the run actors. */
  readonly actor: Actor<SupervisorMachine>;
  /**
   * The batch's events, live; completes after BATCH_COMPLETE. The batch starts on the next
   * microtask, so subscribing right after `submit()` sees every event.
   */
  readonly events$: Observable<BatchEvent>;
  /** One report per job, in submission order; never rejects because of what a job did. */
  readonly reports: Promise<ExecutionReport[]>;
  progress(): BatchProgress;
  /** Cancels every job: running ones are stopped, queued ones never start; all still get reports. */
  cancel(reason?: string): void;
}

const defaultHookError = (error: unknown, event: BatchEvent): void => {
  console.error(`[oao] a hook for ${event.type} failed:`, error);
};

/**
 * Runs many agents at once under one set of rules: a supervisor actor spawns child run actors under
 * a concurrency limit, contains their failures and keeps their spend inside a shared budget.
 *
 * @example
 * ```ts
 * const multi = new MultiAgentOrchestrator({ maxConcurrency: 2, policy: { maxSteps: 3 } });
 * const results = await multi.runMulti({ agents: { researcher, critic }, task: 'Discuss AI governance' });
 * for (const [name, report] of Object.entries(results)) console.log(name, report.status);
 * ```
 */
export class MultiAgentOrchestrator {
  readonly maxConcurrency: number;
  readonly policy: StrictPolicy;
  readonly budget: Readonly<SharedBudgetLimits> | undefined;
  readonly failFast: boolean;
  /** Every event of every batch of this supervisor. */
  readonly events$: Observable<BatchEvent>;
  readonly #hub: EventHub<BatchEvent>;
  readonly #inspect: OaoInspector | undefined;
  readonly #clock: Clock;
  readonly #customClock: boolean;
  readonly #generateId: () => string;
  readonly #store: RunStore | undefined;
  readonly #ownership: RunOwnership | undefined;
  readonly #plugins: InstalledPlugins | undefined;

  constructor(options: MultiAgentOrchestratorOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected MultiAgentOrchestrator options to be an object, got ${typeOf(options)}`);
    }
    this.maxConcurrency = checkConcurrency(options.maxConcurrency ?? 4);
    this.policy = options.policy instanceof StrictPolicy ? options.policy : new StrictPolicy(options.policy ?? {});
    // Validates the totals now rather than at the first batch.
    this.budget = options.budget === undefined ? undefined : new SharedBudget(options.budget).limits;
    if (options.failFast !== undefined && typeof options.failFast !== 'boolean') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected failFast to be a boolean, got ${typeOf(options.failFast)}`, {
        details: { field: 'failFast' },
      });
    }
    this.failFast = options.failFast ?? false;
    this.#inspect = options.inspect;
    this.#clock = options.clock ?? systemClock;
    this.#customClock = options.clock !== undefined;
    this.#generateId = options.generateId ?? randomRunId;
    this.#store = checkStore(options.store);
    this.#ownership = resolveOwnership(this.#store, options.owner, options.leaseTtlMs);
    this.#hub = new EventHub<BatchEvent>(options.onHookError ?? defaultHookError);
    this.events$ = this.#hub.events$;
    const hub = this.#hub;
    // Plugins' hooks see run events: each child run's, unwrapped from its RUN_EVENT.
    this.#plugins = installPlugins(options.plugins, (type, hook) => {
      hub.on('RUN_EVENT', (event) => {
        const run = (event as Extract<BatchEvent, { type: 'RUN_EVENT' }>).payload.event;
        return type === '*' || run.type === type ? hook(run) : undefined;
      });
    });
  }

  /** Runs several agents on the same task; resolves with a report per agent name. */
  async runMulti(request: {
    readonly agents: Readonly<Record<string, AgentLike>>;
    readonly task: unknown;
    readonly tools?: ToolSet;
    readonly policy?: StrictPolicy | PolicyOptions;
    readonly signal?: AbortSignal;
  }): Promise<Record<string, ExecutionReport>> {
    if (typeof request !== 'object' || request === null) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the request to be an object, got ${typeOf(request)}`);
    }
    const { agents, task, tools, policy, signal } = request;
    if (typeof agents !== 'object' || agents === null || Array.isArray(agents)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"agents" must be an object of named agents, got ${typeOf(agents)}`, {
        details: { field: 'agents' },
      });
    }
    const names = Object.keys(agents);
    const jobs = names.map((name) => ({ name, agent: agents[name] as AgentLike, task, tools, policy }));
    const reports = await this.submit(jobs, { signal }).reports;
    // Own data properties: an agent may be named "constructor" or "__proto__".
    return ownRecord(names.map((name, index): [string, ExecutionReport] => [name, reports[index] as ExecutionReport]));
  }

  /** Runs every job; resolves with one report per job, in submission order. */
  runAll(jobs: readonly BatchJobRequest[], options: BatchOptions = {}): Promise<ExecutionReport[]> {
    try {
      return this.submit(jobs, options).reports;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Runs one agent over many tasks. */
  map(
    agent: AgentLike,
    tasks: readonly unknown[],
    options: BatchOptions & { readonly tools?: ToolSet; readonly policy?: StrictPolicy | PolicyOptions } = {},
  ): Promise<ExecutionReport[]> {
    if (!Array.isArray(tasks)) {
      return Promise.reject(new OaoError('OAO_ERR_INVALID_ARGUMENT', `"tasks" must be an array, got ${typeOf(tasks)}`, { details: { field: 'tasks' } }));
    }
    const { tools, policy, ...batch } = options;
    return this.runAll(tasks.map((task) => ({ agent, task, tools, policy })), batch);
  }

  /** Submits a batch and returns its handle at once. Invalid jobs throw a typed error naming the job. */
  submit(jobs: readonly BatchJobRequest[], options: BatchOptions = {}): BatchHandle {
    if (!Array.isArray(jobs)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"jobs" must be an array, got ${typeOf(jobs)}`, { details: { field: 'jobs' } });
    }
    if (options.failFast !== undefined && typeof options.failFast !== 'boolean') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected failFast to be a boolean, got ${typeOf(options.failFast)}`, {
        details: { field: 'failFast' },
      });
    }
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"signal" must be an AbortSignal, got ${typeOf(signal)}`, { details: { field: 'signal' } });
    }
    const batchId = this.#generateId();
    const batch = new Batch({
      batchId,
      maxConcurrency: this.maxConcurrency,
      failFast: options.failFast ?? this.failFast,
      clock: this.#clock,
      budget: this.budget,
      hub: this.#hub,
    });
    const shared = batch.shared;
    const tenantBudgets = tenantBudgetsOf(this);
    const names = new Set<string>();
    const jobSignals: [string, AbortSignal][] = [];
    jobs.forEach((job, index) => {
      const ref = { index, name: jobName(job, index, names) };
      const priority = jobPriority(job, index);
      try {
        const { session, signal: jobSignal } = prepareRun(job, {
          policy: this.policy,
          clock: this.#clock,
          sink: batch.sinkFor(ref),
          generateId: this.#generateId,
          syncOnly: false,
          record: false,
          shared,
          tenantBudgets,
          ...(this.#store === undefined ? {} : { store: this.#store, ownership: this.#ownership }),
          ...(this.#plugins === undefined ? {} : { plugins: this.#plugins }),
        });
        batch.add(session, ref, priority);
        if (jobSignal !== undefined) jobSignals.push([session.executionId, jobSignal]);
      } catch (error) {
        if (!OaoError.isInstance(error)) throw error;
        throw new OaoError(error.code, `Job ${index} ("${ref.name}"): ${error.message}`, {
          cause: error,
          details: { ...error.details, job: index },
        });
      }
    });

    const actor = createActor(supervisorMachine, {
      id: batchId,
      input: { batch },
      ...(this.#inspect === undefined ? {} : { inspect: this.#inspect }),
      ...(this.#customClock ? { clock: this.#clock } : {}),
    });
    const settled = new Promise<ExecutionReport[]>((resolve) => {
      actor.subscribe({
        complete: () => resolve(batch.reports),
        error: (error) => {
          // A defect in the supervisor: every job still gets a report.
          batch.crashAll(error);
          resolve(batch.reports);
        },
      });
    });
    // With a store, the batch's reports are handed out once every run's log is durable.
    const reports =
      this.#store === undefined
        ? settled
        : settled.then(async (all) => {
            await Promise.all(
              batch.jobs.map(async (job) => {
                await job.session.log?.settled();
                job.session.log?.end();
              }),
            );
            return all;
          });
    const onAbort = signal === undefined ? undefined : () => actor.send({ type: 'CANCEL', reason: abortReason(signal) });
    if (signal !== undefined && onAbort !== undefined) {
      signal.addEventListener('abort', onAbort, { once: true });
      void reports.then(() => signal.removeEventListener('abort', onAbort));
    }
    for (const [executionId, jobSignal] of jobSignals) {
      const cancelJob = () => batch.cancelJob(executionId, abortReason(jobSignal));
      if (jobSignal.aborted) cancelJob();
      else {
        jobSignal.addEventListener('abort', cancelJob, { once: true });
        void reports.then(() => jobSignal.removeEventListener('abort', cancelJob));
      }
    }
    actor.start();
    // Started on the next microtask, so that whoever submitted can subscribe to events$ first.
    queueMicrotask(() => {
      if (signal?.aborted === true) onAbort?.();
      actor.send({ type: 'START' });
    });

    const events$ = this.#hub.events$.pipe(
      filter((event) => event.batchId === batchId),
      takeWhile((event) => event.type !== 'BATCH_COMPLETE', true),
    );
    return {
      batchId,
      actor,
      events$,
      reports,
      progress: () => batch.progress(),
      cancel: (reason = 'cancelled by caller') => actor.send({ type: 'CANCEL', reason: safeString(reason) || 'cancelled by caller' }),
    };
  }

  /** Calls `hook` for every batch event of `type` (or '*'); returns the unsubscribe function. */
  on<T extends BatchEventType>(type: T | '*', hook: (event: T extends BatchEventType ? BatchEventOf<T> : BatchEvent) => unknown): () => void {
    return this.#hub.on(type, hook as (event: BatchEvent) => unknown);
  }
}

function checkConcurrency(value: unknown): number {
  return positiveIntegerOption(value, 'maxConcurrency');
}

function jobName(job: BatchJobRequest, index: number, taken: Set<string>): string {
  if (typeof job !== 'object' || job === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Job ${index} must be an object, got ${typeOf(job)}`, { details: { job: index } });
  }
  const name = job.name ?? `job-${index}`;
  if (typeof name !== 'string' || name.length === 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Job ${index}: "name" must be a non-empty string`, { details: { job: index, field: 'name' } });
  }
  if (taken.has(name)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Job ${index}: the name "${name}" is already used by another job`, {
      details: { job: index, field: 'name' },
    });
  }
  taken.add(name);
  return name;
}

function jobPriority(job: BatchJobRequest, index: number): number {
  const priority = job.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isFinite(priority)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Job ${index}: "priority" must be a finite number`, {
      details: { job: index, field: 'priority' },
    });
  }
  return priority;
}
