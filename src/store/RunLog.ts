import { OaoError, serializeError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import type { AppendOptions, Lease, RunStore } from './RunStore.js';

/** Who holds a run while it is live, and for how long a lease lasts without renewal. */
export interface RunOwnership {
  readonly owner: string;
  readonly ttlMs: number;
}

/** Options of a {@link RunLog}. */
export interface RunLogOptions {
  /**
   * A lease the caller took already (a resumed run is leased before its session starts): the log
   * appends with it from the first append (it takes none), renews it every third of
   * `ownership.ttlMs` (10 s without an ownership) and releases it as one it took itself.
   */
  readonly lease?: Lease;
}

/**
 * A flush that nothing forces (no write-ahead, no end of run) waits until the run has emitted
 * nothing for this many microtasks: a run whose step answered without I/O (a cached or rule-based
 * agent) goes on within microtasks, and its next events then ride in the same append instead of
 * costing a write (on PostgreSQL, a commit and its flush to disk) of their own.
 */
const QUIET_MICROTASKS = 8;
/** However busy the run keeps its microtasks, its events are written within this many of the first. */
const MAX_MICROTASKS = 64;

/** Renewal period base of a given lease when the log has no ownership to take it from. */
const DEFAULT_LEASE_TTL_MS = 10_000;

/** The leases renewed together, every `period` ms, by one timer. */
interface RenewalRound {
  readonly period: number;
  readonly timer: ReturnType<typeof setInterval>;
  readonly logs: Set<RunLog>;
  /** The timer functions of the round's timer. */
  readonly setInterval: typeof setInterval;
  readonly clearInterval: typeof clearInterval;
}

/** A lease is renewed every third of its time to live (at least every 10 ms). */
function renewalPeriod(ttlMs: number): number {
  return Math.max(10, Math.floor(ttlMs / 3));
}

/**
 * Writes one run's events to a store. Events are batched until the run waits (everything emitted
 * until it has gone a few microtasks without emitting goes in one append), except that
 * `writeAhead()` flushes at once: the event that authorizes a side effect (a tool call, a model
 * call) is durable before the effect starts, and the end of a run flushes what is left.
 * With an asynchronous store, at most one append is in flight: what the run emits meanwhile is
 * written by one append when it returns (a write-ahead waits for that one).
 * Appends are strictly ordered; the first failure disables the log and is reported once through
 * `onFailure`, so the run can stop before doing anything more.
 *
 * With an `ownership` (or a lease given in `options`), every append carries the run's lease (a
 * stale owner's appends are refused by the store). The lease is taken by the run's first append
 * (`AppendOptions.acquire`: no round trip of its own), renewed every third of its time to live
 * while the run is live, and released by the append that holds `EXECUTION_COMPLETE`
 * (`AppendOptions.release`), so a run whose whole log is one batch writes once. `end()` releases
 * it when no append did (the log failed). A run whose process dies keeps an expiring lease, so it
 * lists as `interrupted`.
 */
export class RunLog {
  readonly #store: RunStore;
  readonly #executionId: string;
  readonly #onFailure: (error: OaoError) => void;
  readonly #ownership: RunOwnership | undefined;
  #lease: Lease | undefined;
  /** The lease was released by an append: nothing left to renew or release. */
  #released = false;
  /** The renewal round the log's lease is in, while it is renewed. */
  #round: RenewalRound | undefined;
  /** The lease's time to live, for its renewals. */
  #renewTtlMs: number | undefined;
  #ended = false;
  #buffer: OaoEvent[] = [];
  #scheduled = false;
  /** Microtasks of the scheduled flush since the buffer last grew, and since it was scheduled. */
  #quiet = 0;
  #waited = 0;
  /** The buffer's length when the scheduled flush last looked. */
  #seen = 0;
  /** The chain of pending asynchronous appends; undefined while none is pending. */
  #tail: Promise<void> | undefined;
  /** The append queued behind the pending one, which takes whatever is buffered when it goes. */
  #next: Promise<void> | undefined;
  #failed: OaoError | undefined;

  constructor(store: RunStore, executionId: string, onFailure: (error: OaoError) => void, ownership?: RunOwnership, options?: RunLogOptions) {
    this.#store = store;
    this.#executionId = executionId;
    this.#onFailure = onFailure;
    this.#ownership = ownership;
    const lease = options?.lease;
    if (lease !== undefined) {
      this.#lease = lease;
      this.#renewEvery(ownership?.ttlMs ?? DEFAULT_LEASE_TTL_MS);
    }
  }

  /** The run's lease, once taken (or given). */
  get lease(): Lease | undefined {
    return this.#lease;
  }

  /**
   * The run is over and its last events are flushed: stop renewing and give the lease up, unless
   * the last append did. A failure here loses nothing (the log is complete), so it is not reported.
   */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopRenewal();
    const lease = this.#lease;
    if (lease === undefined || this.#released) return;
    this.#released = true;
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
      this.#quiet = 0;
      this.#waited = 0;
      this.#seen = this.#buffer.length;
      queueMicrotask(this.#tick);
    }
  }

  /**
   * One microtask of a scheduled flush: the buffer is written once the run has gone
   * {@link QUIET_MICROTASKS} microtasks without adding an event (it waits for I/O, a timer or
   * another run), or {@link MAX_MICROTASKS} after the flush was scheduled, whichever comes first.
   */
  readonly #tick = (): void => {
    const length = this.#buffer.length;
    if (length !== this.#seen) {
      this.#seen = length;
      this.#quiet = 0;
    }
    this.#waited += 1;
    if (length > 0 && ++this.#quiet < QUIET_MICROTASKS && this.#waited < MAX_MICROTASKS) {
      queueMicrotask(this.#tick);
      return;
    }
    this.#scheduled = false;
    // A failure is reported through onFailure; nobody awaits this flush.
    try {
      const pending = this.flush();
      if (pending !== undefined) pending.catch(() => {});
    } catch {
      // reported
    }
  };

  /**
   * Makes every buffered event durable. Synchronous with a synchronous store (a failure is thrown
   * as the typed error after being reported); otherwise a promise that settles when they are
   * (and rejects with the typed error). Resolves at once when nothing is buffered or pending.
   */
  flush(): void | Promise<void> {
    if (this.#failed !== undefined) return this.#tail === undefined ? this.#throw() : this.#tail;
    if (this.#buffer.length === 0) return this.#tail;
    // An append is already queued behind the one in flight: these events go with it.
    if (this.#next !== undefined) return this.#next;
    if (this.#tail !== undefined) {
      // Keep order, and coalesce: everything buffered by the time the pending append is done goes
      // in one append after it, so a run writes once per round trip, not once per macrostep.
      const next = this.#tail.then(() => {
        this.#next = undefined;
        const batch = this.#buffer;
        this.#buffer = [];
        return batch.length === 0 ? undefined : this.#append(batch);
      });
      const tracked = this.#track(next);
      this.#next = tracked;
      tracked.catch(() => {
        if (this.#next === tracked) this.#next = undefined;
      });
      return tracked;
    }
    const batch = this.#buffer;
    this.#buffer = [];
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
    const lease = this.#lease;
    const ownership = lease === undefined ? this.#ownership : undefined;
    // The run's last batch gives the lease up with its events.
    const release = (lease !== undefined || ownership !== undefined) && batch[batch.length - 1]?.type === 'EXECUTION_COMPLETE';
    let taken: Lease | undefined;
    let options: AppendOptions | undefined;
    if (lease !== undefined) options = release ? { lease, release } : { lease };
    else if (ownership !== undefined) {
      const onAcquired = (acquired: Lease): void => {
        taken = acquired;
      };
      const acquire = { owner: ownership.owner, ttlMs: ownership.ttlMs, onAcquired };
      options = release ? { acquire, release } : { acquire };
    }
    let result: void | Promise<void>;
    try {
      result = this.#store.append(this.#executionId, batch, options);
    } catch (error) {
      return this.#fail(error);
    }
    if (result === undefined || typeof (result as { then?: unknown }).then !== 'function') return this.#appended(taken, ownership, release);
    return Promise.resolve(result).then(
      () => this.#appended(taken, ownership, release),
      (error: unknown) => this.#fail(error),
    );
  }

  /**
   * An append succeeded: keep the lease it took (`ownership`: it was asked to take one) and note
   * a release. A store that took the lease without handing it over (a wrapper that dropped the
   * callback) is asked for it again: its holder gets it back with the same token.
   */
  #appended(taken: Lease | undefined, ownership: RunOwnership | undefined, release: boolean): void | Promise<void> {
    if (release) {
      this.#released = true;
      this.#stopRenewal();
      if (taken !== undefined) this.#lease = taken;
      return undefined;
    }
    if (ownership === undefined) return undefined;
    if (taken !== undefined) return this.#takeLease(taken, ownership);
    let again: Lease | undefined | Promise<Lease | undefined>;
    try {
      again = this.#store.acquireLease(this.#executionId, ownership.owner, ownership.ttlMs);
    } catch (error) {
      return this.#fail(error);
    }
    if (again instanceof Promise) {
      return again.then(
        (lease) => this.#takeLease(lease, ownership),
        (error: unknown) => this.#fail(error),
      );
    }
    return this.#takeLease(again, ownership);
  }

  #takeLease(lease: Lease | undefined, ownership: RunOwnership): void {
    if (lease === undefined) {
      this.#fail(new OaoError('OAO_ERR_LEASE_LOST', `Run "${this.#executionId}" is held by another owner`, { details: { executionId: this.#executionId } }));
    }
    this.#lease = lease;
    this.#renewEvery(ownership.ttlMs);
  }

  /**
   * Live logs whose leases are renewed, by renewal period: one interval timer per period renews
   * every lease of that period, instead of one timer per live run (a server holds thousands of
   * live runs, and a timer is a few hundred bytes of each one's heap). A lease joins a round within
   * one period of being taken, as it would with its own timer. A round is bound to the timer
   * functions it was created with: when they change (test fake timers), new leases start a new one.
   */
  static readonly #rounds = new Map<number, RenewalRound>();

  #renewEvery(ttlMs: number): void {
    if (this.#ended || this.#round !== undefined) return;
    this.#renewTtlMs = ttlMs;
    const period = renewalPeriod(ttlMs);
    let round = RunLog.#rounds.get(period);
    if (round === undefined || round.setInterval !== setInterval) {
      const logs = new Set<RunLog>();
      const timer = setInterval(() => {
        for (const log of logs) log.#renew(log.#renewTtlMs ?? ttlMs);
      }, period);
      timer.unref?.();
      round = { period, timer, logs, setInterval, clearInterval };
      RunLog.#rounds.set(period, round);
    }
    round.logs.add(this);
    this.#round = round;
  }

  #stopRenewal(): void {
    const round = this.#round;
    if (round === undefined) return;
    this.#round = undefined;
    round.logs.delete(this);
    if (round.logs.size > 0) return;
    round.clearInterval(round.timer);
    if (RunLog.#rounds.get(round.period) === round) RunLog.#rounds.delete(round.period);
  }

  #renew(ttlMs: number): void {
    const lease = this.#lease;
    if (lease === undefined || this.#failed !== undefined || this.#ended || this.#released) return;
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
      this.#stopRenewal();
      this.#onFailure(typed);
    }
    throw typed;
  }

  #throw(): never {
    throw this.#failed as OaoError;
  }
}
