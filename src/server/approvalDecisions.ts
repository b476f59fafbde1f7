import { OaoError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import { foldRun } from '../log/foldRun.js';
import type { Orchestrator } from '../Orchestrator.js';
import type { PendingApprovalBody } from './schemas.js';

/** A decision on a waiting tool call, as the server hands it to the orchestrator. */
export interface ApprovalInput {
  readonly approve: boolean;
  /** Who the run records as having decided. */
  readonly by?: string | undefined;
  readonly reason?: string | undefined;
  /** Approve only: the arguments to run the tool with instead. */
  readonly args?: unknown;
}

/**
 * Where a decision took effect: on a run live in this process (`live`), in the log of a run no
 * process held, which this server then resumed (`resumed`), or only in that log (`logged`).
 */
export type DecisionApplied = 'live' | 'resumed' | 'logged';

/** Codes that say the store, not the decision, failed. */
const STORE_FAILURES: ReadonlySet<string> = new Set(['OAO_ERR_STORE', 'OAO_ERR_STORE_UNAVAILABLE']);

/**
 * `orch.approve()` or `orch.deny()`. Errors about the decision's own fields name them as the
 * body's (`body.args`); a store that failed is 503 `OAO_ERR_STORE_UNAVAILABLE`, and then nothing
 * was decided.
 */
export async function applyDecision(orchestrator: Orchestrator, executionId: string, callId: string, input: ApprovalInput): Promise<void> {
  const decision = {
    ...(input.by === undefined ? {} : { by: input.by }),
    ...(input.reason === undefined ? {} : { reason: input.reason }),
  };
  try {
    if (input.approve) await orchestrator.approve(executionId, callId, input.args === undefined ? decision : { ...decision, args: input.args });
    else await orchestrator.deny(executionId, callId, decision);
  } catch (error) {
    throw decisionError(error);
  }
}

function decisionError(error: unknown): unknown {
  if (OaoError.isInstance(error)) {
    const field = error.details?.field;
    if (error.code === 'OAO_ERR_INVALID_ARGUMENT' && (field === 'args' || field === 'by' || field === 'reason')) {
      return new OaoError(error.code, `body.${field}: ${error.message}`, { details: { ...error.details, field: `body.${field}` }, cause: error });
    }
    if (!STORE_FAILURES.has(error.code)) return error;
  }
  const cause = OaoError.isInstance(error) ? error.code : 'unknown';
  return new OaoError('OAO_ERR_STORE_UNAVAILABLE', `The run store cannot record the decision now (${cause}); nothing was decided. Try again later.`, {
    cause: error,
    details: { cause },
  });
}

/**
 * Why a run live here has nothing to decide under `callId`: the call was decided already, or the
 * run has ended (`OAO_ERR_ALREADY_DECIDED`), or no such call waits (`OAO_ERR_UNKNOWN_APPROVAL`).
 */
export function notWaiting(executionId: string, callId: string, events: readonly OaoEvent[]): OaoError {
  const fold = foldRun(events);
  if (fold?.approvals.some((record) => record.callId === callId) === true) {
    return new OaoError('OAO_ERR_ALREADY_DECIDED', `Tool call ${callId} of run "${executionId}" was already decided`, { details: { executionId, callId } });
  }
  if (fold !== undefined && (fold.report !== undefined || fold.termination !== undefined)) {
    return new OaoError('OAO_ERR_ALREADY_DECIDED', `Run "${executionId}" has finished (or is ending): nothing is left to decide`, { details: { executionId, callId } });
  }
  return new OaoError('OAO_ERR_UNKNOWN_APPROVAL', `Run "${executionId}" has no tool call ${callId} awaiting approval`, {
    details: { executionId, callId, pending: fold === undefined ? [] : [...fold.pendingApprovals.keys()] },
  });
}

/** A run this process has finished, whose end the store lacks: nothing is left to decide. */
export function finishedHere(executionId: string, callId: string): OaoError {
  return new OaoError('OAO_ERR_ALREADY_DECIDED', `Run "${executionId}" has finished: nothing is left to decide`, { details: { executionId, callId } });
}

/** A run of a POST /run-multi batch: its orchestrator takes no decisions by id. */
export function batchRunDecision(executionId: string, callId: string): OaoError {
  return new OaoError(
    'OAO_ERR_INVALID_ARGUMENT',
    `Run "${executionId}" belongs to a POST /run-multi batch, whose tool calls cannot be decided over HTTP; start runs that need approval with POST /run or POST /runs`,
    { details: { field: 'params.id', executionId, callId } },
  );
}

/** A run this server is taking up (resuming) at this moment: decide again once it is live. */
export function beingTakenUp(executionId: string): OaoError {
  return new OaoError('OAO_ERR_LEASE_HELD', `Run "${executionId}" is being taken up by this server right now; decide again in a moment`, {
    details: { executionId },
  });
}

/** Pending approvals as GET /approvals lists them: oldest first. */
export function oldestFirst(pending: readonly PendingApprovalBody[]): PendingApprovalBody[] {
  return [...pending].sort((a, b) => (a.requestedAt < b.requestedAt ? -1 : a.requestedAt > b.requestedAt ? 1 : 0));
}

/**
 * Runs tasks of one key one after the other, tasks of different keys at once: decisions on one
 * run are taken in turn, so of two racing requests the second sees what the first did.
 */
export class PerKeyQueue {
  readonly #tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
