import { OaoError, serializeError } from '../errors.js';
import type { StoredWorkflowEvent } from '../events/workflowSchema.js';
import type { RunStore } from '../store/RunStore.js';

/** A store that can hold workflow logs. */
export type WorkflowLogStore = RunStore & Required<Pick<RunStore, 'appendWorkflow' | 'workflowEvents'>>;

/** Whether `store` implements the workflow log methods (the three stores of this package do). */
export function holdsWorkflowLogs(store: RunStore | undefined): store is WorkflowLogStore {
  return store !== undefined && typeof store.appendWorkflow === 'function' && typeof store.workflowEvents === 'function';
}

/**
 * Writes one workflow run's own events to a store, batched per macrostep like a run's log: every
 * event added before the next microtask goes in one append, and appends are strictly ordered. The
 * first failure disables the log and is reported once through `onFailure`.
 */
export class WorkflowLog {
  readonly #store: WorkflowLogStore;
  readonly #workflowRunId: string;
  readonly #onFailure: (error: OaoError) => void;
  #buffer: StoredWorkflowEvent[] = [];
  #scheduled = false;
  #tail: Promise<void> = Promise.resolve();
  #failed: OaoError | undefined;

  constructor(store: WorkflowLogStore, workflowRunId: string, onFailure: (error: OaoError) => void) {
    this.#store = store;
    this.#workflowRunId = workflowRunId;
    this.#onFailure = onFailure;
  }

  get failed(): OaoError | undefined {
    return this.#failed;
  }

  add(event: StoredWorkflowEvent): void {
    if (this.#failed !== undefined) return;
    this.#buffer.push(event);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  /** Settles when every event added so far is stored (or the log has failed). Never rejects. */
  async settled(): Promise<void> {
    this.#flush();
    await this.#tail;
  }

  #flush(): void {
    const batch = this.#buffer;
    if (batch.length === 0 || this.#failed !== undefined) return;
    this.#buffer = [];
    this.#tail = this.#tail.then(async () => {
      if (this.#failed !== undefined) return;
      try {
        await this.#store.appendWorkflow(this.#workflowRunId, batch);
      } catch (error) {
        this.#fail(error);
      }
    });
  }

  #fail(error: unknown): void {
    if (this.#failed !== undefined) return;
    const typed =
      OaoError.isInstance(error) && (error.code === 'OAO_ERR_STORE' || error.code === 'OAO_ERR_STORE_UNAVAILABLE')
        ? error
        : new OaoError('OAO_ERR_STORE', `The run store failed to append to workflow run "${this.#workflowRunId}": ${serializeError(error).message}`, {
            cause: error,
            details: { workflowRunId: this.#workflowRunId, ...(OaoError.isInstance(error) ? { cause: error.code } : {}) },
          });
    this.#failed = typed;
    this.#buffer = [];
    this.#onFailure(typed);
  }
}
