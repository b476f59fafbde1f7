import { concat, from, type Observable } from 'rxjs';
import type { OaoEvent } from '../events/schema.js';
import type { RunHandle } from '../Orchestrator.js';
import type { ExecutionReport } from '../report/schema.js';
import type { LiveRun } from './RecordedRun.js';

/**
 * A run this process continued from its log (`orch.startResumed()`), as the server serves a live
 * run: its events are the ones an earlier process recorded, then the handle's, so GET /runs/:id
 * counts the whole log and an event stream replays it from `seq` 0 (or after `Last-Event-ID`).
 */
export class ResumedRun implements LiveRun {
  readonly events$: Observable<OaoEvent>;
  readonly #handle: RunHandle;
  readonly #before: readonly OaoEvent[];

  /** `before`: the stored log up to the handle's first event. */
  constructor(handle: RunHandle, before: readonly OaoEvent[]) {
    this.#handle = handle;
    this.#before = before;
    this.events$ = concat(from(before), handle.events$);
  }

  get executionId(): string {
    return this.#handle.executionId;
  }

  get report(): Promise<ExecutionReport> {
    return this.#handle.report;
  }

  events(): readonly OaoEvent[] {
    return [...this.#before, ...this.#handle.events()];
  }

  cancel(reason?: string): void {
    this.#handle.cancel(reason);
  }
}
