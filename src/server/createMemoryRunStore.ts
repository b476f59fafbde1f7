import { OaoError } from '../errors.js';
import { positiveIntegerOption } from '../options.js';
import { createMemoryStore, type MemoryRunStore } from '../store/createMemoryStore.js';
import type { RunStore as CoreRunStore } from '../store/RunStore.js';
import { DEFAULT_STORE_MAX_RUNS } from './serverOptions.js';

/**
 * The server's run store is the core `RunStore`, the one every `Orchestrator` records to.
 * @deprecated Import `RunStore` from `open-agent-orchestrator`. This alias is removed in the next release.
 */
export type RunStore = CoreRunStore;

/** @deprecated The options of {@link createMemoryRunStore}; use `createMemoryStore`'s (`RunStoreOptions`). */
export interface MemoryRunStoreOptions {
  /** Finished runs kept at most (the oldest are dropped first). @default 1000 */
  readonly maxRuns?: number;
}

/**
 * The memory store, as the server made it before it took the core store: `createMemoryStore`
 * with `maxRuns` (at least 1, default 1000).
 *
 * @deprecated Use `createMemoryStore({ maxRuns })` from `open-agent-orchestrator`. This alias is
 * removed in the next release.
 */
export function createMemoryRunStore(options: MemoryRunStoreOptions = {}): MemoryRunStore {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected the memory run store options to be an object', { details: { field: 'options' } });
  }
  return createMemoryStore({ maxRuns: positiveIntegerOption(options.maxRuns ?? DEFAULT_STORE_MAX_RUNS, 'maxRuns') });
}
