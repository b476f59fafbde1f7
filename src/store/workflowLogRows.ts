import { OaoError } from '../errors.js';
import { workflowEventSchema, type StoredWorkflowEvent } from '../events/workflowSchema.js';
import { invalidOption, typeOf } from '../options.js';
import { canonicalJson } from '../report/canonicalJson.js';
import { STORE_SCHEMA_VERSION } from './RunStore.js';
import type { LogRow } from './logRows.js';

/**
 * What every store shares for workflow logs (pure, no I/O): the argument checks, the idempotent
 * append rule and the checked read, the same as for run logs but keyed by workflow run id.
 */

/** Checks the arguments of `appendWorkflow`. */
export function workflowAppendArguments(workflowRunId: unknown, events: unknown): void {
  workflowRunIdArgument(workflowRunId);
  if (!Array.isArray(events)) throw invalidOption('events', `Expected events to be an array of workflow events, got ${typeOf(events)}`);
  for (const event of events as unknown[]) {
    const seq = typeof event === 'object' && event !== null ? (event as { seq?: unknown }).seq : undefined;
    if (!Number.isSafeInteger(seq) || (seq as number) < 0) {
      throw invalidOption('events', `Expected every event to have an integer seq from 0 up, got ${typeOf(event)} with seq ${String(seq)}`);
    }
    const type = (event as { type?: unknown }).type;
    if (type === 'RUN_EVENT') throw invalidOption('events', 'A workflow log holds the workflow\'s own events: RUN_EVENT belongs in the node run\'s log');
  }
}

/** A workflow run id: a non-empty string. */
export function workflowRunIdArgument(workflowRunId: unknown): string {
  if (typeof workflowRunId !== 'string' || workflowRunId === '') {
    throw invalidOption('workflowRunId', `Expected workflowRunId to be a non-empty string, got ${typeOf(workflowRunId)}`);
  }
  return workflowRunId;
}

export function encodeWorkflowEvent(event: StoredWorkflowEvent): string {
  return JSON.stringify(event);
}

function sameWorkflowEvent(storedText: string | undefined, event: StoredWorkflowEvent): boolean {
  if (storedText === undefined) return false;
  if (storedText === encodeWorkflowEvent(event)) return true;
  try {
    return canonicalJson(JSON.parse(storedText)) === canonicalJson(event);
  } catch {
    return false;
  }
}

/**
 * The events of a batch the workflow log does not hold yet, after confirming that those it holds
 * are identical (a retried append). `OAO_ERR_LOG_CONFLICT` for a gap, a batch out of order, a
 * log that does not start with WORKFLOW_START, or a different event at a held `seq`.
 */
export function newWorkflowEvents(
  workflowRunId: string,
  events: readonly StoredWorkflowEvent[],
  stored: number,
  storedText: (seq: number) => string | undefined,
): StoredWorkflowEvent[] {
  const fresh: StoredWorkflowEvent[] = [];
  let previous: number | undefined;
  for (const event of events) {
    if (event.workflowRunId !== workflowRunId) throw conflict(workflowRunId, event.seq, `the event belongs to workflow run "${event.workflowRunId}"`);
    if (previous !== undefined && event.seq !== previous + 1) throw conflict(workflowRunId, event.seq, `the batch is not in seq order (after ${previous})`);
    previous = event.seq;
    if (event.seq < stored) {
      if (!sameWorkflowEvent(storedText(event.seq), event)) throw conflict(workflowRunId, event.seq, 'the log already holds a different event at that seq');
      continue;
    }
    if (event.seq !== stored + fresh.length) {
      throw conflict(workflowRunId, event.seq, `the log ends at seq ${stored + fresh.length - 1}: appending ${event.seq} would leave a gap`);
    }
    if (event.seq === 0 && event.type !== 'WORKFLOW_START') throw conflict(workflowRunId, 0, `a workflow log starts with WORKFLOW_START, not ${event.type}`);
    fresh.push(event);
  }
  return fresh;
}

function conflict(workflowRunId: string, seq: number, why: string): OaoError {
  return new OaoError('OAO_ERR_LOG_CONFLICT', `Cannot append event ${seq} to workflow run "${workflowRunId}": ${why}`, { details: { workflowRunId, seq } });
}

/** Stored rows (in `seq` order) as checked workflow events; a damaged row is `OAO_ERR_LOG_CORRUPT`. */
export function decodeWorkflowRows(workflowRunId: string, rows: readonly LogRow[], fromSeq = 0): StoredWorkflowEvent[] {
  const events: StoredWorkflowEvent[] = [];
  let expected = fromSeq;
  for (const row of rows) {
    if (row.version > STORE_SCHEMA_VERSION) {
      throw new OaoError(
        'OAO_ERR_LOG_VERSION',
        `Event ${row.seq} of workflow run "${workflowRunId}" was written by log format ${row.version}; this runtime reads up to ${STORE_SCHEMA_VERSION}`,
        { details: { workflowRunId, seq: row.seq, version: row.version } },
      );
    }
    if (row.seq !== expected) throw corrupt(workflowRunId, expected, `the log has no event ${expected} (the next stored one is ${row.seq})`);
    let value: unknown;
    try {
      value = typeof row.body === 'string' ? JSON.parse(row.body) : row.body;
    } catch (error) {
      throw corrupt(workflowRunId, row.seq, `its row is not JSON (${(error as Error).message})`);
    }
    const parsed = workflowEventSchema.safeParse(value);
    if (!parsed.success || parsed.data.type === 'RUN_EVENT') {
      const issue = parsed.error?.issues[0];
      throw corrupt(workflowRunId, row.seq, `it is not a stored workflow event (${issue === undefined ? 'RUN_EVENT' : `${issue.path.join('.') || 'event'}: ${issue.message}`})`);
    }
    const event = parsed.data;
    if (event.workflowRunId !== workflowRunId || event.seq !== row.seq) {
      throw corrupt(workflowRunId, row.seq, `it belongs to workflow run "${event.workflowRunId}" at seq ${event.seq}`);
    }
    events.push(event);
    expected += 1;
  }
  return events;
}

function corrupt(workflowRunId: string, seq: number, why: string): OaoError {
  return new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of workflow run "${workflowRunId}" is damaged: ${why}`, { details: { workflowRunId, seq } });
}
