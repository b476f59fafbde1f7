import type { PolicyViolation } from '../errors.js';
import type { BatchEvent, BatchEventType, BatchProgress, HaltKind, JobRef } from '../events/batchSchema.js';
import type { OaoEvent } from '../events/schema.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Clock } from './clock.js';
import { JobQueue } from './JobQueue.js';
import type { EventSink, RunSession } from './RunSession.js';
import { SharedBudget, type SharedBudgetLimits } from './SharedBudget.js';

export interface BatchJob {
  readonly ref: JobRef;
  readonly session: RunSession;
  readonly priority: number;
  started: boolean;
  done: boolean;
}

export interface BatchInit {
  readonly batchId: string;
  readonly maxConcurrency: number;
  readonly failFast: boolean;
  readonly clock: Clock;
  /** Totals across the batch's runs; `timeoutMs` is the batch's wall time from its start. */
  readonly budget: SharedBudgetLimits | undefined;
  /** Delivers a batch event; `observed` says whether building one is worth it. */
  readonly hub: { readonly observed: boolean; emit(event: BatchEvent): void };
}

/**
 * The ledger of one supervised batch: the queue, the jobs in flight, every job's report in
 * submission order, and why the batch stopped early if it did. The supervisor machine decides when
 * to start and collect; this object does the bookkeeping, so N jobs always give N reports.
 */
export class Batch {
  readonly batchId: string;
  readonly maxConcurrency: number;
  readonly failFast: boolean;
  readonly clock: Clock;
  readonly shared: SharedBudget | undefined;
  readonly jobs: BatchJob[] = [];
  readonly reports: ExecutionReport[] = [];
  running = 0;
  finished = 0;
  succeeded = 0;
  failed = 0;
  halted: { readonly kind: HaltKind; readonly reason: string } | undefined;

  readonly #queue = new JobQueue<BatchJob>();
  readonly #byExecutionId = new Map<string, BatchJob>();
  readonly #hub: BatchInit['hub'];
  readonly #timeoutMs: number | undefined;
  #seq = 0;
  #begun = false;
  readonly #pendingCancels: [string, string][] = [];
  #deadline: unknown;
  #nudge: (() => void) | undefined;

  constructor(init: BatchInit) {
    this.batchId = init.batchId;
    this.maxConcurrency = init.maxConcurrency;
    this.failFast = init.failFast;
    this.clock = init.clock;
    this.#hub = init.hub;
    this.#timeoutMs = init.budget?.timeoutMs;
    this.shared =
      init.budget === undefined
        ? undefined
        : new SharedBudget(init.budget, (violation, runId) =>
            this.halt('shared_budget', `Stopped: the batch's shared ${violation.rule} budget was spent (${violation.message})`, violation, runId),
          );
  }

  get total(): number {
    return this.jobs.length;
  }

  /** Jobs still waiting in the queue. */
  get waiting(): number {
    return this.#queue.size;
  }

  get allDone(): boolean {
    return this.finished === this.jobs.length;
  }

  /** The event sink for one job's run: its events reach the batch stream tagged with the job. */
  sinkFor(ref: JobRef): EventSink {
    const hub = this.#hub;
    return {
      get observed() {
        return hub.observed;
      },
      emit: (event: OaoEvent) => this.#emit('RUN_EVENT', { job: ref, event }),
    };
  }

  add(session: RunSession, ref: JobRef, priority: number): void {
    const job: BatchJob = { ref, session, priority, started: false, done: false };
    this.jobs.push(job);
    this.#byExecutionId.set(session.executionId, job);
    this.#queue.push(job, priority);
  }

  /** Called when the supervisor actor starts: announces the batch and arms its deadline. */
  begin(): void {
    if (this.#begun) return;
    this.#begun = true;
    this.#emit('BATCH_START', { total: this.jobs.length, maxConcurrency: this.maxConcurrency });
    if (this.#hub.observed) {
      for (const job of this.jobs) this.#emit('JOB_QUEUED', { job: job.ref, priority: job.priority });
    }
    for (const [executionId, reason] of this.#pendingCancels.splice(0)) this.cancelJob(executionId, reason);
    if (this.#timeoutMs !== undefined && this.halted === undefined) {
      const timeoutMs = this.#timeoutMs;
      this.#deadline = this.clock.setTimeout(() => {
        this.#deadline = undefined;
        this.halt('timeout', `The batch exceeded its time limit of ${timeoutMs} ms`);
      }, timeoutMs);
    }
  }

  /** The next job to start now, if a slot is free and the batch is not halted. */
  nextToStart(): BatchJob | undefined {
    if (this.halted !== undefined || this.running >= this.maxConcurrency) return undefined;
    let job = this.#queue.shift();
    // Jobs cancelled while queued already have their report.
    while (job !== undefined && job.done) job = this.#queue.shift();
    if (job === undefined) return undefined;
    job.started = true;
    this.running += 1;
    if (this.#hub.observed) this.#emit('JOB_STARTED', { job: job.ref, executionId: job.session.executionId });
    // The pool arms the run's deadline once its actor has started.
    job.session.begin(false);
    return job;
  }

  /** A child run finished (or, never started, was closed by the batch): file its report. */
  collect(executionId: string, report: ExecutionReport): void {
    const job = this.#byExecutionId.get(executionId);
    if (job === undefined || job.done) return;
    job.done = true;
    this.reports[job.ref.index] = report;
    if (job.started) this.running -= 1;
    this.finished += 1;
    if (report.status === 'SUCCESS') this.succeeded += 1;
    else this.failed += 1;
    if (this.#hub.observed) {
      this.#emit('JOB_FINISHED', {
        job: job.ref,
        executionId,
        status: report.status,
        termination: report.termination,
        started: job.started,
      });
      this.#emit('BATCH_PROGRESS', this.progress());
    }
    if (this.failFast && report.status === 'FAILED') {
      this.halt('fail_fast', `Fail-fast: job "${job.ref.name}" failed (${report.termination.reason})`);
    }
  }

  /** One job's own signal aborted: stop it if it runs; if it waits, it never starts. */
  cancelJob(executionId: string, reason: string): void {
    const job = this.#byExecutionId.get(executionId);
    if (job === undefined || job.done) return;
    if (!this.#begun) {
      // Filed once the batch has announced itself, so its stream stays in order.
      this.#pendingCancels.push([executionId, reason]);
      return;
    }
    if (job.started) {
      job.session.cancel(reason);
      return;
    }
    job.session.begin(false);
    job.session.cancel(reason);
    this.collect(executionId, job.session.finish('FAILED'));
    this.#nudge?.();
  }

  /** Who re-checks the batch when reports are filed outside a child's completion. */
  setNudge(nudge: () => void): void {
    this.#nudge = nudge;
  }

  /** The supervisor itself failed (a defect): every job without a report gets one. */
  crashAll(error: unknown): void {
    for (const job of this.jobs) {
      if (!job.done) this.collect(job.session.executionId, job.session.crash(error));
    }
  }

  /** A child actor crashed (a defect): its ledger still produces a report. */
  crash(executionId: string, error: unknown): void {
    const job = this.#byExecutionId.get(executionId);
    if (job === undefined || job.done) return;
    this.collect(executionId, job.session.crash(error));
  }

  /**
   * Stops the batch: jobs still queued are never started (each still gets a report saying why), and
   * running ones are stopped with the matching reason. Only the first halt counts.
   */
  halt(kind: HaltKind, reason: string, violation?: PolicyViolation, causedBy?: string): void {
    if (this.halted !== undefined) return;
    this.halted = { kind, reason };
    if (this.#deadline !== undefined) {
      this.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    this.#emit('BATCH_HALTED', { kind, reason });
    for (const job of this.#queue.drain()) {
      if (job.done) continue;
      job.session.begin(false);
      this.#stop(job.session, kind, reason, violation);
      this.collect(job.session.executionId, job.session.finish('FAILED'));
    }
    for (const job of this.jobs) {
      if (job.started && !job.done && job.session.executionId !== causedBy) this.#stop(job.session, kind, reason, violation);
    }
    this.#nudge?.();
  }

  #stop(session: RunSession, kind: HaltKind, reason: string, violation: PolicyViolation | undefined): void {
    switch (kind) {
      case 'cancelled':
      case 'fail_fast':
        session.cancel(reason);
        break;
      case 'timeout':
        session.timeOut(reason);
        break;
      case 'shared_budget':
        if (violation !== undefined) session.violate({ ...violation, scope: 'shared', message: reason });
        break;
    }
  }

  /** Called when every job has a report. */
  complete(): void {
    if (this.#deadline !== undefined) {
      this.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    this.#nudge = undefined;
    this.#emit('BATCH_COMPLETE', this.progress());
  }

  progress(): BatchProgress {
    return {
      total: this.jobs.length,
      queued: this.#queue.size,
      running: this.running,
      finished: this.finished,
      succeeded: this.succeeded,
      failed: this.failed,
    };
  }

  #emit<T extends BatchEventType>(type: T, payload: Extract<BatchEvent, { type: T }>['payload']): void {
    if (!this.#hub.observed) return;
    this.#hub.emit({ batchId: this.batchId, seq: this.#seq++, timestamp: this.clock.now(), type, payload } as BatchEvent);
  }
}
