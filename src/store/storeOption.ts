import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { OaoError } from '../errors.js';
import { positiveIntegerOption, typeOf } from '../options.js';
import type { RunOwnership } from './RunLog.js';
import type { RunStore } from './RunStore.js';

/** Checks the `store` option of an orchestrator or supervisor. */
export function checkStore(store: unknown): RunStore | undefined {
  if (store === undefined) return undefined;
  const methods = typeof store === 'object' && store !== null ? (store as Record<string, unknown>) : {};
  if (typeof methods.append !== 'function' || typeof methods.events !== 'function' || typeof methods.acquireLease !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "store" to be a RunStore (createMemoryStore(), createSqliteStore(), createPostgresStore()), got ${typeOf(store)}`, {
      details: { field: 'store' },
    });
  }
  return store as RunStore;
}

/** A default owner name: this host and process, plus a random part so two instances differ. */
export function defaultOwner(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/**
 * Who leases the runs recorded in a store: `owner` (default: host, pid and a random part) for
 * `leaseTtlMs` (default 10 s) at a time. Nothing without a store.
 */
export function resolveOwnership(store: RunStore | undefined, owner: unknown, leaseTtlMs: unknown): RunOwnership | undefined {
  if (owner !== undefined && (typeof owner !== 'string' || owner.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "owner" to be a non-empty string, got ${typeOf(owner)}`, { details: { field: 'owner' } });
  }
  const ttlMs = positiveIntegerOption(leaseTtlMs ?? 10_000, 'leaseTtlMs');
  if (store === undefined) return undefined;
  return { owner: owner ?? defaultOwner(), ttlMs };
}
