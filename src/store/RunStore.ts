import type { OaoEvent } from '../events/schema.js';
import type { StoredWorkflowEvent } from '../events/workflowSchema.js';
import type { ExecutionReport } from '../report/schema.js';

/**
 * The durable record of runs: each run is its event log, appended in `seq` order. Counters, the
 * state history and the report are derived from the log; a store keeps a small index beside it
 * (agent, status, times, the report) so that lists and lookups need not read whole logs.
 *
 * Three implementations share this contract and one conformance suite: `createMemoryStore()`
 * (core), `createSqliteStore()` (`open-agent-orchestrator/sqlite`) and `createPostgresStore()`
 * (`open-agent-orchestrator/postgres`). Every method may answer synchronously or with a promise.
 */
export interface RunStore {
  /**
   * True when every method answers synchronously (memory, SQLite): `runSync` can record to such a
   * store. An asynchronous store (PostgreSQL) leaves it false or absent.
   */
  readonly synchronous?: boolean;

  /**
   * Appends events to a run's log, atomically (all or none). The first event of a run must be its
   * `EXECUTION_START` with `seq` 0; later appends continue at the next `seq` with no gap.
   *
   * Idempotent per `(executionId, seq)`: events whose `seq` the log already holds are skipped when
   * they are identical to the stored ones (a retried append after a crash or a lost answer), and
   * refused with `OAO_ERR_LOG_CONFLICT` when they differ. A gap (first `seq` past the end) is
   * `OAO_ERR_LOG_CONFLICT` too. With `lease`, the append is refused with `OAO_ERR_LEASE_LOST`
   * unless that lease is the run's current one (the fencing token of a stale owner never writes).
   * Fencing is by token, not by clock: a lease past its `expiresAt` still writes until another
   * owner takes the run over or it is released.
   *
   * The lease can change hands in the same atomic step, which saves a writer a round trip each:
   * with `acquire`, the append first takes the run's lease as {@link acquireLease} would (and is
   * refused with `OAO_ERR_LEASE_LOST`, storing nothing, when another owner holds a live one), and
   * hands it to `acquire.onAcquired` once stored; with `release`, it gives the lease (`lease`, or
   * the one just taken) up as {@link releaseLease} would, after the events. Either happens only
   * when the append succeeds, also when every event of the batch was stored already.
   *
   * A store that cannot write throws `OAO_ERR_STORE` (or `OAO_ERR_STORE_UNAVAILABLE` when its
   * server cannot be reached); nothing of the batch is then stored, and no lease changes.
   */
  append(executionId: string, events: readonly OaoEvent[], options?: AppendOptions): Awaitable<void>;

  /**
   * A run's events in `seq` order, from `fromSeq` (inclusive; default 0); `[]` for an unknown run.
   * Every event is checked on the way out: a row that does not parse, an unknown event type or a
   * gap in `seq` is `OAO_ERR_LOG_CORRUPT`, and a row written by a newer schema version
   * `OAO_ERR_LOG_VERSION`, each with `details: { executionId, seq }`.
   */
  events(executionId: string, options?: { readonly fromSeq?: number }): Awaitable<readonly OaoEvent[]>;

  /** The final report (from the run's `EXECUTION_COMPLETE`), or undefined while it has none. */
  report(executionId: string): Awaitable<ExecutionReport | undefined>;

  /** The run's index entry, or undefined for an unknown run. */
  get(executionId: string): Awaitable<StoredRun | undefined>;

  /**
   * Runs matching the filter, newest first (by `startedAt`, then by `executionId` for ties).
   * `cursor` is the `nextCursor` of the previous page; an invalid one is
   * `OAO_ERR_INVALID_ARGUMENT` with `details.field: 'cursor'`.
   */
  list(filter?: RunListFilter, page?: RunPageRequest): Awaitable<RunPage>;

  /**
   * Applies the store's retention (`maxRuns`, `maxAgeMs`): deletes finished runs (index, log and
   * report), oldest first (by `finishedAt`, then `executionId`), never a run without its report,
   * never counters. Returns how many runs it deleted.
   */
  prune(): Awaitable<number>;

  /**
   * Takes the run's lease for `owner` until `now + ttlMs`, when nobody holds it or the holder's
   * lease has expired (`expiresAt <= now`), or `owner` already holds it: then it is renewed with
   * the same token. The run need not have events yet (a worker leases a run before starting it).
   * Every change of holder increments the fencing token. Returns the lease, or undefined when
   * another owner holds a live one.
   */
  acquireLease(executionId: string, owner: string, ttlMs: number): Awaitable<Lease | undefined>;

  /** Extends a lease the caller still holds (same owner and token); false if it was lost. */
  renewLease(lease: Lease, ttlMs: number): Awaitable<boolean>;

  /**
   * Gives the lease up (if still held with that token); the token stays counted. A run without
   * its report whose lease was released counts as `interrupted` (nobody runs it any more).
   */
  releaseLease(lease: Lease): Awaitable<void>;

  /**
   * Adds `amounts` to the counters of `scope` in `window` atomically and returns all of that
   * scope's counters in that window after the charge. Counters are never deleted by retention.
   * Keys are free-form (`tokens`, `costMicros` ...); amounts are safe integers and may be negative
   * (a settled reservation). A charge that would take a total past the safe integers is
   * `OAO_ERR_INVALID_ARGUMENT` and changes nothing.
   */
  charge(scope: string, window: string, amounts: Readonly<Record<string, number>>): Awaitable<Readonly<Record<string, number>>>;

  /** The counters of `scope` in `window` (`{}` when nothing was charged). */
  counters(scope: string, window: string): Awaitable<Readonly<Record<string, number>>>;

  /**
   * Appends events to a workflow run's own log (see docs/workflows.md, "Durable workflows"): a
   * keyspace of its own, beside the run logs, keyed by workflow run id, so `list()` never shows a
   * workflow as a run. Atomic and idempotent per `(workflowRunId, seq)` as `append` is: the first
   * event is `WORKFLOW_START` with `seq` 0, a retried identical event is skipped, a different one
   * or a gap is `OAO_ERR_LOG_CONFLICT`. The node runs' events are in their own run logs, never here.
   *
   * Optional so that a store written for an earlier release still works: without it (and
   * {@link workflowEvents}) workflows run but are not durable. The three stores of this package
   * implement both.
   */
  appendWorkflow?(workflowRunId: string, events: readonly StoredWorkflowEvent[]): Awaitable<void>;

  /**
   * A workflow run's own events in `seq` order, from `fromSeq`; `[]` for an unknown workflow run.
   * Checked on the way out like `events()` (`OAO_ERR_LOG_CORRUPT`, `OAO_ERR_LOG_VERSION`).
   */
  workflowEvents?(workflowRunId: string, options?: { readonly fromSeq?: number }): Awaitable<readonly StoredWorkflowEvent[]>;

  /** Releases connections and file handles. Later calls throw `OAO_ERR_STORE`. Idempotent. */
  close(): Awaitable<void>;
}

export type Awaitable<T> = T | Promise<T>;

/**
 * A store whose every method answers synchronously (memory, SQLite): callers that hold it by this
 * type (a synchronous run, a test) need not await, and `runSync` can record to it.
 */
export interface SynchronousRunStore extends RunStore {
  readonly synchronous: true;
  append(executionId: string, events: readonly OaoEvent[], options?: AppendOptions): void;
  events(executionId: string, options?: { readonly fromSeq?: number }): readonly OaoEvent[];
  report(executionId: string): ExecutionReport | undefined;
  get(executionId: string): StoredRun | undefined;
  list(filter?: RunListFilter, page?: RunPageRequest): RunPage;
  prune(): number;
  acquireLease(executionId: string, owner: string, ttlMs: number): Lease | undefined;
  renewLease(lease: Lease, ttlMs: number): boolean;
  releaseLease(lease: Lease): void;
  charge(scope: string, window: string, amounts: Readonly<Record<string, number>>): Readonly<Record<string, number>>;
  counters(scope: string, window: string): Readonly<Record<string, number>>;
  appendWorkflow?(workflowRunId: string, events: readonly StoredWorkflowEvent[]): void;
  workflowEvents?(workflowRunId: string, options?: { readonly fromSeq?: number }): readonly StoredWorkflowEvent[];
  close(): void;
}

export interface AppendOptions {
  /** The writer's lease: the append fails with `OAO_ERR_LEASE_LOST` unless it is current. */
  readonly lease?: Lease;
  /**
   * Takes the run's lease for `owner` for `ttlMs` in the same atomic step, before the events are
   * written (as `acquireLease(executionId, owner, ttlMs)` would): a writer's first append. Not
   * together with `lease`.
   */
  readonly acquire?: LeaseRequest;
  /**
   * Releases the lease (`lease`, or the one `acquire` takes) in the same atomic step, after the
   * events are written (as `releaseLease` would): a run's last append, the one that holds its
   * `EXECUTION_COMPLETE`. Needs `lease` or `acquire`.
   * @default false
   */
  readonly release?: boolean;
}

/** The lease an append takes with `AppendOptions.acquire`. */
export interface LeaseRequest {
  readonly owner: string;
  /** An integer from 1 up. */
  readonly ttlMs: number;
  /**
   * Receives the lease the append took, once the append has succeeded: before `append` returns
   * (a synchronous store) or its promise resolves. Not called when the append fails. It must not
   * throw. A lease taken and released by the same append is handed over too (no longer held).
   */
  readonly onAcquired?: (lease: Lease) => void;
}

/** Ownership of a live run: whose appends count. */
export interface Lease {
  readonly executionId: string;
  readonly owner: string;
  /** Fencing token: increases every time the run changes holder. */
  readonly token: number;
  /** Milliseconds since the epoch, by the store's clock. */
  readonly expiresAt: number;
}

/**
 * `running` while the run has no report and a live lease (or was never leased: an in-process
 * run); `interrupted` when it has no report and its lease expired (its process died).
 */
export type StoredRunStatus = 'running' | 'interrupted' | 'SUCCESS' | 'FAILED';

/** A run's index entry. */
export interface StoredRun {
  readonly executionId: string;
  /** From `EXECUTION_START.payload.agentName`. */
  readonly agentName: string;
  readonly status: StoredRunStatus;
  /** ISO 8601, from `EXECUTION_START.timestamp`. */
  readonly startedAt: string;
  /** ISO 8601, from the report; absent while the run has none. */
  readonly finishedAt?: string;
  /** How many events the log holds (the next `seq`). */
  readonly eventCount: number;
}

export interface RunListFilter {
  readonly agentName?: string;
  readonly status?: StoredRunStatus;
  /** Runs that started at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Runs that started before this time (ms since the epoch). */
  readonly until?: number;
}

export interface RunPageRequest {
  /** @default 50 (at most 1000) */
  readonly limit?: number;
  readonly cursor?: string;
}

export interface RunPage {
  readonly runs: readonly StoredRun[];
  /** Pass it as `cursor` for the next page; null on the last page. */
  readonly nextCursor: string | null;
}

/** Options every store takes. */
export interface RunStoreOptions {
  /** Finished runs kept at most; `prune()` deletes the oldest beyond it. @default unlimited */
  readonly maxRuns?: number;
  /**
   * Finished runs older than this (`now - finishedAt > maxAgeMs`) are deleted by `prune()`.
   * @default unlimited
   */
  readonly maxAgeMs?: number;
  /** Time source for leases and retention (ms since the epoch). @default Date.now */
  readonly now?: () => number;
}

/** Version of the stored row format; a row with a higher one is `OAO_ERR_LOG_VERSION`. */
export const STORE_SCHEMA_VERSION = 1;
