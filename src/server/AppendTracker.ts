import { Observable } from 'rxjs';
import type { OaoEvent } from '../events/schema.js';
import type { AppendOptions, RunStore } from '../store/RunStore.js';

/**
 * What the store has acknowledged of each run this server runs: the highest `seq` of each run
 * whose append succeeded. The event stream of a live run sends an event only once it is stored,
 * so every event id a client has seen is in the log: `Last-Event-ID` then means the same thing
 * to this process and to any later one, even if this one is killed the next moment.
 */
export class AppendTracker {
  readonly #stored = new Map<string, number>();
  readonly #listeners = new Map<string, Set<() => void>>();

  /**
   * The store as the server's orchestrators write to it: every method is the store's own, and a
   * successful append moves its run's mark.
   */
  wrap(store: RunStore): RunStore {
    const append = (executionId: string, events: readonly OaoEvent[], options?: AppendOptions): void | Promise<void> => {
      const result = store.append(executionId, events, options);
      const last = events.at(-1)?.seq;
      if (last === undefined) return result;
      // A synchronous store has stored the events when append returns; an asynchronous one, once its promise resolves.
      if (result === undefined) {
        this.#mark(executionId, last);
        return result;
      }
      return Promise.resolve(result).then(() => this.#mark(executionId, last));
    };
    return new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'append') return append;
        const value: unknown = Reflect.get(target, property, receiver);
        // Methods are called on the store itself: a class with private fields needs its own `this`.
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /**
   * A live run's events, each sent once the store holds it; completes after the last one, once
   * `events$` has completed. Events the store never acknowledges wait until {@link release}.
   */
  stored(executionId: string, events$: Observable<OaoEvent>): Observable<OaoEvent> {
    return new Observable<OaoEvent>((subscriber) => {
      const waiting: OaoEvent[] = [];
      let sourceDone = false;
      const flush = (): void => {
        const mark = this.#stored.get(executionId) ?? -1;
        while (waiting.length > 0 && (waiting[0] as OaoEvent).seq <= mark && !subscriber.closed) subscriber.next(waiting.shift() as OaoEvent);
        if (sourceDone && waiting.length === 0) subscriber.complete();
      };
      const listeners = this.#listeners.get(executionId) ?? new Set<() => void>();
      this.#listeners.set(executionId, listeners);
      listeners.add(flush);
      const subscription = events$.subscribe({
        next: (event) => {
          waiting.push(event);
          flush();
        },
        complete: () => {
          sourceDone = true;
          flush();
        },
        error: (error: unknown) => subscriber.error(error),
      });
      return () => {
        subscription.unsubscribe();
        listeners.delete(flush);
        if (listeners.size === 0 && this.#listeners.get(executionId) === listeners) this.#listeners.delete(executionId);
      };
    });
  }

  /**
   * The store holds the run's events up to `seq` already: those of a run this process took over
   * (a resumed run), which an earlier process appended.
   */
  storedUpTo(executionId: string, seq: number): void {
    this.#mark(executionId, seq);
  }

  /**
   * The run has ended: whatever its streams still hold is sent (a run whose log could not be
   * completed is served from this process's memory from now on), and its mark is forgotten.
   */
  release(executionId: string): void {
    this.#stored.set(executionId, Number.POSITIVE_INFINITY);
    for (const flush of [...(this.#listeners.get(executionId) ?? [])]) flush();
    this.#stored.delete(executionId);
  }

  #mark(executionId: string, seq: number): void {
    if (seq <= (this.#stored.get(executionId) ?? -1)) return;
    this.#stored.set(executionId, seq);
    for (const flush of [...(this.#listeners.get(executionId) ?? [])]) flush();
  }
}
