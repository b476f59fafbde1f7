import { OaoError } from '../errors.js';
import type { EventCounters } from '../events/schema.js';
import { foldRun } from '../log/foldRun.js';
import type { PolicyLimits } from '../policy/schema.js';
import type { ExecutionReport, LifecycleState, Termination } from '../report/schema.js';
import type { RunListFilter, RunStore, StoredRun, StoredRunStatus } from '../store/RunStore.js';

/**
 * One row of `oao runs`: the fields of the server's run summary, so `--store` and `--server`
 * print the same thing. A store has no batches, so `batchId` is null.
 */
export interface RunListing {
  readonly executionId: string;
  readonly agent: string;
  readonly status: StoredRunStatus;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly batchId: string | null;
  readonly termination: Termination | null;
}

/** One run as `oao runs show` prints it: the server's run shape, read from the log. */
export interface RunView extends RunListing {
  readonly state: LifecycleState | null;
  readonly counters: EventCounters;
  /** How many events the log holds. */
  readonly events: number;
  readonly report: ExecutionReport | null;
  readonly effectivePolicy: PolicyLimits | null;
}

export interface RunListPage {
  readonly runs: readonly RunListing[];
  /** Set when more runs match than were listed. */
  readonly nextCursor: string | null;
}

async function listing(store: RunStore, run: StoredRun): Promise<RunListing> {
  const finished = run.status === 'SUCCESS' || run.status === 'FAILED';
  const report = finished ? await store.report(run.executionId) : undefined;
  return {
    executionId: run.executionId,
    agent: run.agentName,
    status: run.status,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt ?? null,
    batchId: null,
    termination: report?.termination ?? null,
  };
}

/** The newest `limit` runs of a store that match `filter`, with how each one ended. */
export async function listStoredRuns(store: RunStore, filter: RunListFilter, limit: number): Promise<RunListPage> {
  const page = await store.list(filter, { limit });
  const runs = await Promise.all(page.runs.map((run) => listing(store, run)));
  return { runs, nextCursor: page.nextCursor };
}

/**
 * A stored run, or undefined for an id the store does not know. Counters and the state come from
 * folding its log, so a run cut short (its process died) shows where it stood.
 */
export async function storedRunView(store: RunStore, executionId: string): Promise<RunView | undefined> {
  const run = await store.get(executionId);
  if (run === undefined) return undefined;
  const events = await store.events(executionId);
  let fold;
  try {
    fold = foldRun(events);
  } catch (error) {
    const seq = events.findIndex((event, index) => event.seq !== index);
    throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of run "${executionId}" does not fold: ${(error as Error).message}`, {
      details: { executionId, seq: seq === -1 ? events.length - 1 : seq },
      cause: error,
    });
  }
  const report = fold?.report ?? (await store.report(executionId)) ?? null;
  return {
    ...(await listing(store, run)),
    termination: report?.termination ?? null,
    state: fold?.state ?? null,
    counters: { steps: fold?.steps ?? 0, tokens: fold?.tokens.total ?? 0, toolCalls: fold?.toolCalls ?? 0 },
    events: events.length,
    report,
    effectivePolicy: fold?.policy ?? null,
  };
}
