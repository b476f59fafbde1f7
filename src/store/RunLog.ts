import { OaoError, serializeError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import type { AppendOptions, RunStore } from './RunStore.js';

/**
 * Writes one run's events to a store. Events are batched per macrostep (everything emitted before
 * the next microtask goes in one append), except that `writeAhead()` flushes at once: the event
 * that authorizes a side effect (a tool call, a model call) is durable before the effect starts.
 * Appends are strictly ordered; the first failure disables the log and is reported once through
 * `onFailure`, so the run can stop before doing anything more.
 */
export class RunLog {
  readonly #store: RunStore;
  readonly #executionId: string;
  readonly #onFailure: (error: OaoError) => void;
  readonly #options: AppendOptions | undefined;
  #buffer: OaoEvent[] = [];
  #scheduled = false;
  /** The chain of pending asynchronous appends; undefined while none is pending. */
  #tail: Promise<void> | undefined;
  #failed: OaoError | undefined;

  constructor(store: RunStore, executionId: string, onFailure: (error: OaoError) => void, options?: AppendOptions) {
    this.#store = store;
    this.#executionId = executionId;
    this.#onFailure = onFailure;
    this.#options = options;
  }

  /** The failure that disabled the log, if any. */
  get failed(): OaoError | undefined {
    return this.#failed;
  }

  add(event: OaoEvent): void {
    if (this.#failed !== undefined) return;
    this.#buffer.push(event);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        // A failure is reported through onFailure; nobody awaits this flush.
        try {
          const pending = this.flush();
          if (pending !== undefined) pending.catch(() => {});
        } catch {
          // reported
        }
      });
    }
  }

  /**
   * Makes every buffered event durable. Synchronous with a synchronous store (a failure is thrown
   * as the typed error after being reported); otherwise a promise that settles when they are
   * (and rejects with the typed error). Resolves at once when nothing is buffered or pending.
   */
  flush(): void | Promise<void> {
    if (this.#failed !== undefined) return this.#tail === undefined ? this.#throw() : this.#tail;
    const batch = this.#buffer;
    if (batch.length === 0) return this.#tail;
    this.#buffer = [];
    if (this.#tail !== undefined) {
      // Keep order: this batch goes after the pending ones.
      const tail = this.#tail.then(() => this.#append(batch));
      return this.#track(tail);
    }
    const result = this.#append(batch);
    if (result === undefined) return undefined;
    return this.#track(result);
  }

  /** A flush before a side effect: the effect may start only once this has succeeded. */
  writeAhead(): void | Promise<void> {
    return this.flush();
  }

  /** Settles when every event added so far is durable (or the log has failed). Never rejects. */
  async settled(): Promise<void> {
    try {
      await this.flush();
    } catch {
      // reported through onFailure
    }
  }

  #track(promise: Promise<void>): Promise<void> {
    const tail = promise.then(
      () => {
        if (this.#tail === tail) this.#tail = undefined;
      },
      (error: unknown) => {
        if (this.#tail === tail) this.#tail = undefined;
        throw error;
      },
    );
    this.#tail = tail;
    tail.catch(() => {});
    return tail;
  }

  #append(batch: OaoEvent[]): void | Promise<void> {
    if (this.#failed !== undefined) return this.#throw();
    let result: void | Promise<void>;
    try {
      result = this.#store.append(this.#executionId, batch, this.#options);
    } catch (error) {
      return this.#fail(error);
    }
    if (result === undefined || typeof (result).then !== 'function') return undefined;
    return Promise.resolve(result).then(undefined, (error: unknown) => this.#fail(error));
  }

  #fail(error: unknown): never {
    // The store's own availability and ownership codes say more than a generic one; anything else
    // (a conflict, a driver error) is OAO_ERR_STORE with the original kept as the cause.
    const typed =
      OaoError.isInstance(error) && (error.code === 'OAO_ERR_STORE' || error.code === 'OAO_ERR_STORE_UNAVAILABLE' || error.code === 'OAO_ERR_LEASE_LOST')
        ? error
        : new OaoError('OAO_ERR_STORE', `The run store failed to append: ${serializeError(error).message}`, {
            cause: error,
            details: OaoError.isInstance(error) ? { cause: error.code } : undefined,
          });
    if (this.#failed === undefined) {
      this.#failed = typed;
      this.#buffer = [];
      this.#onFailure(typed);
    }
    throw typed;
  }

  #throw(): never {
    throw this.#failed as OaoError;
  }
}
