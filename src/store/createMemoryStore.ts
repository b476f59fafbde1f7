import type { OaoEvent } from '../events/schema.js';
import type { StoredWorkflowEvent } from '../events/workflowSchema.js';
import type { ExecutionReport } from '../report/schema.js';
import { leaseChange, leaseHeld } from './leaseChange.js';
import { decodeCursor, encodeCursor, encodeEvent, indexUpdate, newEvents, pageLimit, runStatus } from './logRows.js';
import type {
  AppendOptions,
  Lease,
  RunListFilter,
  RunPage,
  RunPageRequest,
  RunStoreOptions,
  StoredRun,
  SynchronousRunStore,
} from './RunStore.js';
import {
  appendArguments,
  chargeArguments,
  checkLease,
  checkedTotal,
  counterKey,
  fromSeqOption,
  leaseLost,
  leaseOwner,
  leaseTtl,
  listFilter,
  runId,
  storeClosed,
  storeOptions,
} from './storeArguments.js';
import { encodeWorkflowEvent, newWorkflowEvents, workflowAppendArguments, workflowRunIdArgument } from './workflowLogRows.js';

/**
 * The memory store: a `RunStore` whose every method answers synchronously, so callers that hold
 * it by this type (a synchronous run, a test) need not await.
 */
export type MemoryRunStore = SynchronousRunStore;

/**
 * A run store in this process's memory: runs, leases and counters live as long as the store
 * (nothing survives a restart). It is the default store of an `Orchestrator`, and cheap enough
 * for it: an append keeps the event objects it is given (frozen, not copied or re-encoded) and
 * costs a few hundred nanoseconds per event; lists read a sorted index, not every run.
 *
 * Memory stays bounded with `maxRuns`: besides `prune()`, the store applies it whenever a run
 * finishes, deleting the finished runs that finished first. Runs without a report are never
 * deleted. `maxAgeMs` is applied by `prune()` only.
 *
 * The events and reports it hands out are the stored objects: treat them as read-only.
 *
 * @example
 * ```ts
 * import { Orchestrator, createMemoryStore } from 'open-agent-orchestrator';
 *
 * const store = createMemoryStore({ maxRuns: 100 });
 * const orchestrator = new Orchestrator({ store });
 * const report = await orchestrator.run({ agent: { name: 'echo', invoke: (task: string) => ({ output: task }) }, task: 'hi' });
 *
 * store.get(report.executionId); // { agentName: 'echo', status: 'SUCCESS', eventCount: 13, ... }
 * store.list({ agentName: 'echo' }, { limit: 10 }).runs; // newest first
 * store.events(report.executionId); // EXECUTION_START ... EXECUTION_COMPLETE
 * ```
 */
export function createMemoryStore(options?: RunStoreOptions): MemoryRunStore {
  return new MemoryStore(options);
}

interface RunEntry {
  readonly executionId: string;
  readonly agentName: string;
  /** Whole milliseconds, as lists sort and cursors point. */
  readonly startedAtMs: number;
  /** ISO 8601 of `startedAtMs`, formatted the first time a list or a lookup shows the run. */
  startedAt: string | undefined;
  events: OaoEvent[];
  /** Canonical text of stored events, computed only when a retried append needs to compare. */
  texts: string[] | undefined;
  report: ExecutionReport | undefined;
  /** NaN until the run has its report. */
  finishedAtMs: number;
  /** Deleted by retention, but still in `#byStart` until the next compaction (lists skip it). */
  deleted: boolean;
}

interface LeaseEntry {
  /** Undefined once released: the token stays, nobody holds it. */
  owner: string | undefined;
  token: number;
  expiresAt: number;
}

class MemoryStore implements MemoryRunStore {
  readonly synchronous = true;
  readonly #maxRuns: number | undefined;
  readonly #maxAgeMs: number | undefined;
  readonly #now: () => number;
  readonly #runs = new Map<string, RunEntry>();
  /**
   * Every run, ascending by (start, id): lists walk it from the end. Retention marks a deleted
   * run instead of splicing it out (runs that start in the same millisecond are ordered by their
   * random ids, so the run to delete is seldom the first); marked runs are dropped in bulk.
   */
  #byStart: RunEntry[] = [];
  /** How many runs in `#byStart` are marked deleted. */
  #deletedInStart = 0;
  /** Finished runs, ascending by (finish, id): retention deletes from the front. */
  readonly #byFinish: RunEntry[] = [];
  readonly #leases = new Map<string, LeaseEntry>();
  /** Keyed by JSON of [scope, window], so no two pairs share a key. */
  readonly #counters = new Map<string, Map<string, number>>();
  /** Workflow logs by workflow run id, in their own keyspace. */
  readonly #workflows = new Map<string, StoredWorkflowEvent[]>();
  /** Finished workflow logs, oldest first: `maxRuns` bounds them as it bounds finished runs. */
  readonly #finishedWorkflows: string[] = [];
  #closed = false;

  constructor(options: RunStoreOptions | undefined) {
    const checked = storeOptions(options);
    this.#maxRuns = checked.maxRuns;
    this.#maxAgeMs = checked.maxAgeMs;
    this.#now = checked.now;
  }

  append(executionId: string, events: readonly OaoEvent[], options?: AppendOptions): void {
    this.#open();
    const lease = appendArguments(executionId, events, options);
    const { acquire, release } = leaseChange(options, lease);
    if (lease !== undefined && !this.#holds(executionId, lease)) throw leaseLost(executionId, lease);
    const now = acquire === undefined ? 0 : this.#now();
    if (acquire !== undefined && !this.#available(executionId, acquire.owner, now)) throw leaseHeld(executionId, acquire.owner);
    const entry = this.#runs.get(executionId);
    const fresh = newEvents(executionId, events, entry?.events.length ?? 0, (seq) => (entry === undefined ? undefined : textOf(entry, seq)));
    // Nothing below can fail: the batch is stored whole, and the lease changes with it.
    const taken = acquire === undefined ? undefined : this.#take(executionId, acquire.owner, acquire.ttlMs, now);
    if (fresh.length > 0) this.#store(executionId, entry, fresh);
    if (release) this.#release(taken ?? (lease as Lease));
    if (taken !== undefined) acquire?.onAcquired?.(taken);
  }

  /** Stores checked new events of a run (creating its entry with the first ones); cannot fail. */
  #store(executionId: string, existing: RunEntry | undefined, fresh: readonly OaoEvent[]): void {
    let entry = existing;
    const update = indexUpdate(fresh);
    if (entry === undefined) {
      // newEvents guarantees a new run's batch starts with its EXECUTION_START.
      const startedAtMs = update.startedAt ?? 0;
      entry = {
        executionId,
        agentName: update.agentName ?? '',
        startedAtMs,
        startedAt: undefined,
        events: [],
        texts: undefined,
        report: undefined,
        finishedAtMs: Number.NaN,
        deleted: false,
      };
      this.#runs.set(executionId, entry);
      insertSorted(this.#byStart, entry, byStart);
    }
    for (const event of fresh) Object.freeze(event);
    // A short log is copied into an array of its exact length (a live run's log is a few events,
    // and an array grown by push keeps room for a dozen more); a long one grows in place.
    if (entry.events.length + fresh.length <= EXACT_LOG_LENGTH) entry.events = entry.events.concat(fresh);
    else for (const event of fresh) entry.events.push(event);
    if (update.report !== undefined && entry.report === undefined) {
      entry.report = update.report;
      entry.finishedAtMs = Date.parse(update.report.finishedAt);
      insertSorted(this.#byFinish, entry, byFinish);
      if (this.#maxRuns !== undefined) this.#deleteOldestBeyond(this.#maxRuns);
    }
  }

  appendWorkflow(workflowRunId: string, events: readonly StoredWorkflowEvent[]): void {
    this.#open();
    workflowAppendArguments(workflowRunId, events);
    const log = this.#workflows.get(workflowRunId);
    const fresh = newWorkflowEvents(workflowRunId, events, log?.length ?? 0, (seq) => {
      const stored = log?.[seq];
      return stored === undefined ? undefined : encodeWorkflowEvent(stored);
    });
    if (fresh.length === 0) return;
    const entry = log ?? [];
    if (log === undefined) this.#workflows.set(workflowRunId, entry);
    for (const event of fresh) entry.push(Object.freeze(event));
    if (fresh.some((event) => event.type === 'WORKFLOW_COMPLETE')) {
      this.#finishedWorkflows.push(workflowRunId);
      if (this.#maxRuns !== undefined) {
        while (this.#finishedWorkflows.length > this.#maxRuns) this.#workflows.delete(this.#finishedWorkflows.shift() as string);
      }
    }
  }

  workflowEvents(workflowRunId: string, options?: { readonly fromSeq?: number }): readonly StoredWorkflowEvent[] {
    this.#open();
    workflowRunIdArgument(workflowRunId);
    const fromSeq = fromSeqOption(options);
    return this.#workflows.get(workflowRunId)?.slice(fromSeq) ?? [];
  }

  events(executionId: string, options?: { readonly fromSeq?: number }): readonly OaoEvent[] {
    this.#open();
    const fromSeq = fromSeqOption(options);
    return this.#runs.get(executionId)?.events.slice(fromSeq) ?? [];
  }

  report(executionId: string): ExecutionReport | undefined {
    this.#open();
    return this.#runs.get(executionId)?.report;
  }

  get(executionId: string): StoredRun | undefined {
    this.#open();
    const entry = this.#runs.get(executionId);
    return entry === undefined ? undefined : this.#view(entry, this.#now());
  }

  list(filter?: RunListFilter, page?: RunPageRequest): RunPage {
    this.#open();
    const { agentName, status, since, until } = listFilter(filter);
    const limit = pageLimit(page?.limit);
    const runs = this.#byStart;
    // Start below the cursor and below `until`; stop under `since`.
    let index = runs.length;
    if (page?.cursor !== undefined) {
      const after = decodeCursor(page.cursor);
      index = lowerBound(runs, (entry) => compareKey(entry, after.startedAt, after.executionId) >= 0);
    }
    if (until !== undefined) index = Math.min(index, lowerBound(runs, (entry) => entry.startedAtMs >= until));
    const now = this.#now();
    const found: StoredRun[] = [];
    for (let i = index - 1; i >= 0 && found.length <= limit; i -= 1) {
      const entry = runs[i]!;
      if (since !== undefined && entry.startedAtMs < since) break;
      if (entry.deleted) continue;
      if (agentName !== undefined && entry.agentName !== agentName) continue;
      const run = this.#view(entry, now);
      if (status !== undefined && run.status !== status) continue;
      found.push(run);
    }
    if (found.length <= limit) return { runs: found, nextCursor: null };
    found.length = limit;
    return { runs: found, nextCursor: encodeCursor(found[limit - 1]!) };
  }

  prune(): number {
    this.#open();
    let deleted = 0;
    if (this.#maxAgeMs !== undefined) {
      const oldestKept = this.#now() - this.#maxAgeMs;
      while (this.#byFinish.length > 0 && this.#byFinish[0]!.finishedAtMs < oldestKept) {
        this.#delete(this.#byFinish.shift()!);
        deleted += 1;
      }
    }
    if (this.#maxRuns !== undefined) deleted += this.#deleteOldestBeyond(this.#maxRuns);
    return deleted;
  }

  acquireLease(executionId: string, owner: string, ttlMs: number): Lease | undefined {
    this.#open();
    runId(executionId);
    leaseOwner(owner);
    leaseTtl(ttlMs);
    const now = this.#now();
    return this.#available(executionId, owner, now) ? this.#take(executionId, owner, ttlMs, now) : undefined;
  }

  renewLease(lease: Lease, ttlMs: number): boolean {
    this.#open();
    checkLease(lease);
    leaseTtl(ttlMs);
    if (!this.#holds(lease.executionId, lease)) return false;
    this.#leases.get(lease.executionId)!.expiresAt = this.#now() + ttlMs;
    return true;
  }

  releaseLease(lease: Lease): void {
    this.#open();
    checkLease(lease);
    this.#release(lease);
  }

  /** Whether `owner` may take the run's lease at `now`: nobody holds a live one, or `owner` does. */
  #available(executionId: string, owner: string, now: number): boolean {
    const current = this.#leases.get(executionId);
    return current === undefined || current.owner === undefined || current.owner === owner || current.expiresAt <= now;
  }

  /** Takes the lease for `owner` (who may take it): a new holder gets the next token. */
  #take(executionId: string, owner: string, ttlMs: number, now: number): Lease {
    const current = this.#leases.get(executionId);
    if (current === undefined) {
      const lease = { owner, token: 1, expiresAt: now + ttlMs };
      this.#leases.set(executionId, lease);
      return { executionId, ...lease };
    }
    if (current.owner !== owner) {
      current.owner = owner;
      current.token += 1;
    }
    current.expiresAt = now + ttlMs;
    return { executionId, owner, token: current.token, expiresAt: current.expiresAt };
  }

  /** Gives `lease` up if it is still the run's current one. */
  #release(lease: Lease): void {
    if (!this.#holds(lease.executionId, lease)) return;
    const current = this.#leases.get(lease.executionId)!;
    current.owner = undefined;
    // An unfinished run nobody holds is interrupted from now on.
    current.expiresAt = Math.min(current.expiresAt, this.#now());
  }

  charge(scope: string, window: string, amounts: Readonly<Record<string, number>>): Readonly<Record<string, number>> {
    this.#open();
    const entries = chargeArguments(scope, window, amounts);
    const key = JSON.stringify([scope, window]);
    const counters = this.#counters.get(key) ?? new Map<string, number>();
    // Every total is checked before any is written: a refused charge changes nothing.
    const totals = entries.map(([name, amount]) => [name, checkedTotal(scope, window, name, (counters.get(name) ?? 0) + amount)] as const);
    for (const [name, total] of totals) counters.set(name, total);
    if (counters.size > 0) this.#counters.set(key, counters);
    return Object.fromEntries(counters);
  }

  counters(scope: string, window: string): Readonly<Record<string, number>> {
    this.#open();
    counterKey(scope, window);
    const counters = this.#counters.get(JSON.stringify([scope, window]));
    return counters === undefined ? {} : Object.fromEntries(counters);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#runs.clear();
    this.#byStart.length = 0;
    this.#deletedInStart = 0;
    this.#byFinish.length = 0;
    this.#leases.clear();
    this.#counters.clear();
    this.#workflows.clear();
    this.#finishedWorkflows.length = 0;
  }

  #open(): void {
    if (this.#closed) throw storeClosed();
  }

  /** Whether `lease` is the run's current one: same holder, same token (not released). */
  #holds(executionId: string, lease: Lease): boolean {
    const current = this.#leases.get(executionId);
    return (
      lease.executionId === executionId &&
      current !== undefined &&
      current.owner !== undefined &&
      current.owner === lease.owner &&
      current.token === lease.token
    );
  }

  #view(entry: RunEntry, now: number): StoredRun {
    const run = {
      executionId: entry.executionId,
      agentName: entry.agentName,
      status: runStatus(entry.report, this.#leases.get(entry.executionId)?.expiresAt, now),
      startedAt: (entry.startedAt ??= new Date(entry.startedAtMs).toISOString()),
      eventCount: entry.events.length,
    };
    return entry.report === undefined ? run : { ...run, finishedAt: entry.report.finishedAt };
  }

  #deleteOldestBeyond(maxRuns: number): number {
    let deleted = 0;
    while (this.#byFinish.length > maxRuns) {
      this.#delete(this.#byFinish.shift()!);
      deleted += 1;
    }
    return deleted;
  }

  /** Deletes a finished run (already taken off `#byFinish`) from the index and the leases. */
  #delete(entry: RunEntry): void {
    this.#runs.delete(entry.executionId);
    this.#leases.delete(entry.executionId);
    entry.deleted = true;
    this.#deletedInStart += 1;
    const byStart = this.#byStart;
    while (byStart.length > 0 && byStart[0]!.deleted) {
      byStart.shift();
      this.#deletedInStart -= 1;
    }
    // Dropped in bulk once they are a quarter of the index: each run is copied O(1) times on average.
    if (this.#deletedInStart > 32 && this.#deletedInStart * 4 > byStart.length) {
      this.#byStart = byStart.filter((kept) => !kept.deleted);
      this.#deletedInStart = 0;
    }
  }
}

/** Logs up to this many events are kept in arrays of their exact length. */
const EXACT_LOG_LENGTH = 64;

function textOf(entry: RunEntry, seq: number): string | undefined {
  const event = entry.events[seq];
  if (event === undefined) return undefined;
  entry.texts ??= [];
  return (entry.texts[seq] ??= encodeEvent(event));
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareKey(entry: RunEntry, startedAtMs: number, executionId: string): number {
  return entry.startedAtMs - startedAtMs || compareIds(entry.executionId, executionId);
}

function byStart(a: RunEntry, b: RunEntry): number {
  return compareKey(a, b.startedAtMs, b.executionId);
}

function byFinish(a: RunEntry, b: RunEntry): number {
  return a.finishedAtMs - b.finishedAtMs || compareIds(a.executionId, b.executionId);
}

/** Inserts in order; runs mostly arrive in order, so the end is tried first. */
function insertSorted(list: RunEntry[], entry: RunEntry, compare: (a: RunEntry, b: RunEntry) => number): void {
  const last = list.at(-1);
  if (last === undefined || compare(last, entry) <= 0) list.push(entry);
  else list.splice(lowerBound(list, (other) => compare(other, entry) > 0), 0, entry);
}

/** The first index whose entry satisfies `atOrAfter` (which is false, then true, along the list). */
function lowerBound(list: readonly RunEntry[], atOrAfter: (entry: RunEntry) => boolean): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (atOrAfter(list[middle]!)) high = middle;
    else low = middle + 1;
  }
  return low;
}
