import { OaoError } from '../errors.js';
import { positiveIntegerOption } from '../options.js';
import type { RunFilter, RunPage, RunPageRequest, RunRecord, RunStore } from './RunStore.js';

export interface MemoryRunStoreOptions {
  /**
   * Runs kept at most. When full, the oldest finished run is evicted for a new one; when every
   * kept run is still running, a new run is refused with `OAO_ERR_TOO_MANY_RUNS`.
   * @default 1000
   */
  readonly maxRuns?: number;
}

/**
 * The default run store: in memory, bounded, evicting the oldest finished runs first.
 *
 * @example
 * ```ts
 * import { createServer, createMemoryRunStore } from 'open-agent-orchestrator/server';
 * const app = await createServer({ agents: { echo: (task: string) => task }, store: createMemoryRunStore({ maxRuns: 50 }) });
 * ```
 */
export function createMemoryRunStore(options: MemoryRunStoreOptions = {}): RunStore {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected the memory run store options to be an object');
  }
  return new MemoryRunStore(positiveIntegerOption(options.maxRuns ?? 1_000, 'maxRuns'));
}

interface Entry {
  record: RunRecord;
  /** Insertion order: cursors point into it, so pages stay stable while runs come and go. */
  readonly seq: number;
}

class MemoryRunStore implements RunStore {
  readonly #maxRuns: number;
  /** Map order is insertion order: the first finished entry is the oldest finished run. */
  readonly #entries = new Map<string, Entry>();
  #seq = 0;

  constructor(maxRuns: number) {
    this.#maxRuns = maxRuns;
  }

  put(record: RunRecord): void {
    const existing = this.#entries.get(record.executionId);
    if (existing !== undefined) {
      existing.record = record;
      return;
    }
    if (this.#entries.size >= this.#maxRuns && !this.#evictOldestFinished()) {
      throw new OaoError('OAO_ERR_TOO_MANY_RUNS', `The run store is full: all ${this.#maxRuns} runs it keeps are still running`, {
        details: { maxRuns: this.#maxRuns },
      });
    }
    this.#entries.set(record.executionId, { record, seq: ++this.#seq });
  }

  get(executionId: string): RunRecord | undefined {
    return this.#entries.get(executionId)?.record;
  }

  list(filter: RunFilter, page: RunPageRequest): RunPage {
    const matches: Entry[] = [];
    for (const entry of this.#entries.values()) {
      const { record } = entry;
      if (filter.status !== undefined && record.status !== filter.status) continue;
      if (filter.agent !== undefined && record.agent !== filter.agent) continue;
      matches.push(entry);
    }
    matches.reverse();
    let start = page.offset ?? 0;
    if (page.cursor !== undefined) {
      const after = decodeCursor(page.cursor);
      start = matches.findIndex((entry) => entry.seq < after);
      if (start === -1) start = matches.length;
    }
    const slice = matches.slice(start, start + page.limit);
    const last = slice.at(-1);
    return {
      runs: slice.map((entry) => entry.record),
      total: matches.length,
      nextCursor: last !== undefined && start + slice.length < matches.length ? encodeCursor(last.seq) : null,
    };
  }

  delete(executionId: string): boolean {
    return this.#entries.delete(executionId);
  }

  #evictOldestFinished(): boolean {
    for (const [id, entry] of this.#entries) {
      if (entry.record.status !== 'running') {
        this.#entries.delete(id);
        return true;
      }
    }
    return false;
  }
}

function encodeCursor(seq: number): string {
  return Buffer.from(`oao:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const match = /^oao:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (match === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'The cursor is not one this server issued: pass the nextCursor of a previous page', {
      details: { field: 'cursor' },
    });
  }
  return Number(match[1]);
}
