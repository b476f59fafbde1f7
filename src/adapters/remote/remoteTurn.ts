import { z } from 'zod';
import { OaoError, errorRegistry, type OaoErrorCode } from '../../errors.js';
import type { JsonValue } from '../../report/schema.js';

/** Which wire a remote agent is reached over. */
export type RemoteTransportKind = 'a2a' | 'http';

/**
 * Token usage a remote agent reports for one turn: on A2A in the reply's `metadata.usage` (the
 * reply message, else the status update, else the task), over plain HTTP as the response's `usage`.
 */
export interface RemoteUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** The model the remote used, recorded with the turn. */
  readonly model?: string;
}

const tokenCount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The documented shape of a reported usage. */
export const remoteUsageSchema = z.object({
  inputTokens: tokenCount,
  outputTokens: tokenCount,
  model: z.string().min(1).optional(),
});

/** One earlier turn, as the plain-HTTP contract sends it back in `history`. */
export interface RemoteHistoryEntry {
  readonly turn: number;
  readonly output: JsonValue;
}

/**
 * What one remote turn answered: recorded as the turn's MODEL_RESULT, and all verify-replay needs
 * to serve the turn again without a network call.
 */
export interface RemoteTurnResult {
  readonly output: JsonValue;
  /** The remote has finished the task. */
  readonly done: boolean;
  /** A2A only: the task stopped at `input-required` and waits for the caller's reply. */
  readonly inputRequired?: boolean;
  /** A2A only: the remote task's id and context, so the next turn continues the same task. */
  readonly taskId?: string;
  readonly contextId?: string;
  /** A2A only: the task's state when the turn ended (`completed`, `input-required`, ...). */
  readonly state?: string;
  readonly usage?: RemoteUsage;
}

/** What a transport is asked to do for one turn. */
export interface RemoteTurnRequest {
  /** The run's task, as given. */
  readonly task: unknown;
  /** What this turn sends: the task on the first turn, the caller's reply to `input-required` later. */
  readonly message: unknown;
  readonly runId: string;
  /** The turn's number, from 1. */
  readonly turn: number;
  readonly history: readonly RemoteHistoryEntry[];
  /** The remote task this turn continues (A2A), once one exists. */
  readonly taskId: string | undefined;
  readonly contextId: string | undefined;
  /** Aborted when the run is cancelled, times out or breaks a limit, or the turn passes its time limit. */
  readonly signal: AbortSignal;
  /**
   * Sends a remote task `tasks/cancel` when the turn is stopped (A2A): the run's own canceller, so
   * each task of a run is sent it once. The transport's `cancel` when absent.
   */
  readonly cancelTask?: (taskId: string) => void;
}

/** One way to reach a remote agent. */
export interface RemoteTransport {
  readonly kind: RemoteTransportKind;
  turn(request: RemoteTurnRequest): Promise<RemoteTurnResult>;
  /**
   * Sends a remote task `tasks/cancel` (A2A), best effort and bounded by the cancel time limit;
   * never throws. Transports without remote tasks have none.
   */
  cancel?(taskId: string): void;
}

export type RemoteFailureReason =
  | 'http_status'
  | 'malformed_response'
  | 'unreachable'
  | 'protocol_error'
  | 'task_failed'
  | 'task_rejected'
  | 'task_canceled'
  | 'input_required'
  | 'auth_required'
  | 'max_turns';

/** An `OAO_ERR_REMOTE_AGENT` error. */
export function remoteError(
  message: string,
  details: { readonly transport: RemoteTransportKind; readonly reason: RemoteFailureReason; readonly turn: number } & Record<string, unknown>,
  options: { readonly retryable?: boolean; readonly cause?: unknown } = {},
): OaoError {
  return new OaoError('OAO_ERR_REMOTE_AGENT', message, {
    details,
    ...(options.retryable === undefined ? {} : { retryable: options.retryable }),
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
}

/** Rebuilds the typed error a recorded turn failed with (verify-replay). */
export function errorFromRecord(recorded: { readonly message?: string; readonly code?: unknown; readonly details?: unknown } | undefined): Error {
  const code = recorded?.code;
  const message = recorded?.message ?? 'The remote turn failed';
  if (typeof code === 'string' && Object.hasOwn(errorRegistry, code)) {
    const details = typeof recorded?.details === 'object' && recorded.details !== null ? (recorded.details as Record<string, unknown>) : undefined;
    return new OaoError(code as OaoErrorCode, message, details === undefined ? {} : { details });
  }
  return Object.assign(new Error(message), { name: 'ReplayedRemoteError' });
}

/** Parses a reported usage; a present but malformed one is the remote's error. */
export function parseRemoteUsage(value: unknown, transport: RemoteTransportKind, turn: number): RemoteUsage | undefined {
  if (value === undefined || value === null) return undefined;
  const parsed = remoteUsageSchema.safeParse(value);
  if (!parsed.success) {
    throw remoteError(`The remote agent reported usage that is not { inputTokens, outputTokens, model? } with whole token counts`, {
      transport,
      reason: 'malformed_response',
      turn,
      issues: parsed.error.issues.map((issue) => `${issue.path.join('.') || '(usage)'}: ${issue.message}`),
    });
  }
  const { inputTokens, outputTokens, model } = parsed.data;
  return model === undefined ? { inputTokens, outputTokens } : { inputTokens, outputTokens, model };
}

export { untilAborted } from '../shared/untilAborted.js';
