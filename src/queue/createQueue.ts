import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { OaoError } from '../errors.js';
import { invalidOption, positiveIntegerOption, typeOf } from '../options.js';
import type { PolicyOptions } from '../policy/schema.js';
import type { ExecutionReport } from '../report/schema.js';
import { canonicalJson } from '../report/canonicalJson.js';
import { checkStore } from '../store/storeOption.js';
import type { RunStore } from '../store/RunStore.js';
import { runJobSchema, type RunJobData } from './jobData.js';
import { checkConnection, checkQueueName, closeRedis, loadQueuePackages, openRedis, queueKeys, queueUnavailable, type RedisConnection } from './redisConnection.js';
import { randomRunId } from '../runtime/runId.js';
import type { SharedBudgetLimits } from '../runtime/SharedBudget.js';
import { budgetFields, createBatchBudget, DEFAULT_BATCH_TTL_MS } from './batchBudget.js';
import { readDoneNotice } from './doneNotice.js';
import { admitTenantRuns, refundTenantRuns, registerTenantWindows, tenantWindowKeys } from './tenantWindow.js';
import { checkBatchId } from '../runtime/batchId.js';

/** Options of {@link createQueue}. */
export interface QueueOptions {
  /** Where Redis is: a `redis://` URL or ioredis options. */
  readonly connection: RedisConnection;
  /** The BullMQ queue name; workers must use the same. @default 'oao-runs' */
  readonly queueName?: string;
  /**
   * The store the workers record runs in: {@link RunQueue.waitForReport} reads reports from it.
   * @default none: waitForReport is unavailable
   */
  readonly store?: RunStore;
  /**
   * Runs executing at once over every worker of the queue (BullMQ's global concurrency), set on
   * the queue in Redis when the queue is created. @default no queue-wide limit (each worker's own
   * `concurrency` still applies)
   */
  readonly maxConcurrency?: number;
  /**
   * How long `enqueue()` waits for Redis before it rejects with `OAO_ERR_QUEUE_UNAVAILABLE`
   * (Redis stopped, unreachable, or paused with `CLIENT PAUSE`). @default 2000
   */
  readonly enqueueTimeoutMs?: number;
  /** Makes execution ids. @default time-ordered random UUIDs (version 7) */
  readonly generateId?: () => string;
}

/** A run to enqueue: the agent by the name workers register it under, never code. */
export interface QueuedRunRequest {
  /** The agent's name in the workers' `agents`. */
  readonly agent: string;
  /** A string or any JSON value. */
  readonly task: unknown;
  /** Narrows the workers' policy for this run (JSON options only). */
  readonly policy?: PolicyOptions;
  /**
   * The run's id, and its BullMQ job id: enqueueing an id that is queued or running already adds
   * nothing, and a worker that takes a job whose run has finished acknowledges it with the stored
   * report. Pass your own to make a retried enqueue idempotent. @default a generated id
   */
  readonly executionId?: string;
  /** The tenant the run belongs to: recorded in its EXECUTION_START (see `RunRequest.tenant`). @default none */
  readonly tenant?: string;
  /**
   * The queued batch the run belongs to, by the id `createBatch()` returned: its spend counts
   * against the batch's shared budget, over every worker. @default none
   */
  readonly batch?: string;
}

/**
 * A queued batch's shared budget: totals over every run of the batch, whichever worker runs it.
 * `timeoutMs` is not one of them (workers share no clock): give each run a policy `timeoutMs`.
 */
export type QueuedBatchBudget = Omit<SharedBudgetLimits, 'timeoutMs'>;

/** Options of {@link RunQueue.createBatch}. */
export interface QueuedBatchOptions {
  /** The batch's id (letters, digits, ".", "_", "-"; at most 128). @default a generated id */
  readonly batchId?: string;
  /**
   * How long the batch's budget record lives in Redis after it is created or a run last took a
   * chunk of it. A run that starts after it expired is refused. @default 86400000 (a day)
   */
  readonly ttlMs?: number;
}

/** What {@link RunQueue.enqueueBatch} enqueues. */
export interface QueuedBatchRequest extends QueuedBatchOptions {
  /** The batch's runs (their `batch` is set to the batch's id). */
  readonly runs: readonly Omit<QueuedRunRequest, 'batch'>[];
  /** The batch's shared budget. */
  readonly budget: QueuedBatchBudget;
}

/** How long a wait for a report first waits for the worker's notice before it reads the store again; it doubles up to MAX_POLL_MS. */
const FIRST_POLL_MS = 1_000;
const MAX_POLL_MS = 8_000;

/** The producer side of the distributed runtime. */
export interface RunQueue {
  readonly name: string;
  /** The BullMQ queue underneath (for metrics, dashboards, or pausing it). */
  readonly bullQueue: Queue;
  /**
   * Enqueues a run and resolves with its execution id as soon as Redis holds the job. Rejects with
   * `OAO_ERR_INVALID_ARGUMENT` (or `OAO_ERR_INVALID_POLICY`) for a malformed request and with
   * `OAO_ERR_QUEUE_UNAVAILABLE` when Redis does not take the job within `enqueueTimeoutMs`.
   */
  enqueue(request: QueuedRunRequest): Promise<string>;
  /**
   * Creates a batch's shared budget in Redis and resolves with the batch's id, for the runs then
   * enqueued with `batch: id`. Each run takes its chunk of the budget atomically before it starts
   * (its own limit of each, at most what is left) and gives back what it did not spend when it
   * ends, so the runs together never spend more than the budget; a run that finds a limit spent
   * ends FAILED `policy_violation` (scope `shared`) before its first step. See docs/distributed.md.
   * `OAO_ERR_INVALID_ARGUMENT` for a malformed budget, `OAO_ERR_QUEUE_UNAVAILABLE` when Redis
   * does not answer.
   */
  createBatch(budget: QueuedBatchBudget, options?: QueuedBatchOptions): Promise<string>;
  /** `createBatch()`, then `enqueue()` of each run with the batch's id, in order. */
  enqueueBatch(request: QueuedBatchRequest): Promise<{ readonly batchId: string; readonly executionIds: readonly string[] }>;
  /**
   * Cancels a run wherever it is: the worker running it ends it `cancelled` (through Redis
   * pub/sub), and a run still waiting in the queue is cancelled when a worker takes it.
   */
  cancel(executionId: string, reason?: string): Promise<void>;
  /**
   * Resolves with the run's report once a worker has stored it (needs `store`). Rejects with the
   * signal's reason when `signal` aborts first.
   */
  waitForReport(executionId: string, options?: { readonly signal?: AbortSignal }): Promise<ExecutionReport>;
  /** Closes the queue's Redis connections (the workers and the store are not touched). Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the queue that runs are enqueued on, for workers ({@link createWorker}) in this or other
 * processes to take. The queue carries run requests by agent name; each run's event log lives in
 * the workers' store under its execution id.
 *
 * @example
 * ```ts no-run
 * import { createQueue } from 'open-agent-orchestrator/queue';
 * import { createPostgresStore } from 'open-agent-orchestrator/postgres';
 *
 * const store = await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1/oao' });
 * const queue = await createQueue({ connection: 'redis://127.0.0.1:6380', store });
 * const id = await queue.enqueue({ agent: 'echo', task: 'hi' });
 * const report = await queue.waitForReport(id);
 * ```
 */
export async function createQueue(options: QueueOptions): Promise<RunQueue> {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected createQueue options to be an object, got ${typeOf(options)}`);
  }
  const connection = checkConnection(options.connection);
  const name = checkQueueName(options.queueName);
  const store = checkStore(options.store);
  const maxConcurrency = options.maxConcurrency === undefined ? undefined : positiveIntegerOption(options.maxConcurrency, 'maxConcurrency');
  const enqueueTimeoutMs = positiveIntegerOption(options.enqueueTimeoutMs ?? 2_000, 'enqueueTimeoutMs');
  const generateId = options.generateId ?? randomRunId;
  if (typeof generateId !== 'function') throw invalidOption('generateId', `Expected "generateId" to be a function, got ${typeOf(generateId)}`);
  const { Redis, bullmq } = await loadQueuePackages('createQueue');
  // No offline queue: while Redis is down a command fails at once instead of piling up unseen.
  const client = openRedis(Redis, connection, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  const bullQueue = new bullmq.Queue(name, { connection: client });
  bullQueue.on('error', () => {});
  const queue = new BullRunQueue(name, bullQueue, client, connection, store, enqueueTimeoutMs, generateId, Redis);
  if (maxConcurrency !== undefined) {
    try {
      await queue.withTimeout(bullQueue.setGlobalConcurrency(maxConcurrency), 'could not set the queue-wide concurrency');
    } catch (error) {
      await queue.close();
      throw error;
    }
  }
  return queue;
}

class BullRunQueue implements RunQueue {
  readonly name: string;
  readonly bullQueue: Queue;
  readonly #client: Redis;
  readonly #connection: RedisConnection;
  readonly #store: RunStore | undefined;
  readonly #timeoutMs: number;
  readonly #generateId: () => string;
  readonly #Redis: Awaited<ReturnType<typeof loadQueuePackages>>['Redis'];
  readonly #keys: ReturnType<typeof queueKeys>;
  /** The subscriber for reports, opened by the first waitForReport. */
  #subscriber: Redis | undefined;
  readonly #waiters = new Map<string, Set<(report?: ExecutionReport) => void>>();
  #closed = false;

  constructor(
    name: string,
    bullQueue: Queue,
    client: Redis,
    connection: RedisConnection,
    store: RunStore | undefined,
    timeoutMs: number,
    generateId: () => string,
    RedisClass: Awaited<ReturnType<typeof loadQueuePackages>>['Redis'],
  ) {
    this.name = name;
    this.bullQueue = bullQueue;
    this.#client = client;
    this.#connection = connection;
    this.#store = store;
    this.#timeoutMs = timeoutMs;
    this.#generateId = generateId;
    this.#Redis = RedisClass;
    this.#keys = queueKeys(name);
    // Without an offline queue a command fails until the connection is up: BullMQ waits for it.
    const ready = () => this.bullQueue.waitUntilReady();
    registerTenantWindows(this, {
      admit: (tenant, limits, runs, nowMs, seed) =>
        this.withTimeout(
          ready().then(() => admitTenantRuns(this.#client, tenantWindowKeys(this.#keys, tenant), limits, runs, nowMs, seed)),
          `the run queue did not admit the runs of tenant "${tenant}"`,
        ),
      refund: (tenant, window, runs, nowMs) =>
        this.withTimeout(
          ready().then(() => refundTenantRuns(this.#client, tenantWindowKeys(this.#keys, tenant), window, runs, nowMs)),
          `the run queue did not take back the runs of tenant "${tenant}"`,
        ),
    });
  }

  async enqueue(request: QueuedRunRequest): Promise<string> {
    this.#open();
    if (typeof request !== 'object' || request === null) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the run request to be an object, got ${typeOf(request)}`);
    }
    const data: RunJobData = checkJob({
      executionId: request.executionId ?? this.#generateId(),
      // An id generated here is new: the worker need not look for the run's log before its first start.
      ...(request.executionId === undefined ? { fresh: true } : {}),
      agent: request.agent,
      task: request.task,
      ...(request.policy === undefined ? {} : { policy: request.policy }),
      ...(request.tenant === undefined ? {} : { tenant: request.tenant }),
      ...(request.batch === undefined ? {} : { batch: request.batch }),
    });
    await this.withTimeout(
      this.bullQueue.add(data.agent, data, { jobId: data.executionId, removeOnComplete: true, removeOnFail: { count: 10_000 }, attempts: 3, backoff: { type: 'exponential', delay: 500 } }),
      'the run queue did not take the run',
    );
    return data.executionId;
  }

  async createBatch(budget: QueuedBatchBudget, options: QueuedBatchOptions = {}): Promise<string> {
    this.#open();
    const fields = budgetFields(budget);
    if (typeof options !== 'object' || options === null) throw invalidOption('options', `Expected createBatch options to be an object, got ${typeOf(options)}`);
    const batchId = checkBatchId(options.batchId ?? this.#generateId(), 'batchId');
    const ttlMs = positiveIntegerOption(options.ttlMs ?? DEFAULT_BATCH_TTL_MS, 'ttlMs');
    const key = this.#keys.batchBudget(batchId);
    // Without an offline queue a command fails until the connection is up: BullMQ waits for it.
    const create = this.bullQueue.waitUntilReady().then(() => createBatchBudget(this.#client, key, fields, ttlMs));
    await this.withTimeout(create, 'the run queue did not take the batch\'s budget');
    return batchId;
  }

  async enqueueBatch(request: QueuedBatchRequest): Promise<{ readonly batchId: string; readonly executionIds: readonly string[] }> {
    this.#open();
    if (typeof request !== 'object' || request === null || !Array.isArray(request.runs)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected the batch to be an object with "runs" (an array) and "budget"', { details: { field: 'runs' } });
    }
    const batchId = await this.createBatch(request.budget, {
      ...(request.batchId === undefined ? {} : { batchId: request.batchId }),
      ...(request.ttlMs === undefined ? {} : { ttlMs: request.ttlMs }),
    });
    const executionIds: string[] = [];
    for (const run of request.runs) executionIds.push(await this.enqueue({ ...run, batch: batchId }));
    return { batchId, executionIds };
  }

  async cancel(executionId: string, reason = 'cancelled by caller'): Promise<void> {
    this.#open();
    if (typeof executionId !== 'string' || executionId.length === 0) throw invalidOption('executionId', `Expected an execution id, got ${typeOf(executionId)}`);
    const message = JSON.stringify({ executionId, reason: typeof reason === 'string' && reason.length > 0 ? reason.slice(0, 2_000) : 'cancelled by caller' });
    // The key first: a worker that takes the job after the message was published still sees it.
    await this.withTimeout(
      this.#client
        .multi()
        .set(this.#keys.cancelled(executionId), message, 'EX', 86_400)
        .publish(this.#keys.cancelChannel, message)
        .exec(),
      'the run queue did not take the cancel',
    );
  }

  async waitForReport(executionId: string, options: { readonly signal?: AbortSignal } = {}): Promise<ExecutionReport> {
    this.#open();
    const store = this.#store;
    if (store === undefined) {
      throw invalidOption('store', 'waitForReport() reads the report from the store the workers record in: create the queue with `store`');
    }
    const signal = options.signal;
    signal?.throwIfAborted();
    // A notice (the worker's, once the report is stored) wakes the wait; a poll of the store covers
    // notices that cannot arrive. Redis stopped or paused must not fail a wait for a report the
    // store will hold: the client completes the subscription once Redis answers again, and the
    // poll goes on meanwhile.
    await this.#subscribe().catch(() => undefined);
    let wake: () => void = () => {};
    // The report a notice carried (the worker's, stored before it published it): no store read then.
    let noticed: ExecutionReport | undefined;
    const waiters = this.#waiters.get(executionId) ?? new Set<(report?: ExecutionReport) => void>();
    this.#waiters.set(executionId, waiters);
    let woken = Promise.resolve();
    const arm = () => {
      woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
    };
    const onWake = (report?: ExecutionReport) => {
      if (report !== undefined) noticed = report;
      wake();
    };
    waiters.add(onWake);
    const onAbort = () => wake();
    signal?.addEventListener('abort', onAbort);
    try {
      let pollMs = FIRST_POLL_MS;
      for (;;) {
        arm();
        const report = noticed ?? (await store.report(executionId));
        if (report !== undefined) return report;
        signal?.throwIfAborted();
        // Notices are missed only while the subscriber reconnects (it wakes every wait once it is
        // back) or when Redis drops them: the poll backs off from one second to eight, so a
        // thousand waits on long runs do not read the store a thousand times a second.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          woken,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, pollMs);
          }),
        ]);
        pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
        clearTimeout(timer);
        signal?.throwIfAborted();
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      waiters.delete(onWake);
      if (waiters.size === 0) this.#waiters.delete(executionId);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
    await Promise.race([this.bullQueue.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    await closeRedis(this.#client);
    if (this.#subscriber !== undefined) await closeRedis(this.#subscriber);
  }

  /** `operation`, or `OAO_ERR_QUEUE_UNAVAILABLE` when it fails or Redis does not answer in time. */
  async withTimeout<T>(operation: Promise<T>, message: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OaoError('OAO_ERR_QUEUE_UNAVAILABLE', `${message}: Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    // An operation that settles after the timeout must not become an unhandled rejection.
    operation.catch(() => {});
    try {
      return await Promise.race([operation, late]);
    } catch (error) {
      throw queueUnavailable(error, message);
    } finally {
      clearTimeout(timer);
    }
  }

  async #subscribe(): Promise<void> {
    if (this.#subscriber !== undefined) return;
    const subscriber = openRedis(this.#Redis, this.#connection, { maxRetriesPerRequest: null });
    this.#subscriber = subscriber;
    subscriber.on('message', (_channel: string, message: string) => {
      // Parsed only when someone waits for the run: a notice for a run nobody here waits for costs a lookup.
      const executionId = message.startsWith('{') ? noticeId(message) : message;
      const waiters = executionId === undefined ? undefined : this.#waiters.get(executionId);
      if (waiters === undefined) return;
      const { report } = readDoneNotice(message);
      for (const wake of waiters) wake(report);
    });
    // Re-subscribed by ioredis after a reconnect: notices published in between are lost, so every
    // wait looks at the store again once the connection is back (and the poll covers the gap).
    subscriber.on('ready', () => {
      for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
    });
    await this.withTimeout(subscriber.subscribe(this.#keys.doneChannel), 'could not subscribe to finished runs');
  }

  #open(): void {
    if (this.#closed) throw new OaoError('OAO_ERR_QUEUE_UNAVAILABLE', `The run queue "${this.name}" is closed`);
  }
}

/** The execution id of a notice that carries a report, read without parsing the report (it starts `{"executionId":"…"`). */
function noticeId(message: string): string | undefined {
  const match = /^\{"executionId":("(?:[^"\\]|\\.)*")/.exec(message);
  if (match === null) return undefined;
  try {
    return JSON.parse(match[1] as string) as string;
  } catch {
    return undefined;
  }
}

/** A job's data, checked as a worker will check it: a typed error naming the field. */
function checkJob(data: { readonly task: unknown; readonly [field: string]: unknown }): RunJobData {
  const parsed = runJobSchema.safeParse(data);
  if (parsed.success) {
    // The job travels as JSON: a task that JSON cannot carry would reach the worker changed.
    try {
      canonicalJson(data.task);
    } catch (error) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"task" must be JSON-serializable: ${(error as Error).message}`, { details: { field: 'task' } });
    }
    return parsed.data;
  }
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  const code = field.startsWith('policy') ? 'OAO_ERR_INVALID_POLICY' : 'OAO_ERR_INVALID_ARGUMENT';
  throw new OaoError(code, `Invalid run request${field === '' ? '' : ` field "${field}"`}: ${issue?.message ?? 'malformed'}`, { details: { field } });
}
