import { OaoError } from '../errors.js';
import { invalidOption, typeOf } from '../options.js';
import type { Lease } from './RunStore.js';
import { leaseOwner, leaseTtl } from './storeArguments.js';

/**
 * What an append does to its run's lease besides fencing (`AppendOptions.acquire` and
 * `release`), checked the same way by every store.
 */
export interface LeaseChange {
  /** Take the lease for this owner before writing; hand it to `onAcquired` once written. */
  readonly acquire: { readonly owner: string; readonly ttlMs: number; readonly onAcquired: ((lease: Lease) => void) | undefined } | undefined;
  /** Give the lease up after writing. */
  readonly release: boolean;
}

const NO_CHANGE: LeaseChange = Object.freeze({ acquire: undefined, release: false });

/**
 * Reads `acquire` and `release` of append options that `appendArguments` accepted (`lease` is
 * the lease it returned). `OAO_ERR_INVALID_ARGUMENT` for an `acquire` that is not an owner and a
 * time to live, one given with `lease`, or a `release` with nothing to release.
 */
export function leaseChange(options: unknown, lease: Lease | undefined): LeaseChange {
  if (options === undefined) return NO_CHANGE;
  const { acquire, release = false } = options as { acquire?: unknown; release?: unknown };
  if (typeof release !== 'boolean') throw invalidOption('release', `Expected release to be a boolean, got ${typeOf(release)}`);
  if (acquire === undefined) {
    if (release && lease === undefined) throw invalidOption('release', 'Expected release to come with the lease to release (lease) or to take (acquire)');
    return release ? { acquire: undefined, release } : NO_CHANGE;
  }
  if (typeof acquire !== 'object' || acquire === null) {
    throw invalidOption('acquire', `Expected acquire to be { owner, ttlMs }, got ${typeOf(acquire)}`);
  }
  if (lease !== undefined) throw invalidOption('acquire', 'Expected either acquire or lease in the append options, not both');
  const { owner, ttlMs, onAcquired } = acquire as { owner?: unknown; ttlMs?: unknown; onAcquired?: unknown };
  if (onAcquired !== undefined && typeof onAcquired !== 'function') {
    throw invalidOption('onAcquired', `Expected acquire.onAcquired to be a function, got ${typeOf(onAcquired)}`);
  }
  return { acquire: { owner: leaseOwner(owner), ttlMs: leaseTtl(ttlMs), onAcquired: onAcquired as ((lease: Lease) => void) | undefined }, release };
}

/** The error of an append that could not take the lease: another owner holds a live one. */
export function leaseHeld(executionId: string, owner: string): OaoError {
  return new OaoError('OAO_ERR_LEASE_LOST', `Cannot append to run "${executionId}" for "${owner}": another owner holds its lease`, {
    details: { executionId, owner },
  });
}
