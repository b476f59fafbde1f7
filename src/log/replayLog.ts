import { OaoError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import { sameCanonicalJson } from '../report/canonicalJson.js';
import type { ExecutionReport } from '../report/schema.js';
import { foldRun } from './foldRun.js';

/**
 * Rebuilds a finished run's report from its log alone: no agent, tool or model is called. The
 * rebuilt report must equal the one the log recorded in EXECUTION_COMPLETE (same canonical JSON,
 * same executionHash); a log that folds to anything else is damaged.
 *
 * @throws OAO_ERR_LOG_CORRUPT when the events are out of order or fold to another report;
 *   OAO_ERR_INVALID_ARGUMENT when the log is empty or ends before EXECUTION_COMPLETE.
 */
export function replayLog(events: readonly OaoEvent[]): ExecutionReport {
  const executionId = events[0]?.executionId ?? '';
  if (events.length === 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Nothing to replay: the log is empty (is the execution id right?)', { details: { field: 'events' } });
  }
  let state;
  try {
    state = foldRun(events);
  } catch (error) {
    const seq = events.findIndex((event, index) => event.seq !== index);
    throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of run "${executionId}" cannot be replayed: ${(error as Error).message}`, {
      details: { executionId, seq: seq === -1 ? events.length - 1 : seq },
      cause: error,
    });
  }
  const last = events[events.length - 1] as OaoEvent;
  if (state?.report === undefined || last.type !== 'EXECUTION_COMPLETE') {
    throw new OaoError(
      'OAO_ERR_INVALID_ARGUMENT',
      `The log of run "${executionId}" ends at seq ${last.seq} (${last.type}), before EXECUTION_COMPLETE: the run has not finished`,
      { details: { field: 'events', executionId, seq: last.seq } },
    );
  }
  const recorded = last.payload.report;
  // A report recorded before `wallTimeMs` existed is compared without it.
  const rebuilt = recorded.wallTimeMs === undefined ? withoutWallTime(state.report) : state.report;
  if (!sameCanonicalJson(rebuilt, recorded)) {
    throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of run "${executionId}" does not add up to the report it recorded`, {
      details: { executionId, seq: last.seq },
    });
  }
  return rebuilt;
}

function withoutWallTime(report: ExecutionReport): ExecutionReport {
  const { wallTimeMs: _wall, ...rest } = report;
  return rest;
}
