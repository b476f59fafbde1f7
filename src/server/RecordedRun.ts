import { Observable, type Subscriber } from 'rxjs';
import type { OaoEvent } from '../events/schema.js';
import type { RunHandle } from '../Orchestrator.js';
import type { ExecutionReport } from '../report/schema.js';

/**
 * What the server needs of a run while it is live in this process. The core's `RunHandle`
 * satisfies it; runs of a POST /run-multi batch get a {@link RecordedRun}.
 */
export type LiveRun = Pick<RunHandle, 'executionId' | 'events$' | 'events' | 'report' | 'cancel'>;

/**
 * A live run fed from outside: the server records a batch child's events (from the batch's
 * RUN_EVENTs) here, so that runs of POST /run-multi can be watched and cancelled one by one like
 * any other. Its stream replays what was recorded, then goes live, and completes after
 * EXECUTION_COMPLETE (or when the report arrives, for a job that never started).
 */
export class RecordedRun implements LiveRun {
  readonly executionId: string;
  readonly report: Promise<ExecutionReport>;
  readonly events$: Observable<OaoEvent>;
  readonly #events: OaoEvent[] = [];
  readonly #subscribers = new Set<Subscriber<OaoEvent>>();
  readonly #cancel: (reason: string) => void;
  #settle!: (report: ExecutionReport) => void;
  #complete = false;

  constructor(executionId: string, cancel: (reason: string) => void) {
    this.executionId = executionId;
    this.#cancel = cancel;
    this.report = new Promise<ExecutionReport>((resolve) => (this.#settle = resolve));
    this.events$ = new Observable<OaoEvent>((subscriber) => {
      // By index: a subscriber may cause new events while it is being replayed to.
      for (let i = 0; i < this.#events.length && !subscriber.closed; i++) subscriber.next(this.#events[i] as OaoEvent);
      if (this.#complete) {
        subscriber.complete();
        return undefined;
      }
      this.#subscribers.add(subscriber);
      return () => this.#subscribers.delete(subscriber);
    });
  }

  record(event: OaoEvent): void {
    if (this.#complete) return;
    this.#events.push(event);
    for (const subscriber of [...this.#subscribers]) subscriber.next(event);
    if (event.type === 'EXECUTION_COMPLETE') this.settle(event.payload.report);
  }

  /** The run's report: from its EXECUTION_COMPLETE, or from the batch for a job that never started. */
  settle(report: ExecutionReport): void {
    this.#settle(report);
    this.#close();
  }

  events(): readonly OaoEvent[] {
    return this.#events.slice();
  }

  cancel(reason = 'cancelled by caller'): void {
    this.#cancel(String(reason));
  }

  #close(): void {
    if (this.#complete) return;
    this.#complete = true;
    for (const subscriber of [...this.#subscribers]) subscriber.complete();
    this.#subscribers.clear();
  }
}
