import { OaoError, type SerializedError } from '../errors.js';
import type { EventCounters, OaoEvent, OaoEventOf, OaoEventPayload, OaoEventType } from '../events/schema.js';
import type { LifecycleState } from '../report/schema.js';
import { applyEvent, buildReport, type RunFold } from './foldRun.js';

/** What {@link endInterrupted} needs besides the log. */
export interface EndInterruptedOptions {
  /** The clock reading the ending is recorded at (ms since the epoch); a reading before the log's last event counts as that event's time. */
  readonly now: number;
  /** Who ends the run: the owner of the lease taken to append the ending (EXECUTION_RESUMED's `owner`). */
  readonly owner: string | null;
  /**
   * Why the run ends, when its log has not decided that already (a decided ending, such as a
   * recorded cancel or violation, stands). Typically `OAO_ERR_INTERRUPTED` with a message that
   * says why nobody continues the run.
   */
  readonly error: SerializedError;
}

/**
 * The events that end a run cut short (its process died), without running anything of it: to be
 * appended, in order, to the log it was given. Pure: no I/O, and the clock reading is an argument.
 *
 * - `EXECUTION_RESUMED` (point `failed`, or `terminate` for a run that had already reached
 *   TERMINATE): the time since the log's last event is idle time, so `executionTimeMs` stays the
 *   run's live time and `wallTimeMs` spans the gap.
 * - `EXECUTION_FAILED` with `error`, unless the log already decided how the run ends.
 * - `STATE_EXIT` of the state the run was in (unless the log ends with it) and `STATE_ENTER` of
 *   FAILED, unless the run is in a final state already.
 * - `EXECUTION_COMPLETE` whose report is the fold of the whole log ({@link buildReport}), so that
 *   replaying the ended log gives that report.
 *
 * A run that reached TERMINATE before it was cut short ends SUCCESS: its agent had finished.
 *
 * @throws OAO_ERR_INVALID_ARGUMENT for an empty log or one that already ends with
 *   EXECUTION_COMPLETE; OAO_ERR_LOG_CORRUPT for a log out of order.
 */
export function endInterrupted(events: readonly OaoEvent[], options: EndInterruptedOptions): OaoEvent[] {
  const last = events[events.length - 1];
  if (last === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Nothing to end: the log is empty (is the execution id right?)', { details: { field: 'events' } });
  }
  const executionId = last.executionId;
  let fold: RunFold | undefined;
  for (const event of events) {
    try {
      fold = applyEvent(fold, event);
    } catch (error) {
      throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of run "${executionId}" cannot be ended: ${(error as Error).message}`, {
        details: { executionId, seq: event.seq },
        cause: error,
      });
    }
  }
  let state = fold as RunFold;
  if (state.report !== undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Run "${executionId}" has finished: there is nothing to end`, { details: { field: 'events', executionId } });
  }

  const at = Math.max(options.now, state.lastTimestamp);
  const idleMs = at - state.lastTimestamp;
  // The state left open, as the runtime counts its duration: live time only, so without the idle
  // gaps recorded since it was entered (and this one).
  const openIdleMs = idleSinceLastEnter(events) + idleMs;
  const succeeded = state.state === 'TERMINATE';
  let current: LifecycleState = last.state;
  const ending: OaoEvent[] = [];
  const emit = <T extends OaoEventType>(type: T, payload: OaoEventPayload<T>): void => {
    const event = {
      id: `${executionId}:${state.seq}`,
      executionId,
      seq: state.seq,
      timestamp: at,
      type,
      state: current,
      counters: countersOf(state),
      payload,
    } as OaoEventOf<T>;
    state = applyEvent(state, event);
    ending.push(event);
  };

  emit('EXECUTION_RESUMED', { idleMs, owner: options.owner, point: succeeded ? 'terminate' : 'failed' });
  if (!succeeded) {
    if (state.termination === undefined) emit('EXECUTION_FAILED', { error: options.error });
    if (state.state !== 'FAILED') {
      const open = state.stateHistory[state.stateHistory.length - 1];
      // A log cut between a STATE_EXIT and its STATE_ENTER has closed the state already.
      if (open !== undefined && last.type !== 'STATE_EXIT') emit('STATE_EXIT', { state: open.state, durationMs: Math.max(0, at - open.enteredAt - openIdleMs) });
      current = 'FAILED';
      emit('STATE_ENTER', { state: 'FAILED' });
    }
  }
  emit('EXECUTION_COMPLETE', { report: buildReport(state, at) });
  return ending;
}

function countersOf(state: RunFold): EventCounters {
  return { steps: state.steps, tokens: state.tokens.total, toolCalls: state.toolCalls };
}

/** The idle time recorded (EXECUTION_RESUMED) since the log's last STATE_ENTER. */
function idleSinceLastEnter(events: readonly OaoEvent[]): number {
  let idle = 0;
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i] as OaoEvent;
    if (event.type === 'STATE_ENTER') break;
    if (event.type === 'EXECUTION_RESUMED') idle += event.payload.idleMs;
  }
  return idle;
}
