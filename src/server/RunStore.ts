import type { OaoEvent } from '../events/schema.js';
import type { RunHandle } from '../Orchestrator.js';
import type { PolicyLimits } from '../policy/schema.js';
import type { ExecutionReport } from '../report/schema.js';

/** `running` until the run has its report; queued runs of a batch count as running. */
export type RunStatus = 'running' | 'SUCCESS' | 'FAILED';

/**
 * What the server needs of a run while it is live. The core's `RunHandle` satisfies it; runs of a
 * POST /run-multi batch get one of their own.
 */
export type LiveRun = Pick<RunHandle, 'executionId' | 'events$' | 'events' | 'report' | 'cancel'>;

/** A run started over HTTP, as the server keeps it. */
export interface RunRecord {
  readonly executionId: string;
  /** The name the agent is registered under on the server (not necessarily the agent's own name). */
  readonly agent: string;
  readonly status: RunStatus;
  /** ISO 8601, from the server's clock. */
  readonly startedAt: string;
  /** ISO 8601; set with the report. */
  readonly finishedAt?: string;
  /** The batch, for runs started by POST /run-multi. */
  readonly batchId?: string;
  /**
   * The limits the run runs under: the server's policy narrowed by the request's. Kept beside the
   * report, never in it (the report is hashed). JSON-safe.
   */
  readonly policy?: PolicyLimits;
  /** The live run while it runs. Process-local: a durable store keeps it in memory or drops it. */
  readonly handle?: LiveRun;
  /** The report, once the run has finished. */
  readonly report?: ExecutionReport;
  /**
   * Every event of the finished run, so that its event stream can still be replayed. JSON-safe;
   * a store may drop them to save space (then only the report is served).
   */
  readonly events?: readonly OaoEvent[];
}

export interface RunFilter {
  readonly status?: RunStatus;
  /** The registered agent name. */
  readonly agent?: string;
}

/** One page: newest runs first; `offset` or `cursor` (the `nextCursor` of the previous page). */
export interface RunPageRequest {
  readonly limit: number;
  readonly offset?: number;
  readonly cursor?: string;
}

export interface RunPage {
  readonly runs: readonly RunRecord[];
  /** Runs matching the filter, over all pages. */
  readonly total: number;
  /** Pass it as `cursor` to get the next page; null on the last page. */
  readonly nextCursor: string | null;
}

type Awaitable<T> = T | Promise<T>;

/**
 * Where the server keeps the runs started over HTTP. Every method may answer synchronously or
 * with a promise, so a durable store (a later issue) fits the same interface.
 *
 * The server calls `put` when a run starts (status `running`) and again when it finishes (with
 * its report and events); `put` of an id the store already has replaces that record in place.
 * A store is bounded: it may evict finished runs to make room, never running ones, and it rejects
 * `put` of a new run with `OAO_ERR_TOO_MANY_RUNS` when it cannot make room.
 */
export interface RunStore {
  put(record: RunRecord): Awaitable<void>;
  get(executionId: string): Awaitable<RunRecord | undefined>;
  /** Newest first. An invalid cursor is `OAO_ERR_INVALID_ARGUMENT` with `details.field: 'cursor'`. */
  list(filter: RunFilter, page: RunPageRequest): Awaitable<RunPage>;
  /** Forgets a run; true if it was there. */
  delete(executionId: string): Awaitable<boolean>;
}
