import { Observable, type Subscriber } from 'rxjs';
import { OaoError } from '../errors.js';

type Hook<E> = (event: E) => unknown;

/**
 * Delivers events to an RxJS stream and to typed hooks. A hook that throws, or returns a promise
 * that rejects, is reported to `onHookError` and never reaches the code that emitted the event.
 * Emitting costs almost nothing while nobody listens.
 *
 * `events$` behaves as a Subject's `asObservable()` (hot, no replay, completes with the hub), but
 * events go straight to the subscribers: a run emits a dozen events or more, and a Subject's
 * `next` allocates a closure for each.
 */
export class EventHub<E extends { readonly type: string }> {
  readonly events$: Observable<E>;
  /** Copied on every change, so an emit walks the subscribers as they were when it began. */
  #subscribers: readonly Subscriber<E>[] = [];
  #completed = false;
  readonly #hooks = new Map<string, Set<Hook<E>>>();
  readonly #onHookError: (error: unknown, event: E) => void;

  constructor(onHookError: (error: unknown, event: E) => void) {
    this.#onHookError = onHookError;
    this.events$ = new Observable<E>((subscriber) => {
      if (this.#completed) {
        subscriber.complete();
        return undefined;
      }
      this.#subscribers = [...this.#subscribers, subscriber];
      return () => {
        this.#subscribers = this.#subscribers.filter((other) => other !== subscriber);
      };
    });
  }

  /** Whether anyone listens: emitters may skip building events when not. */
  get observed(): boolean {
    return this.#subscribers.length > 0 || this.#hooks.size > 0;
  }

  on(type: string, hook: Hook<E>): () => void {
    if (typeof hook !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected hook to be a function, got ${hook === null ? 'null' : typeof hook}`);
    }
    let set = this.#hooks.get(type);
    if (set === undefined) this.#hooks.set(type, (set = new Set()));
    set.add(hook);
    return () => {
      set.delete(hook);
      if (set.size === 0 && this.#hooks.get(type) === set) this.#hooks.delete(type);
    };
  }

  emit(event: E): void {
    const subscribers = this.#subscribers;
    for (let i = 0; i < subscribers.length; i++) subscribers[i]!.next(event);
    if (this.#hooks.size === 0) return;
    this.#call(this.#hooks.get(event.type), event);
    this.#call(this.#hooks.get('*'), event);
  }

  complete(): void {
    if (this.#completed) return;
    this.#completed = true;
    const subscribers = this.#subscribers;
    this.#subscribers = [];
    for (const subscriber of subscribers) subscriber.complete();
  }

  #call(hooks: Set<Hook<E>> | undefined, event: E): void {
    if (hooks === undefined) return;
    for (const hook of hooks) {
      try {
        const result = hook(event);
        if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, (error: unknown) => this.#report(error, event));
        }
      } catch (error) {
        this.#report(error, event);
      }
    }
  }

  #report(error: unknown, event: E): void {
    try {
      this.#onHookError(error, event);
    } catch {
      // The error handler itself failed; nothing more can be done without risking the run.
    }
  }
}
