import type { Job, Worker } from 'bullmq';
import type { Plugin } from '../plugins/definePlugin.js';
import type { Redis } from 'ioredis';
import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import { endInterrupted } from '../log/endInterrupted.js';
import { invalidOption, positiveIntegerOption, typeOf } from '../options.js';
import { Orchestrator, type RunHandle } from '../Orchestrator.js';
import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Clock } from '../runtime/clock.js';
import { checkAgent } from '../runtime/prepareRun.js';
import type { Lease, RunStore } from '../store/RunStore.js';
import { checkStore, defaultOwner } from '../store/storeOption.js';
import { AgentSlots } from './agentSlots.js';
import { internalsOf } from '../runtime/orchestratorInternals.js';
import type { SharedBudget } from '../runtime/SharedBudget.js';
import { chunkBudget, DEFAULT_BATCH_TTL_MS, giveBack as giveBackChunk, refusingBudget, takeChunk, wantedOf } from './batchBudget.js';
import { runJobSchema, type RunJobData, type RunJobResult } from './jobData.js';
import { doneNotice } from './doneNotice.js';
import { giveBackTenantWindow, leaseTenantWindow, tenantWindowKeys, tenantWindowOf } from './tenantWindow.js';
import type { TenantAccount } from '../tenants/TenantLevel.js';
import type { BudgetWindow } from '../tenants/windows.js';
import { checkConnection, checkQueueName, closeRedis, loadQueuePackages, openRedis, queueKeys, queueUnavailable, type RedisConnection } from './redisConnection.js';

/** Options of {@link createWorker}. */
export interface WorkerOptions {
  /** Where Redis is: a `redis://` URL or ioredis options. */
  readonly connection: RedisConnection;
  /** The BullMQ queue name, as given to `createQueue`. @default 'oao-runs' */
  readonly queueName?: string;
  /** The agents jobs may name, by name (the run's `agentName`). */
  readonly agents: Readonly<Record<string, AgentLike>>;
  /** Tools every run may call (governed by the policy). */
  readonly tools?: ToolSet;
  /** The ceiling of every run: a job's policy can only narrow it. @default new StrictPolicy() */
  readonly policy?: StrictPolicy | PolicyOptions;
  /**
   * Plugins (`definePlugin()`) that govern every run this worker executes. Plugins act where a run
   * runs: give every worker the plugins the servers have. @default none
   */
  readonly plugins?: readonly Plugin[];
  /**
   * Where every run is recorded: shared by every worker and server of the queue (PostgreSQL for
   * several hosts, SQLite for one). A redelivered job is continued from its log here.
   */
  readonly store: RunStore;
  /** Runs this worker executes at once. @default 1 */
  readonly concurrency?: number;
  /**
   * How long BullMQ's lock on a running job lasts without renewal (renewed every half of it). A
   * worker that dies stops renewing; its jobs count as stalled once the lock has expired.
   * @default 5000
   */
  readonly lockDuration?: number;
  /**
   * How often a worker looks for stalled jobs (whose lock expired) and hands them to a worker
   * again. A dead worker's run is taken up after about `lockDuration` plus up to one
   * `stalledInterval`. @default 5000
   */
  readonly stalledInterval?: number;
  /**
   * Times a job may stall (its worker died) and still be handed on; one more stall ends its run
   * FAILED with `OAO_ERR_INTERRUPTED`. @default 2
   */
  readonly maxStalledCount?: number;
  /**
   * Runs of one agent executing at once over every worker of the queue, by agent name (a Redis
   * counter per agent; give every worker the same caps). A job over its agent's cap waits in the
   * queue. @default no per-agent cap
   */
  readonly agentConcurrency?: Readonly<Record<string, number>>;
  /** The lease owner name of this worker in the store, and its BullMQ worker name. @default host, pid and a random part */
  readonly owner?: string;
  /**
   * The time to live of the store leases this worker's runs hold (renewed every third of it). A
   * dead worker's runs can be continued by another once it has expired.
   * @default lockDuration
   */
  readonly leaseTtlMs?: number;
  /** Time source of the runs. @default the system clock */
  readonly clock?: Clock;
  /** Called with failures that no run's report can carry (Redis errors, a malformed job). @default console.error */
  readonly onError?: (error: unknown, message: string) => void;
}

/** A worker taking runs from the queue. */
export interface RunWorker {
  /** This worker's lease owner name (and BullMQ worker name). */
  readonly owner: string;
  /** The orchestrator the runs execute on (its `events$` carries every event of this worker's runs). */
  readonly orchestrator: Orchestrator;
  /** The BullMQ worker underneath. */
  readonly bullWorker: Worker<RunJobData, RunJobResult>;
  /** Execution ids of the runs executing here now. */
  running(): readonly string[];
  /**
   * Stops taking jobs, waits for the runs executing here to end, and closes this worker's Redis
   * connections (not the store). Idempotent.
   */
  close(): Promise<void>;
}

/** BullMQ's reason for failing a job that stalled more than `maxStalledCount` times. */
const STALLED_TOO_OFTEN = /stalled more than allowable limit/;
/** How long a job over its agent's cap waits before it asks for a slot again. */
const AGENT_SLOT_RETRY_MS = 200;
/** Errors after which the run belongs to someone else: another worker took it over or wrote it first. */
const TAKEN_OVER: ReadonlySet<string> = new Set(['OAO_ERR_LEASE_LOST', 'OAO_ERR_LOG_CONFLICT', 'OAO_ERR_LEASE_HELD']);
/** Errors of the store itself: the job fails and BullMQ tries it again, continuing from the log. */
const STORE_FAILED: ReadonlySet<string> = new Set(['OAO_ERR_STORE', 'OAO_ERR_STORE_UNAVAILABLE']);

/**
 * Starts a worker that takes runs from the queue and executes them with an {@link Orchestrator}
 * on `store`. A job is a run by id: a run that has no log yet starts; one whose log exists
 * (BullMQ handed the job on because its worker died) is continued from its log with
 * `orch.startResumed()`, so completed steps and recorded tool results are never run again; one
 * that has finished is acknowledged with its stored report.
 *
 * Ownership is decided twice: BullMQ's lock decides which worker runs a job, and the store's
 * lease with its fencing token decides whose appends count, so a worker that stalled but lives on
 * and the worker that took its job over never both write the run.
 *
 * @example
 * ```ts no-run
 * import { createWorker } from 'open-agent-orchestrator/queue';
 * import { createPostgresStore } from 'open-agent-orchestrator/postgres';
 *
 * const store = await createPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1/oao' });
 * const worker = await createWorker({ connection: 'redis://127.0.0.1:6380', store, agents: { echo: (task: string) => `echo: ${task}` }, concurrency: 8 });
 * process.on('SIGTERM', () => void worker.close());
 * ```
 */
export async function createWorker(options: WorkerOptions): Promise<RunWorker> {
  const settings = checkWorkerOptions(options);
  const { Redis, bullmq } = await loadQueuePackages('createWorker');
  const keys = queueKeys(settings.queueName);
  // BullMQ's worker connections must retry forever: a worker rides out a Redis restart.
  const client = openRedis(Redis, settings.connection, { maxRetriesPerRequest: null });
  const subscriber = openRedis(Redis, settings.connection, { maxRetriesPerRequest: null });
  const orchestrator = new Orchestrator({
    store: settings.store,
    owner: settings.owner,
    leaseTtlMs: settings.leaseTtlMs,
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.plugins === undefined ? {} : { plugins: options.plugins }),
  });
  const slots = new AgentSlots(client, keys.agentSlots, settings.agentConcurrency, settings.lockDuration);
  const runner = new JobRunner(settings, orchestrator, client, slots, keys, bullmq);
  subscriber.on('message', (_channel: string, message: string) => runner.cancelMessage(message));
  try {
    await subscriber.subscribe(keys.cancelChannel);
  } catch (error) {
    await closeRedis(subscriber);
    await closeRedis(client);
    throw queueUnavailable(error, 'the worker could not subscribe to cancels');
  }
  const bullWorker = new bullmq.Worker<RunJobData, RunJobResult>(settings.queueName, (job, token) => runner.process(job, token), {
    connection: client,
    name: settings.owner,
    concurrency: settings.concurrency,
    lockDuration: settings.lockDuration,
    stalledInterval: settings.stalledInterval,
    maxStalledCount: settings.maxStalledCount,
  });
  bullWorker.on('error', (error) => settings.onError(error, 'the run queue failed'));
  // A job that stalled more often than maxStalledCount is failed by BullMQ (when a worker takes it
  // next) without running again: its run still ends, with a report saying why.
  bullWorker.on('failed', (job, error) => {
    if (job === undefined || !STALLED_TOO_OFTEN.test(error.message)) return;
    runner.afterStall(job).catch((failure: unknown) => settings.onError(failure, `could not end run ${String(job.id)} after it stalled too often`));
  });
  let closing: Promise<void> | undefined;
  return {
    owner: settings.owner,
    orchestrator,
    bullWorker,
    running: () => runner.running(),
    close: () =>
      (closing ??= (async () => {
        await bullWorker.close();
        await closeRedis(subscriber);
        await closeRedis(client);
      })()),
  };
}

interface WorkerSettings {
  readonly connection: RedisConnection;
  readonly queueName: string;
  readonly agents: ReadonlyMap<string, AgentLike>;
  readonly tools: ToolSet | undefined;
  readonly store: RunStore;
  readonly concurrency: number;
  readonly lockDuration: number;
  readonly stalledInterval: number;
  readonly maxStalledCount: number;
  readonly agentConcurrency: ReadonlyMap<string, number>;
  readonly owner: string;
  readonly leaseTtlMs: number;
  readonly onError: (error: unknown, message: string) => void;
}

function checkWorkerOptions(options: WorkerOptions): WorkerSettings {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected createWorker options to be an object, got ${typeOf(options)}`);
  }
  const store = checkStore(options.store);
  if (store === undefined) throw invalidOption('store', 'createWorker needs the "store" that every worker and server of the queue records runs in');
  const rawAgents: unknown = options.agents;
  if (typeof rawAgents !== 'object' || rawAgents === null || Array.isArray(rawAgents)) {
    throw invalidOption('agents', `Expected "agents" to be an object of agents by name, got ${typeOf(rawAgents)}`);
  }
  const agents = new Map<string, AgentLike>();
  for (const [name, agent] of Object.entries(rawAgents as Record<string, AgentLike>)) {
    checkAgent(agent);
    agents.set(name, agent);
  }
  if (agents.size === 0) throw invalidOption('agents', 'Expected "agents" to name at least one agent');
  const caps = new Map<string, number>();
  const rawCaps: unknown = options.agentConcurrency;
  if (rawCaps !== undefined) {
    if (typeof rawCaps !== 'object' || rawCaps === null || Array.isArray(rawCaps)) {
      throw invalidOption('agentConcurrency', `Expected "agentConcurrency" to be an object of counts by agent name, got ${typeOf(rawCaps)}`);
    }
    for (const [name, cap] of Object.entries(rawCaps as Record<string, unknown>)) caps.set(name, positiveIntegerOption(cap, `agentConcurrency.${name}`));
  }
  const onError = options.onError ?? ((error: unknown, message: string) => console.error(`[oao worker] ${message}:`, error));
  if (typeof onError !== 'function') throw invalidOption('onError', `Expected "onError" to be a function, got ${typeOf(onError)}`);
  const owner = options.owner ?? defaultOwner();
  if (typeof owner !== 'string' || owner.length === 0) throw invalidOption('owner', `Expected "owner" to be a non-empty string, got ${typeOf(owner)}`);
  const lockDuration = positiveIntegerOption(options.lockDuration ?? 5_000, 'lockDuration');
  return {
    connection: checkConnection(options.connection),
    queueName: checkQueueName(options.queueName),
    agents,
    tools: options.tools,
    store,
    concurrency: positiveIntegerOption(options.concurrency ?? 1, 'concurrency'),
    lockDuration,
    stalledInterval: positiveIntegerOption(options.stalledInterval ?? 5_000, 'stalledInterval'),
    maxStalledCount: positiveIntegerOption(options.maxStalledCount ?? 2, 'maxStalledCount'),
    agentConcurrency: caps,
    owner,
    leaseTtlMs: positiveIntegerOption(options.leaseTtlMs ?? lockDuration, 'leaseTtlMs'),
    onError,
  };
}

/** BullMQ's control-flow errors: a job put back to wait, and a job that must not be retried. */
interface BullErrors {
  readonly DelayedError: new (message?: string) => Error;
  readonly UnrecoverableError: new (message?: string) => Error;
}

/** What runs one job: the decisions between starting, continuing and acknowledging a run. */
class JobRunner {
  readonly #settings: WorkerSettings;
  readonly #orch: Orchestrator;
  readonly #client: Redis;
  readonly #slots: AgentSlots;
  readonly #keys: ReturnType<typeof queueKeys>;
  readonly #bull: BullErrors;
  /** Runs executing here, by id: a job redelivered to this same process joins its run. */
  readonly #active = new Map<string, Promise<RunJobResult>>();
  /** How to cancel each run executing here. */
  readonly #controllers = new Map<string, AbortController>();
  /** The window of each tenant whose runs took a chunk of it here (see src/queue/tenantWindow.ts). */
  readonly #tenantWindows = new Map<string, string>();

  constructor(
    settings: WorkerSettings,
    orch: Orchestrator,
    client: Redis,
    slots: AgentSlots,
    keys: ReturnType<typeof queueKeys>,
    bull: BullErrors,
  ) {
    this.#settings = settings;
    this.#orch = orch;
    this.#client = client;
    this.#slots = slots;
    this.#keys = keys;
    this.#bull = bull;
  }

  running(): readonly string[] {
    return [...this.#active.keys()];
  }

  cancelMessage(message: string): void {
    let parsed: { executionId?: unknown; reason?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return;
    }
    if (typeof parsed.executionId !== 'string') return;
    this.#controllers.get(parsed.executionId)?.abort(typeof parsed.reason === 'string' ? parsed.reason : 'cancelled');
  }

  process(job: Job<RunJobData, RunJobResult>, token: string | undefined): Promise<RunJobResult> {
    const parsed = runJobSchema.safeParse(job.data);
    if (!parsed.success) {
      // Nothing can run it, now or later: fail the job without retries.
      const error = new OaoError('OAO_ERR_INVALID_ARGUMENT', `Job ${String(job.id)} is not a run request: ${parsed.error.issues[0]?.message ?? 'malformed'}`);
      this.#settings.onError(error, 'a malformed job was dropped');
      return Promise.reject(new this.#bull.UnrecoverableError(error.message));
    }
    const data = parsed.data;
    const id = data.executionId;
    const existing = this.#active.get(id);
    if (existing !== undefined) return existing;
    const running = this.#run(job, token, data);
    this.#active.set(id, running);
    const forget = () => {
      if (this.#active.get(id) === running) this.#active.delete(id);
    };
    running.then(forget, forget);
    return running;
  }

  async #run(job: Job<RunJobData, RunJobResult>, token: string | undefined, data: RunJobData): Promise<RunJobResult> {
    const { store } = this.#settings;
    const id = data.executionId;
    // One read decides: no run yet (start it), a finished one (acknowledge it), or one to continue.
    // A job whose id the queue generated has no run yet on its first start: nothing to read.
    const stored = data.fresh === true && job.attemptsStarted <= 1 ? undefined : await store.get(id);
    if (stored !== undefined && (stored.status === 'SUCCESS' || stored.status === 'FAILED')) {
      const finished = await store.report(id);
      if (finished !== undefined) {
        // Its worker stored the report but died before giving back the rest of its chunk.
        if (data.batch !== undefined) await this.#giveBackChunk(data.batch, id, finished);
        if (data.tenant !== undefined) await this.#giveBackTenant(data.tenant, id, finished);
        return result(finished);
      }
    }
    let giveBack: (() => Promise<void>) | undefined;
    if (this.#slots.capped(data.agent)) {
      if (!(await this.#slots.take(data.agent, id))) {
        // Every slot of the agent is taken: back to the queue for a moment, not counted as a failure.
        await job.moveToDelayed(Date.now() + AGENT_SLOT_RETRY_MS, token);
        throw new this.#bull.DelayedError();
      }
      giveBack = this.#slots.hold(data.agent, id);
    }
    const controller = new AbortController();
    this.#controllers.set(id, controller);
    try {
      const cancelled = await this.#client.get(this.#keys.cancelled(id));
      if (cancelled !== null) controller.abort(cancelReason(cancelled));
      // A run of a queued batch takes its chunk of the batch's budget first (the same chunk again
      // when its job was handed on): its in-run checks are then synchronous, against the chunk.
      const shared = data.batch === undefined ? undefined : await this.#takeChunk(data.batch, data);
      // Likewise its chunk of its tenant's window, when a server put the tenant's budget in Redis.
      const tenant = data.tenant === undefined ? undefined : await this.#leaseTenant(data.tenant, data);
      const report = await this.#execute(data, stored !== undefined, controller.signal, shared, tenant?.account);
      // Unloaded while it waits for a decision: the job is done (the run keeps its chunks); the decision enqueues the run again.
      if (report === undefined) return { executionId: id, status: 'WAITING' };
      // A run's promise settles once its log is durable, unless the log failed: then the store's error is in the report.
      if (report.error !== undefined && (STORE_FAILED.has(report.error.code) || TAKEN_OVER.has(report.error.code)) && (await store.report(id)) === undefined) {
        // The run ended without its log: the store failed. BullMQ tries the job again, and the
        // next attempt continues the run from what was stored.
        const error = report.error;
        throw new OaoError(error !== undefined && STORE_FAILED.has(error.code) ? (error.code as 'OAO_ERR_STORE') : 'OAO_ERR_STORE', `Run "${id}" ended before its log was stored: ${error?.message ?? 'unknown'}`, {
          details: { executionId: id },
        });
      }
      // Only now is the run over: what it did not spend goes back to its batch and its tenant. A run
      // whose log failed keeps its chunks, and the attempt that continues it takes the same ones.
      if (data.batch !== undefined) await this.#giveBackChunk(data.batch, id, report);
      if (tenant !== undefined) await this.#giveBackTenant(tenant.tenant, id, report, tenant.window);
      // The notice carries the stored report (when small): whoever waits for it need not read it back.
      this.#client.publish(this.#keys.doneChannel, doneNotice(id, report)).catch(() => {});
      return result(report);
    } finally {
      this.#controllers.delete(id);
      await giveBack?.();
    }
  }

  /**
   * Starts the run, or continues it from its log; the report once it is stored, or undefined when
   * the run was unloaded to wait for a person's decision.
   */
  async #execute(data: RunJobData, logged: boolean, signal: AbortSignal, shared: SharedBudget | undefined, tenant: TenantAccount | undefined): Promise<ExecutionReport | undefined> {
    const { tools } = this.#settings;
    const id = data.executionId;
    const agent = this.#settings.agents.get(data.agent);
    if (!logged) {
      const request = {
        agent: agent ?? unknownAgent(data.agent, [...this.#settings.agents.keys()]),
        agentName: data.agent,
        task: data.task,
        executionId: id,
        signal,
        ...(data.tenant === undefined ? {} : { tenant: data.tenant }),
        // Recorded in its log, so that the run, enqueued again from it, still spends its batch's budget.
        ...(data.batch === undefined ? {} : { batch: data.batch }),
        ...(tools === undefined || agent === undefined ? {} : { tools }),
        ...(data.policy === undefined ? {} : { policy: data.policy }),
      };
      // Only a run whose policy makes tool calls wait for a person needs a handle (to unload it then).
      const mayWait = this.#orch.policy.approvalPredicate !== undefined || this.#orch.policy.limits.tools.approve !== undefined || data.policy?.tools?.approve !== undefined;
      const start = () => (shared === undefined && tenant === undefined ? this.#orch.start(request) : (internalsOf(this.#orch).startShared?.(request, shared, tenant) ?? this.#orch.start(request)));
      const report = mayWait || shared !== undefined || tenant !== undefined ? await untilEndOrWait(start()) : await this.#orch.run(request);
      if (report === undefined) return undefined;
      // Another worker wrote the run first (it took the job while this one was stalled): it is theirs.
      if (report.error === undefined || !TAKEN_OVER.has(report.error.code)) return report;
    }
    return this.#continue(data, agent, signal, shared, tenant);
  }

  /** The run's chunk of its batch's budget, as the in-process budget it runs under. */
  async #takeChunk(batch: string, data: RunJobData): Promise<SharedBudget> {
    const limits = this.#orch.policy.narrow(data.policy).limits;
    const taken = await takeChunk(this.#client, this.#keys.batchBudget(batch), data.executionId, wantedOf(limits), DEFAULT_BATCH_TTL_MS);
    return 'chunk' in taken ? chunkBudget(taken.chunk) : refusingBudget(taken.refused);
  }

  /**
   * The run's chunk of its tenant's window in Redis, as the account its in-run checks ask; undefined
   * when no server put a budget on what the tenant's runs spend.
   */
  async #leaseTenant(tenant: string, data: RunJobData): Promise<{ readonly tenant: string; readonly account: TenantAccount; readonly window: BudgetWindow } | undefined> {
    const limits = this.#orch.policy.narrow(data.policy).limits;
    const now = internalsOf(this.#orch).clock.now();
    const lease = await leaseTenantWindow(this.#client, tenantWindowKeys(this.#keys, tenant), tenant, data.executionId, wantedOf(limits), now, this.#tenantWindows);
    return lease === undefined ? undefined : { tenant, ...lease };
  }

  /**
   * Charges the run's spend to its tenant's window and releases its chunk; a Redis failure leaves
   * the chunk held until its hold expires (the run store's counters still get the spend).
   */
  async #giveBackTenant(tenant: string, executionId: string, report: ExecutionReport, known?: BudgetWindow): Promise<void> {
    try {
      const keys = tenantWindowKeys(this.#keys, tenant);
      // A run whose worker died after its report was stored: its tenant's window as Redis has it.
      const window = known ?? (await tenantWindowOf(this.#client, keys));
      if (window !== undefined) await giveBackTenantWindow(this.#client, keys, window, executionId, report, internalsOf(this.#orch).clock.now());
    } catch (error) {
      this.#settings.onError(error, `run ${executionId} could not charge its spend to the window of tenant "${tenant}"`);
    }
  }

  /** Gives back what the run did not spend of its chunk; a Redis failure leaves it to the record's expiry. */
  async #giveBackChunk(batch: string, executionId: string, report: ExecutionReport): Promise<void> {
    try {
      await giveBackChunk(this.#client, this.#keys.batchBudget(batch), executionId, report);
    } catch (error) {
      this.#settings.onError(error, `run ${executionId} could not give back the rest of its batch's budget`);
    }
  }

  /**
   * Continues a run that has a log: resumed here once its lease is free (a dead worker's lease
   * expires within its time to live; a live holder finishes it, and its report is taken).
   */
  async #continue(data: RunJobData, agent: AgentLike | undefined, signal: AbortSignal, shared?: SharedBudget, tenant?: TenantAccount): Promise<ExecutionReport | undefined> {
    const { store, tools, leaseTtlMs } = this.#settings;
    const id = data.executionId;
    for (;;) {
      const finished = await store.report(id);
      if (finished !== undefined) return finished;
      try {
        if (agent === undefined) {
          const names = [...this.#settings.agents.keys()];
          await this.#endStored(id, new OaoError('OAO_ERR_UNKNOWN_AGENT', `No agent named "${data.agent}" is registered in this worker (it has: ${names.join(', ')})`, { details: { agent: data.agent } }));
          continue;
        }
        const request = { agent, signal, ...(tools === undefined ? {} : { tools }) };
        const startResumed = internalsOf(this.#orch).startResumedShared;
        const report = await untilEndOrWait(
          await ((shared === undefined && tenant === undefined) || startResumed === undefined ? this.#orch.startResumed(id, request) : startResumed(id, request, shared, tenant)),
        );
        if (report === undefined || report.error === undefined || !TAKEN_OVER.has(report.error.code)) return report;
      } catch (error) {
        if (!OaoError.isInstance(error) || !(error.code === 'OAO_ERR_LEASE_HELD' || error.code === 'OAO_ERR_RUN_FINISHED')) throw error;
      }
      // Held by a live lease: its holder finishes the run, or its lease runs out.
      await new Promise((resolve) => setTimeout(resolve, Math.max(50, Math.floor(leaseTtlMs / 4))));
    }
  }

  /** Ends a stored run FAILED with `error`, under its lease (waits while another owner holds it). */
  async #endStored(executionId: string, error: OaoError): Promise<void> {
    const { store, owner, leaseTtlMs } = this.#settings;
    let lease: Lease | undefined;
    try {
      lease = await store.acquireLease(executionId, owner, leaseTtlMs);
      if (lease === undefined) throw new OaoError('OAO_ERR_LEASE_HELD', `Run "${executionId}" is held by another owner`, { details: { executionId } });
      const events = await store.events(executionId);
      if (events.length === 0 || events[events.length - 1]?.type === 'EXECUTION_COMPLETE') return;
      await store.append(executionId, endInterrupted(events, { now: Date.now(), owner, error: error.toJSON() }), { lease });
    } finally {
      if (lease !== undefined) {
        const taken = lease;
        await Promise.resolve()
          .then(() => store.releaseLease(taken))
          .catch(() => {});
      }
    }
  }

  /** A job BullMQ failed because it stalled too often: its run ends FAILED `OAO_ERR_INTERRUPTED`. */
  async afterStall(job: Job<RunJobData, RunJobResult>): Promise<void> {
    const parsed = runJobSchema.safeParse(job.data);
    if (!parsed.success) return;
    const data = parsed.data;
    const id = data.executionId;
    const error = new OaoError('OAO_ERR_INTERRUPTED', `Run "${id}" stalled more than ${this.#settings.maxStalledCount} time(s): its workers died while running it`, {
      details: { executionId: id, stalled: this.#settings.maxStalledCount + 1 },
    });
    for (;;) {
      if ((await this.#settings.store.report(id)) !== undefined) break;
      if ((await this.#settings.store.get(id)) === undefined) {
        // Never started: record it as a run that failed at once, so it still has a report.
        await this.#orch.run({
          agent: failingAgent(error),
          agentName: data.agent,
          task: data.task,
          executionId: id,
          ...(data.tenant === undefined ? {} : { tenant: data.tenant }),
          ...(data.batch === undefined ? {} : { batch: data.batch }),
        });
        break;
      }
      try {
        await this.#endStored(id, error);
        break;
      } catch (failure) {
        if (!OaoError.isInstance(failure) || failure.code !== 'OAO_ERR_LEASE_HELD') throw failure;
        await new Promise((resolve) => setTimeout(resolve, Math.max(50, Math.floor(this.#settings.leaseTtlMs / 4))));
      }
    }
    if (data.batch !== undefined || data.tenant !== undefined) {
      const report = await this.#settings.store.report(id);
      if (report !== undefined && data.batch !== undefined) await this.#giveBackChunk(data.batch, id, report);
      if (report !== undefined && data.tenant !== undefined) await this.#giveBackTenant(data.tenant, id, report);
    }
    this.#client.publish(this.#keys.doneChannel, id).catch(() => {});
  }
}

/**
 * The run's report; or undefined once the run waits for a person's decision on a tool call: then
 * it is unloaded (its log holds the request, its lease is given up), so that waiting costs this
 * worker no slot. Whoever decides records the decision in the log and enqueues the run again.
 */
async function untilEndOrWait(handle: RunHandle): Promise<ExecutionReport | undefined> {
  let checking = false;
  // Looked at once the step that asked is settled (the request recorded, the run waiting).
  const check = () => {
    if (checking) return;
    checking = true;
    setImmediate(() => {
      checking = false;
      if (handle.pendingApprovals().length > 0) handle.unload().catch(() => {});
    });
  };
  // A new request, and every change of state: a continued run whose request still waits asks no second time.
  const requests = handle.events$.subscribe((event) => {
    if (event.type === 'APPROVAL_REQUESTED') check();
  });
  const states = handle.actor.subscribe(check);
  try {
    return await handle.report;
  } catch (error) {
    if (OaoError.isInstance(error) && error.code === 'OAO_ERR_RUN_UNLOADED') return undefined;
    throw error;
  } finally {
    requests.unsubscribe();
    states.unsubscribe();
  }
}

function result(report: ExecutionReport): RunJobResult {
  return { executionId: report.executionId, status: report.status };
}

function cancelReason(message: string): string {
  try {
    const parsed = JSON.parse(message) as { reason?: unknown };
    if (typeof parsed.reason === 'string' && parsed.reason.length > 0) return parsed.reason;
  } catch {
    // a bare reason
  }
  return 'cancelled';
}

/** The stand-in for an agent this worker lacks: the run ends FAILED with `OAO_ERR_UNKNOWN_AGENT`. */
function unknownAgent(name: string, known: readonly string[]): AgentLike {
  return failingAgent(new OaoError('OAO_ERR_UNKNOWN_AGENT', `No agent named "${name}" is registered in this worker (it has: ${known.join(', ')})`, { details: { agent: name } }));
}

function failingAgent(error: OaoError): AgentLike {
  return {
    invoke() {
      throw error;
    },
  };
}

