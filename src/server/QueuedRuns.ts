import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import { endInterrupted } from '../log/endInterrupted.js';
import { foldRun } from '../log/foldRun.js';
import type { PolicyOptions } from '../policy/schema.js';
import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { QueuedBatchBudget, RunQueue } from '../queue/createQueue.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Clock } from '../runtime/clock.js';
import { prepareRun } from '../runtime/prepareRun.js';
import type { Lease, RunStore, StoredRun } from '../store/RunStore.js';

/** A run request the server hands to the queue. */
export interface QueuedRunSubmission {
  readonly executionId: string;
  /** The lease the server claimed the id with: the run's first event is appended under it, then it is released. */
  readonly lease: Lease;
  readonly agent: AgentLike;
  readonly agentName: string;
  readonly task: unknown;
  /** The request's own policy options (for the job), and the server's policy narrowed by them (for the log). */
  readonly policyOptions: PolicyOptions | undefined;
  readonly policy: StrictPolicy;
  /** The request's API key's tenant: recorded in the run's EXECUTION_START, which the worker continues from. */
  readonly tenant?: string | undefined;
  /**
   * The queued batch whose shared budget the run spends (see `RunQueue.createBatch`): recorded in
   * the run's EXECUTION_START, so every job of the run, enqueued again by any server, names it.
   */
  readonly batch?: string | undefined;
}

/**
 * The server's side of the distributed runtime: what `POST /runs` and `POST /run` do when the
 * server was given a `queue`. The store is the source of truth and the queue carries ids: a run's
 * `EXECUTION_START` is written to the store before the request is answered, then the run is
 * enqueued; a worker continues it from that log. A run the queue lost (Redis stopped without
 * persistence) lists as `interrupted`, and the server's sweep enqueues it again.
 */
export class QueuedRuns {
  readonly #queue: RunQueue;
  readonly #store: RunStore;
  readonly #ceiling: StrictPolicy;
  readonly #tools: ToolSet | undefined;
  readonly #clock: Clock;

  constructor(queue: RunQueue, store: RunStore, ceiling: StrictPolicy, tools: ToolSet | undefined, clock: Clock) {
    this.#queue = queue;
    this.#store = store;
    this.#ceiling = ceiling;
    this.#tools = tools;
    this.#clock = clock;
  }

  /**
   * Records the run's start (`EXECUTION_START`, under the claimed lease, which the same write
   * releases): from here on the run is accepted, and a worker or a sweep takes it up.
   */
  async recordStart(run: QueuedRunSubmission): Promise<void> {
    const { session } = prepareRun(
      {
        agent: run.agent,
        agentName: run.agentName,
        task: run.task,
        policy: run.policy,
        executionId: run.executionId,
        ...(run.tenant === undefined ? {} : { tenant: run.tenant }),
        ...(run.batch === undefined ? {} : { batch: run.batch }),
        ...(this.#tools === undefined ? {} : { tools: this.#tools }),
      },
      { policy: this.#ceiling, clock: this.#clock, sink: undefined, generateId: () => run.executionId, syncOnly: false, record: true },
    );
    session.begin(false);
    const start = session.events;
    // Released with the same write: a worker (or, should the queue lose the job, a sweep) takes it from here.
    await this.#store.append(run.executionId, start, { lease: run.lease, release: true });
  }

  /**
   * Enqueues a recorded run. When the queue does not take it, the stored run is ended FAILED with
   * the queue's error (so no sweep starts it later) and the error is thrown: the request is
   * answered 503 `OAO_ERR_QUEUE_UNAVAILABLE`, and nothing that was accepted is lost.
   */
  async enqueue(run: QueuedRunSubmission): Promise<void> {
    try {
      await this.#queue.enqueue({
        executionId: run.executionId,
        agent: run.agentName,
        task: run.task,
        ...(run.policyOptions === undefined ? {} : { policy: run.policyOptions }),
        // The worker checks the run against its tenant's window in Redis (and records nothing from it: the log has the tenant).
        ...(run.tenant === undefined ? {} : { tenant: run.tenant }),
        ...(run.batch === undefined ? {} : { batch: run.batch }),
      });
    } catch (error) {
      await this.#endUnqueued(run.executionId, error).catch(() => {});
      throw error;
    }
  }

  /**
   * Enqueues again a stored run nobody holds (its job was lost, or its worker died): a no-op while
   * its job exists. A run unloaded while it waits for a decision is left alone, unless `waiting`
   * says to take it up anyway (a cancel: the worker then ends it cancelled). The job names the
   * queued batch the run's EXECUTION_START records, so it spends that batch's shared budget
   * whichever server enqueues it, after any restart.
   */
  async requeue(run: StoredRun, waiting = false): Promise<boolean> {
    const events = await this.#store.events(run.executionId, { fromSeq: 0 });
    const start = events[0];
    if (start === undefined || start.type !== 'EXECUTION_START' || events.at(-1)?.type === 'EXECUTION_COMPLETE') return false;
    if (!waiting && (foldRun(events)?.pendingApprovals.size ?? 0) > 0) {
      // Unloaded while a person decides: the decision enqueues it. Said as "held" so the sweep skips it quietly.
      throw new OaoError('OAO_ERR_LEASE_HELD', `Run "${run.executionId}" waits for a decision on a tool call`, { details: { executionId: run.executionId } });
    }
    // The worker continues the run from its log: the recorded task and policy are the ones it runs under.
    // Its batch and its tenant too: the worker takes its chunks of their budgets by them.
    const { batch, tenant } = start.payload;
    await this.#queue.enqueue({
      executionId: run.executionId,
      agent: run.agentName,
      task: start.payload.task ?? null,
      ...(tenant === undefined ? {} : { tenant }),
      ...(batch === undefined ? {} : { batch }),
    });
    return true;
  }

  /** Creates a queued batch's shared budget in Redis (see `RunQueue.createBatch`). */
  createBatch(batchId: string, budget: QueuedBatchBudget): Promise<string> {
    return this.#queue.createBatch(budget, { batchId });
  }

  cancel(executionId: string, reason: string): Promise<void> {
    return this.#queue.cancel(executionId, reason);
  }

  waitForReport(executionId: string, signal?: AbortSignal): Promise<ExecutionReport> {
    return this.#queue.waitForReport(executionId, signal === undefined ? {} : { signal });
  }

  async #endUnqueued(executionId: string, cause: unknown): Promise<void> {
    const error = OaoError.isInstance(cause) ? cause : new OaoError('OAO_ERR_QUEUE_UNAVAILABLE', 'The run queue did not take the run', { cause });
    const lease = await this.#store.acquireLease(executionId, `oao-server-unqueued:${executionId}`, 10_000);
    if (lease === undefined) return;
    try {
      const events = await this.#store.events(executionId);
      if (events.at(-1)?.type === 'EXECUTION_COMPLETE') return;
      await this.#store.append(executionId, endInterrupted(events, { now: this.#clock.now(), owner: null, error: error.toJSON() }), { lease, release: true });
    } catch (failure) {
      await Promise.resolve(this.#store.releaseLease(lease)).catch(() => {});
      throw failure;
    }
  }
}
