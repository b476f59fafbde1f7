import { OaoError } from '../errors.js';
import { oaoEventSchema, oaoEventTypes, storedCompleteEventSchema, type OaoEvent } from '../events/schema.js';
import { canonicalJson } from '../report/canonicalJson.js';
import type { ExecutionReport } from '../report/schema.js';
import { STORE_SCHEMA_VERSION, type StoredRun, type StoredRunStatus } from './RunStore.js';

/**
 * Helpers every store shares, so that all three check logs, detect conflicts and build their
 * index in exactly the same way. Pure: no I/O. Argument checks they share are in
 * storeArguments.ts.
 */

/** One stored row of a log, as a store reads it back. `body` is the event's JSON (text or parsed). */
export interface LogRow {
  readonly seq: number;
  /** The row format version it was written with. */
  readonly version: number;
  readonly body: unknown;
}

const knownTypes: ReadonlySet<string> = new Set(oaoEventTypes);

/**
 * The text a store writes for an event: its JSON, keys in the order the event has them. Cheaper
 * than canonical JSON (about a third of its time), which is only needed to compare a retried event
 * with a stored one whose text differs: see {@link sameEvent}.
 */
export function encodeEvent(event: OaoEvent): string {
  return JSON.stringify(event);
}

/**
 * Whether the stored text of an event (undefined: none) holds the same event as `event`. Equal
 * text is the common case (a retry of the same objects); otherwise both are compared as canonical
 * JSON, so an equal event whose keys come in another order (a copy, a row written by an older
 * release in canonical form) is the same event, and a different one is not.
 */
export function sameEvent(storedText: string | undefined, event: OaoEvent): boolean {
  if (storedText === undefined) return false;
  if (storedText === encodeEvent(event)) return true;
  let stored: unknown;
  try {
    stored = JSON.parse(storedText);
  } catch {
    return false;
  }
  return canonicalJson(stored) === canonicalJson(event);
}

/**
 * Turns stored rows (in `seq` order) into checked events. Every row must parse as an event of a
 * known type, carry the run's id and its own `seq`, and follow the previous one without a gap
 * (starting at `fromSeq`). Anything else is a typed error naming the run and the `seq`.
 */
export function decodeRows(executionId: string, rows: readonly LogRow[], fromSeq = 0): OaoEvent[] {
  const events: OaoEvent[] = [];
  let expected = fromSeq;
  for (const row of rows) {
    events.push(decodeRow(executionId, expected, row.seq, row.version, row.body));
    expected += 1;
  }
  return events;
}

/**
 * One stored row as a checked event: the row at `seq`, written with row format `version`, whose
 * body is the event's JSON (text or parsed), where the log's next event is `expected`. Throws
 * `OAO_ERR_LOG_VERSION` or `OAO_ERR_LOG_CORRUPT` naming the run and the `seq`, as {@link decodeRows}.
 */
export function decodeRow(executionId: string, expected: number, seq: number, version: number, body: unknown): OaoEvent {
  if (version > STORE_SCHEMA_VERSION) {
    throw new OaoError(
      'OAO_ERR_LOG_VERSION',
      `Event ${seq} of run "${executionId}" was written by log format ${version}; this runtime reads up to ${STORE_SCHEMA_VERSION}`,
      { details: { executionId, seq, version } },
    );
  }
  if (seq !== expected) {
    throw corrupt(executionId, expected, `the log has no event ${expected} (the next stored one is ${seq})`);
  }
  let value: unknown;
  try {
    value = typeof body === 'string' ? JSON.parse(body) : body;
  } catch (error) {
    throw corrupt(executionId, seq, `its row is not JSON (${(error as Error).message})`);
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !knownTypes.has(type)) {
    throw corrupt(executionId, seq, `its type ${JSON.stringify(type) ?? 'undefined'} is not an event type this runtime knows`);
  }
  // A report's output is checked as the value JSON.parse just made it (see storedCompleteEventSchema).
  const parsed = (type === 'EXECUTION_COMPLETE' ? storedCompleteEventSchema : oaoEventSchema).safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt(executionId, seq, `it does not match the ${type} schema (${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'})`);
  }
  const event = parsed.data;
  if (event.executionId !== executionId || event.seq !== seq) {
    throw corrupt(executionId, seq, `it belongs to run "${event.executionId}" at seq ${event.seq}`);
  }
  return event;
}

function corrupt(executionId: string, seq: number, why: string): OaoError {
  return new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of run "${executionId}" is damaged: ${why}`, { details: { executionId, seq } });
}

/**
 * Checks a batch to append against the log's current length. Returns the events that are new
 * (those at or past `stored`), after confirming that those the log already holds are identical
 * (`storedText(seq)` gives the stored text). Throws `OAO_ERR_LOG_CONFLICT` for a gap, a batch out
 * of order, a run not starting with `EXECUTION_START`, or a different event at a held `seq`.
 */
export function newEvents(
  executionId: string,
  events: readonly OaoEvent[],
  stored: number,
  storedText: (seq: number) => string | undefined,
): OaoEvent[] {
  const fresh: OaoEvent[] = [];
  let previous: number | undefined;
  for (const event of events) {
    if (event.executionId !== executionId) {
      throw conflict(executionId, event.seq, `the event belongs to run "${event.executionId}"`);
    }
    if (previous !== undefined && event.seq !== previous + 1) {
      throw conflict(executionId, event.seq, `the batch is not in seq order (after ${previous})`);
    }
    previous = event.seq;
    if (event.seq < stored) {
      if (!sameEvent(storedText(event.seq), event)) {
        throw conflict(executionId, event.seq, 'the log already holds a different event at that seq');
      }
      continue;
    }
    if (event.seq !== stored + fresh.length) {
      throw conflict(executionId, event.seq, `the log ends at seq ${stored + fresh.length - 1}: appending ${event.seq} would leave a gap`);
    }
    if (event.seq === 0 && event.type !== 'EXECUTION_START') {
      throw conflict(executionId, 0, `a run's log starts with EXECUTION_START, not ${event.type}`);
    }
    fresh.push(event);
  }
  return fresh;
}

function conflict(executionId: string, seq: number, why: string): OaoError {
  return new OaoError('OAO_ERR_LOG_CONFLICT', `Cannot append event ${seq} to run "${executionId}": ${why}`, { details: { executionId, seq } });
}

/** What an appended batch changes in a run's index entry. */
export interface IndexUpdate {
  /** Set by EXECUTION_START. */
  readonly agentName?: string;
  /**
   * Whole milliseconds (the event's timestamp truncated, as `new Date()` does): the precision of
   * `StoredRun.startedAt` and of cursors, so that sorting, cursors and `since`/`until` agree.
   * Event timestamps have fractions; a store that sorted by them would skip runs between pages.
   */
  readonly startedAt?: number;
  /** Set by EXECUTION_COMPLETE. */
  readonly report?: ExecutionReport;
}

/** Reads the index facts out of the events of one append. */
export function indexUpdate(events: readonly OaoEvent[]): IndexUpdate {
  let update: { agentName?: string; startedAt?: number; report?: ExecutionReport } = {};
  for (const event of events) {
    if (event.type === 'EXECUTION_START') update = { ...update, agentName: event.payload.agentName, startedAt: Math.trunc(event.timestamp) };
    else if (event.type === 'EXECUTION_COMPLETE') update = { ...update, report: event.payload.report };
  }
  return update;
}

/**
 * The status of a run in lists: its report's, else `running` while a lease is live (or it was
 * never leased), else `interrupted`.
 */
export function runStatus(report: Pick<ExecutionReport, 'status'> | undefined, leaseExpiresAt: number | undefined, now: number): StoredRunStatus {
  if (report !== undefined) return report.status;
  if (leaseExpiresAt === undefined || leaseExpiresAt > now) return 'running';
  return 'interrupted';
}

/** Cursor of a list page: the last run's start time and id, opaque to callers. */
export function encodeCursor(run: Pick<StoredRun, 'startedAt' | 'executionId'>): string {
  return Buffer.from(JSON.stringify([Date.parse(run.startedAt), run.executionId])).toString('base64url');
}

/** Reads a cursor back; `OAO_ERR_INVALID_ARGUMENT` (field `cursor`) when it is not one of ours. */
export function decodeCursor(cursor: string): { readonly startedAt: number; readonly executionId: string } {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && Number.isFinite(value[0]) && typeof value[1] === 'string') {
      return { startedAt: value[0] as number, executionId: value[1] };
    }
  } catch {
    // falls through to the typed error
  }
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Invalid "cursor": pass the nextCursor of a previous page', { details: { field: 'cursor' } });
}

/** Checks `limit` of a page request. */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "limit" to be an integer from 1 to 1000, got ${String(limit)}`, { details: { field: 'limit' } });
  }
  return limit;
}
