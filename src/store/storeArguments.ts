import { OaoError } from '../errors.js';
import { invalidOption, typeOf } from '../options.js';
import type { OaoEvent } from '../events/schema.js';
import type { Lease, RunListFilter, RunStoreOptions, StoredRunStatus } from './RunStore.js';

/**
 * Argument checks every store shares, so that the three answer bad input with the same
 * `OAO_ERR_INVALID_ARGUMENT` (naming the argument in `details.field`) before touching any data.
 */

/** Store options after checking; absent limits stay undefined (unlimited). */
export interface CheckedStoreOptions {
  readonly maxRuns: number | undefined;
  readonly maxAgeMs: number | undefined;
  readonly now: () => number;
}

/** Checks the options every store takes. `maxRuns: 0` keeps no finished run. */
export function storeOptions(options: RunStoreOptions | undefined): CheckedStoreOptions {
  if (options === undefined) return { maxRuns: undefined, maxAgeMs: undefined, now: Date.now };
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected the store options to be an object, got ${typeOf(options)}`);
  }
  const { maxRuns, maxAgeMs, now } = options;
  if (now !== undefined && typeof now !== 'function') {
    throw invalidOption('now', `Expected now to be a function returning milliseconds since the epoch, got ${typeOf(now)}`);
  }
  return {
    maxRuns: maxRuns === undefined ? undefined : nonNegativeInteger(maxRuns, 'maxRuns'),
    maxAgeMs: maxAgeMs === undefined ? undefined : nonNegativeInteger(maxAgeMs, 'maxAgeMs'),
    now: now ?? Date.now,
  };
}

/** Checks the arguments of `append`; returns the lease to check, if any. */
export function appendArguments(executionId: unknown, events: unknown, options: unknown): Lease | undefined {
  runId(executionId);
  if (!Array.isArray(events)) {
    throw invalidOption('events', `Expected events to be an array of events, got ${typeOf(events)}`);
  }
  for (const event of events as unknown[]) {
    const seq = typeof event === 'object' && event !== null ? (event as Partial<OaoEvent>).seq : undefined;
    if (!Number.isSafeInteger(seq) || (seq as number) < 0) {
      throw invalidOption('events', `Expected every event to have an integer seq from 0 up, got ${typeOf(event)} with seq ${String(seq)}`);
    }
  }
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected the append options to be an object, got ${typeOf(options)}`);
  }
  const { lease } = options as { lease?: unknown };
  return lease === undefined ? undefined : checkLease(lease);
}

/** A run id: a non-empty string. */
export function runId(executionId: unknown): string {
  if (typeof executionId !== 'string' || executionId === '') {
    throw invalidOption('executionId', `Expected executionId to be a non-empty string, got ${typeOf(executionId)}`);
  }
  return executionId;
}

/** `fromSeq` of `events()`: an integer from 0 up. @default 0 */
export function fromSeqOption(options: { readonly fromSeq?: number } | undefined): number {
  const fromSeq = options?.fromSeq;
  if (fromSeq === undefined) return 0;
  return nonNegativeInteger(fromSeq, 'fromSeq');
}

/** A lease as `renewLease`, `releaseLease` and `append` receive it. */
export function checkLease(lease: unknown): Lease {
  const value = (typeof lease === 'object' && lease !== null ? lease : {}) as Partial<Lease>;
  if (
    typeof value.executionId !== 'string' ||
    typeof value.owner !== 'string' ||
    typeof value.token !== 'number' ||
    !Number.isSafeInteger(value.token)
  ) {
    throw invalidOption('lease', `Expected a lease returned by acquireLease(), got ${typeOf(lease)}`);
  }
  return value as Lease;
}

/** The `owner` of `acquireLease`: a non-empty string. */
export function leaseOwner(owner: unknown): string {
  if (typeof owner !== 'string' || owner === '') {
    throw invalidOption('owner', `Expected owner to be a non-empty string, got ${typeOf(owner)}`);
  }
  return owner;
}

/** The `ttlMs` of `acquireLease` and `renewLease`: an integer from 1 up. */
export function leaseTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs < 1) {
    throw invalidOption('ttlMs', `Expected ttlMs to be an integer from 1 and up, got ${typeof ttlMs === 'number' ? ttlMs : typeOf(ttlMs)}`);
  }
  return ttlMs;
}

/** The error of an append whose lease is not the run's current one. */
export function leaseLost(executionId: string, lease: Lease): OaoError {
  return new OaoError(
    'OAO_ERR_LEASE_LOST',
    `Cannot append to run "${executionId}": the lease of "${lease.owner}" (token ${lease.token}) is no longer the run's current one`,
    { details: { executionId, owner: lease.owner, token: lease.token } },
  );
}

const statuses: ReadonlySet<string> = new Set<StoredRunStatus>(['running', 'interrupted', 'SUCCESS', 'FAILED']);

/** Checks a `list` filter. */
export function listFilter(filter: unknown): RunListFilter {
  if (filter === undefined) return {};
  if (typeof filter !== 'object' || filter === null) {
    throw invalidOption('filter', `Expected the list filter to be an object, got ${typeOf(filter)}`);
  }
  const { agentName, status, since, until } = filter as Record<string, unknown>;
  if (agentName !== undefined && typeof agentName !== 'string') {
    throw invalidOption('agentName', `Expected agentName to be a string, got ${typeOf(agentName)}`);
  }
  if (status !== undefined && (typeof status !== 'string' || !statuses.has(status))) {
    throw invalidOption('status', `Expected status to be one of running, interrupted, SUCCESS, FAILED, got ${JSON.stringify(status) ?? typeOf(status)}`);
  }
  for (const [field, value] of [['since', since], ['until', until]] as const) {
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
      throw invalidOption(field, `Expected ${field} to be a time in milliseconds since the epoch, got ${typeOf(value)}`);
    }
  }
  return { agentName, status, since, until } as RunListFilter;
}

/** Checks the arguments of `charge` and returns its amounts as entries. */
export function chargeArguments(scope: unknown, window: unknown, amounts: unknown): Array<[string, number]> {
  counterKey(scope, window);
  if (typeof amounts !== 'object' || amounts === null || Array.isArray(amounts)) {
    throw invalidOption('amounts', `Expected amounts to be an object of counter names to integers, got ${typeOf(amounts)}`);
  }
  const entries = Object.entries(amounts as Record<string, unknown>);
  for (const [name, amount] of entries) {
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
      throw invalidOption('amounts', `Expected the amount of "${name}" to be a safe integer, got ${typeof amount === 'number' ? amount : typeOf(amount)}`);
    }
  }
  return entries as Array<[string, number]>;
}

/** Checks the scope and window of a counter. */
export function counterKey(scope: unknown, window: unknown): void {
  if (typeof scope !== 'string') throw invalidOption('scope', `Expected scope to be a string, got ${typeOf(scope)}`);
  if (typeof window !== 'string') throw invalidOption('window', `Expected window to be a string, got ${typeOf(window)}`);
}

/**
 * A counter total after a charge; `OAO_ERR_INVALID_ARGUMENT` when it would leave the safe
 * integers (then the store must keep nothing of the charge).
 */
export function checkedTotal(scope: string, window: string, name: string, total: number): number {
  if (!Number.isSafeInteger(total)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The charge would take counter "${name}" of "${scope}" (${window}) past the safe integers`, {
      details: { field: 'amounts', scope, window, counter: name },
    });
  }
  return total;
}

/** The error of any call to a closed store. */
export function storeClosed(): OaoError {
  return new OaoError('OAO_ERR_STORE', 'The run store is closed', { retryable: false });
}

function nonNegativeInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidOption(field, `Expected ${field} to be an integer from 0 and up, got ${typeof value === 'number' ? value : typeOf(value)}`);
  }
  return value;
}
