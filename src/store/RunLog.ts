import { OaoError, serializeError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import type { Lease, RunStore } from './RunStore.js';

/** Who holds a run while it is live, and for how long a lease lasts without renewal. */
export interface RunOwnership {
  readonly owner: string;
  readonly ttlMs: number;
}

/**
 * Writes one run's events to a store. Events are batched per macrostep (everything emitted before
 * the next microtask goes in one append), except that `writeAhead()` flushes at once: the event
 * that authorizes a side effect (a tool call, a model call) is durable before the effect starts.
 * Appends are strictly ordered; the first failure disables the log and is reported once through
 * `onFailure`, so the run can stop before doing anything more.
 *
 * With an `ownership`, the run is leased before its first append and every append carries the
 * lease (a stale owner's appends are refused by the store); the lease is renewed every third of
 * its time to live while the run is live and released by `end()`. A run whose process dies keeps
 * an expiring lease, so it lists as `interrupted`.
 */
export class RunLog {
  readonly #store: RunStore;
  readonly #executionId: string;
  readonly #onFailure: (error: OaoError) => void;
  readonly #ownership: RunOwnership | undefined;
  #lease: Lease | undefined;
  #renewal: ReturnType<typeof setInterval> | undefined;
  #ended = false;
  #buffer: OaoEvent[] = [];
  #scheduled = false;
  /** The chain of pending asynchronous appends; undefined while none is pending. */
  #tail: Promise<void> | undefined;
  #failed: OaoError | undefined;

  /**
   * @param options.lease a lease the caller already took (a resumed run): used from the first
   *   append, renewed and released like one taken here.
   */
  constructor(store: RunStore, executionId: string, onFailure: (error: OaoError) => void, ownership?: RunOwnership, options?: { readonly lease?: Lease }) {
    this.#store = store;
    this.#executionId = executionId;
    this.#onFailure = onFailure;
    this.#ownership = ownership;
    if (options?.lease !== undefined && ownership !== undefined) this.#takeLease(options.lease);
  }

  /** The run's lease, once taken. */
  get lease(): Lease | undefined {
    return this.#lease;
  }

  /**
   * The run is over and its last events are flushed: stop renewing and give the lease up. A
   * failure here loses nothing (the log is complete), so it is not reported.
   */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#renewal !== undefined) clearInterval(this.#renewal);
    this.#renewal = undefined;
    const lease = this.#lease;
    if (lease === undefined) return;
    try {
      const result = this.#store.releaseLease(lease);
      if (result !== undefined) Promise.resolve(result).catch(() => {});
    } catch {
      // an expiring lease does the same, a little later
    }
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
    if (this.#ownership !== undefined && this.#lease === undefined) {
      let taken: Lease | undefined | Promise<Lease | undefined>;
      try {
        taken = this.#store.acquireLease(this.#executionId, this.#ownership.owner, this.#ownership.ttlMs);
      } catch (error) {
        return this.#fail(error);
      }
      if (taken instanceof Promise) {
        return taken.then(
          (lease) => {
            this.#takeLease(lease);
            return this.#appendNow(batch);
          },
          (error: unknown) => this.#fail(error),
        );
      }
      this.#takeLease(taken);
    }
    return this.#appendNow(batch);
  }

  #takeLease(lease: Lease | undefined): void {
    if (lease === undefined) {
      this.#fail(new OaoError('OAO_ERR_LEASE_LOST', `Run "${this.#executionId}" is held by another owner`, { details: { executionId: this.#executionId } }));
    }
    this.#lease = lease;
    const ownership = this.#ownership as RunOwnership;
    if (this.#ended) return;
    this.#renewal = setInterval(() => this.#renew(ownership.ttlMs), Math.max(10, Math.floor(ownership.ttlMs / 3)));
    this.#renewal.unref?.();
  }

  #renew(ttlMs: number): void {
    const lease = this.#lease;
    if (lease === undefined || this.#failed !== undefined || this.#ended) return;
    const lost = () => {
      try {
        this.#fail(new OaoError('OAO_ERR_LEASE_LOST', `Run "${this.#executionId}" was taken over by another owner`, { details: { executionId: this.#executionId } }));
      } catch {
        // reported through onFailure
      }
    };
    const failed = (error: unknown) => {
      try {
        this.#fail(error);
      } catch {
        // reported through onFailure
      }
    };
    try {
      const renewed = this.#store.renewLease(lease, ttlMs);
      if (renewed instanceof Promise) renewed.then((ok) => ok || lost(), failed);
      else if (!renewed) lost();
    } catch (error) {
      failed(error);
    }
  }

  #appendNow(batch: OaoEvent[]): void | Promise<void> {
    if (this.#failed !== undefined) return this.#throw();
    let result: void | Promise<void>;
    try {
      result = this.#store.append(this.#executionId, batch, this.#lease === undefined ? undefined : { lease: this.#lease });
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
      if (this.#renewal !== undefined) clearInterval(this.#renewal);
      this.#renewal = undefined;
      this.#onFailure(typed);
    }
    throw typed;
  }

  #throw(): never {
    throw this.#failed as OaoError;
  }
}
