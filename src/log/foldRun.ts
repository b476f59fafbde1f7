import type { SerializedError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import type { PolicyLimits } from '../policy/schema.js';
import type { ApprovalRecord, Cost, ExecutionReport, JsonValue, LifecycleState, Termination } from '../report/schema.js';

/**
 * What a run's log says about it: a pure fold over its events (no I/O, no XState, no clock). The
 * live run, replay, stores and what-if read a run through this one definition. Applied to a
 * complete log it yields the same report as the run's own `EXECUTION_COMPLETE`; applied to a
 * log cut short (a crash) it yields where the run stood.
 */
export interface RunFold {
  readonly executionId: string;
  readonly agentName: string;
  readonly executionHash: string;
  readonly task: unknown;
  readonly policy: PolicyLimits;
  readonly tools: readonly string[];
  /** The run's tenant, when its EXECUTION_START names one. */
  readonly tenant?: string;
  /** The queued batch the run belongs to, when its EXECUTION_START names one. */
  readonly batch?: string;
  /** Timestamp of EXECUTION_START (ms since the epoch). */
  readonly startedAt: number;
  /** The next `seq`: how many events were folded. */
  readonly seq: number;
  readonly state: LifecycleState | undefined;
  readonly stateHistory: readonly { readonly state: LifecycleState; readonly enteredAt: number; readonly durationMs: number }[];
  /** Steps started (a retried step counts once). */
  readonly steps: number;
  /** Attempt of the current step. */
  readonly attempt: number;
  readonly tokens: { readonly input: number; readonly output: number; readonly total: number };
  /** Micro-dollars spent: the sum of the usage events' `costMicros`. */
  readonly costMicros: number;
  readonly toolCalls: number;
  readonly toolCallsByName: ReadonlyMap<string, number>;
  /** Output of the last completed step. */
  readonly lastOutput: JsonValue;
  /** How the run is bound to end, once decided (the first decision wins). */
  readonly termination: Termination | undefined;
  readonly error: SerializedError | undefined;
  /** The report, once the fold reached EXECUTION_COMPLETE. */
  readonly report: ExecutionReport | undefined;
  /** Timestamp of the last folded event. */
  readonly lastTimestamp: number;
  /**
   * Time that is not live: the gaps before each EXECUTION_RESUMED (no process held the run) and
   * the time while a tool call waited for approval. Not charged to `timeoutMs`.
   */
  readonly idleMs: number;
  /** Tool calls waiting for approval now, by call id. */
  readonly pendingApprovals: ReadonlyMap<string, PendingApproval>;
  /** Since when at least one call waits for approval (ms); undefined while none does. */
  readonly waitingSince: number | undefined;
  /** Every approval decision so far. */
  readonly approvals: readonly ApprovalRecord[];
  /** The run waits for a limit to be raised (BUDGET_EXHAUSTED without a BUDGET_RAISED since). */
  readonly budgetWaiting: boolean;
}

/** A tool call waiting for a person's decision. */
export interface PendingApproval {
  readonly callId: string;
  readonly tool: string;
  readonly args: unknown;
  readonly step: number;
  /** When it was requested (ms since the epoch). */
  readonly requestedAt: number;
}

/** Non-live time up to `now`, counting an approval wait still open. */
export function idleUntil(state: RunFold, now: number): number {
  return state.idleMs + (state.waitingSince === undefined ? 0 : Math.max(0, now - state.waitingSince));
}

/** Folds one event into the state before it, which stays as it was. Throws a plain Error for a log that is out of order. */
export function applyEvent(state: RunFold | undefined, event: OaoEvent): RunFold {
  if (state === undefined) return firstFold(event);
  checkNext(state, event);
  // A copy whose collections are still the state's: `advance` copies each one it changes.
  const next: WorkingFold = { ...(state as WorkingFold) };
  advance(next, event, false);
  return next;
}

/**
 * Folds a whole log (or its prefix). The same steps as {@link applyEvent}, taken on one working
 * fold that owns its collections, so a log of n events costs n updates rather than n copies.
 */
export function foldRun(events: Iterable<OaoEvent>): RunFold | undefined {
  let fold: WorkingFold | undefined;
  for (const event of events) {
    if (fold === undefined) {
      fold = firstFold(event);
      continue;
    }
    checkNext(fold, event);
    advance(fold, event, true);
  }
  return fold;
}

/** A fold being built: every field writable, every collection one `advance` may change. */
type WorkingFold = {
  -readonly [K in keyof RunFold]: RunFold[K];
} & {
  stateHistory: { readonly state: LifecycleState; readonly enteredAt: number; readonly durationMs: number }[];
  toolCallsByName: Map<string, number>;
  pendingApprovals: Map<string, PendingApproval>;
  approvals: ApprovalRecord[];
};

function firstFold(event: OaoEvent): WorkingFold {
  if (event.type !== 'EXECUTION_START' || event.seq !== 0) {
    throw new Error(`A run's log starts with EXECUTION_START at seq 0, not ${event.type} at seq ${event.seq}`);
  }
  const p = event.payload;
  return {
    executionId: event.executionId,
    agentName: p.agentName,
    executionHash: p.executionHash,
    task: p.task,
    policy: p.policy,
    tools: p.tools,
    ...(p.tenant === undefined ? {} : { tenant: p.tenant }),
    ...(p.batch === undefined ? {} : { batch: p.batch }),
    startedAt: event.timestamp,
    seq: 1,
    state: undefined,
    stateHistory: [],
    steps: 0,
    attempt: 0,
    tokens: { input: 0, output: 0, total: 0 },
    costMicros: 0,
    toolCalls: 0,
    toolCallsByName: new Map(),
    lastOutput: null,
    termination: undefined,
    error: undefined,
    report: undefined,
    lastTimestamp: event.timestamp,
    idleMs: 0,
    pendingApprovals: new Map(),
    waitingSince: undefined,
    approvals: [],
    budgetWaiting: false,
  };
}

function checkNext(state: RunFold, event: OaoEvent): void {
  if (event.seq !== state.seq || event.executionId !== state.executionId) {
    throw new Error(`Expected event ${state.seq} of run "${state.executionId}", got event ${event.seq} of run "${event.executionId}"`);
  }
}

/**
 * What `event` changes: the one definition of the fold, applied to `next`, the fold before it.
 * With `owned`, `next`'s collections are its own and change in place; without, they are shared
 * with an earlier fold, and each one that changes is copied first. Objects held in the
 * collections (history entries, approvals) are replaced, never changed.
 */
function advance(next: WorkingFold, event: OaoEvent, owned: boolean): void {
  switch (event.type) {
    case 'EXECUTION_START':
      throw new Error(`Run "${next.executionId}" has a second EXECUTION_START at seq ${event.seq}`);
    case 'STATE_EXIT': {
      const history = owned ? next.stateHistory : next.stateHistory.slice();
      const last = history[history.length - 1];
      if (last !== undefined) history[history.length - 1] = { ...last, durationMs: event.payload.durationMs };
      next.stateHistory = history;
      break;
    }
    case 'STATE_ENTER': {
      const history = owned ? next.stateHistory : next.stateHistory.slice();
      history.push({ state: event.payload.state, enteredAt: event.timestamp, durationMs: 0 });
      next.state = event.payload.state;
      next.stateHistory = history;
      break;
    }
    case 'STEP_START':
      if (event.payload.attempt === 1) next.steps += 1;
      next.attempt = event.payload.attempt;
      break;
    case 'STEP_COMPLETE':
      next.lastOutput = event.payload.output as JsonValue;
      break;
    case 'TOKEN_USAGE': {
      const p = event.payload;
      next.tokens = { input: next.tokens.input + p.input, output: next.tokens.output + p.output, total: next.tokens.total + p.total };
      if (p.costMicros !== undefined) next.costMicros = Math.min(Number.MAX_SAFE_INTEGER, next.costMicros + p.costMicros);
      break;
    }
    case 'TOOL_CALL': {
      const byName = owned ? next.toolCallsByName : new Map(next.toolCallsByName);
      byName.set(event.payload.tool, (byName.get(event.payload.tool) ?? 0) + 1);
      next.toolCalls += 1;
      next.toolCallsByName = byName;
      break;
    }
    case 'POLICY_VIOLATION': {
      if (next.termination !== undefined) break;
      const p = event.payload;
      next.termination =
        p.scope === 'shared' || p.scope === 'tenant'
          ? { reason: 'policy_violation', rule: p.rule, scope: p.scope, message: p.message }
          : { reason: 'policy_violation', rule: p.rule, message: p.message };
      next.error = {
        name: 'PolicyViolationError',
        code: 'OAO_ERR_POLICY_VIOLATION',
        message: p.message,
        details: {
          rule: p.rule,
          limit: p.limit,
          attempted: p.attempted,
          ...(p.tool === undefined ? {} : { tool: p.tool }),
          ...(p.scope === 'shared' || p.scope === 'tenant' ? { scope: p.scope } : {}),
        },
      };
      break;
    }
    case 'EXECUTION_CANCELLED':
      if (next.termination !== undefined) break;
      next.termination = { reason: 'cancelled', message: event.payload.reason };
      next.error = { name: 'RunAbortedError', code: 'OAO_ERR_CANCELLED', message: `The run was cancelled: ${event.payload.reason}` };
      break;
    case 'EXECUTION_TIMEOUT': {
      if (next.termination !== undefined) break;
      const message = event.payload.message ?? `The run exceeded its time limit of ${event.payload.timeoutMs} ms`;
      next.termination = { reason: 'timeout', message };
      next.error = { name: 'RunAbortedError', code: 'OAO_ERR_TIMEOUT', message };
      break;
    }
    case 'ERROR':
      if (event.payload.willRetry) {
        next.attempt += 1;
        break;
      }
      if (next.termination !== undefined) break;
      next.termination = { reason: 'error', message: event.payload.error.message };
      next.error = event.payload.error;
      break;
    case 'EXECUTION_FAILED':
      if (next.termination !== undefined) break;
      next.termination = { reason: 'error', message: event.payload.error.message };
      next.error = event.payload.error;
      break;
    case 'EXECUTION_RESUMED':
      if (next.waitingSince !== undefined) {
        // The wait before the gap ends at the log's last event; the gap itself is the resume's idle time.
        next.idleMs = next.idleMs + Math.max(0, next.lastTimestamp - next.waitingSince) + event.payload.idleMs;
        next.waitingSince = event.timestamp;
      } else {
        next.idleMs += event.payload.idleMs;
      }
      break;
    case 'BUDGET_EXHAUSTED':
      next.budgetWaiting = true;
      if (next.waitingSince === undefined) next.waitingSince = event.timestamp;
      break;
    case 'BUDGET_RAISED': {
      next.budgetWaiting = false;
      // The raised limits are the run's limits from here on.
      next.policy = { ...next.policy, ...event.payload.limits };
      if (next.pendingApprovals.size === 0 && next.waitingSince !== undefined) {
        next.idleMs += Math.max(0, event.timestamp - next.waitingSince);
        next.waitingSince = undefined;
      }
      break;
    }
    case 'APPROVAL_REQUESTED': {
      const p = event.payload;
      const pending = owned ? next.pendingApprovals : new Map(next.pendingApprovals);
      pending.set(p.callId, { callId: p.callId, tool: p.tool, args: p.args, step: p.step, requestedAt: event.timestamp });
      next.pendingApprovals = pending;
      if (next.waitingSince === undefined) next.waitingSince = event.timestamp;
      break;
    }
    case 'APPROVAL_GRANTED':
    case 'APPROVAL_DENIED': {
      const p = event.payload;
      const pending = owned ? next.pendingApprovals : new Map(next.pendingApprovals);
      pending.delete(p.callId);
      next.pendingApprovals = pending;
      if (pending.size === 0 && !next.budgetWaiting && next.waitingSince !== undefined) {
        next.idleMs += Math.max(0, event.timestamp - next.waitingSince);
        next.waitingSince = undefined;
      }
      const approvals = owned ? next.approvals : next.approvals.slice();
      approvals.push({
        callId: p.callId,
        tool: p.tool,
        decision: event.type === 'APPROVAL_GRANTED' ? 'approved' : event.payload.timedOut ? 'timeout' : 'denied',
        by: p.by,
        reason: p.reason,
        ...(event.type === 'APPROVAL_GRANTED' && event.payload.args !== undefined ? { args: event.payload.args } : {}),
        decidedAt: new Date(event.timestamp).toISOString(),
      });
      next.approvals = approvals;
      break;
    }
    case 'EXECUTION_COMPLETE':
      next.report = buildReport(next, event.timestamp);
      break;
    default:
      // PLAN_COMPLETE, REVIEW_DECISION, MODEL_CALL, MODEL_RESULT, TOOL_RESULT, TOOL_DENIED: facts
      // for replay and audit that change no counter (their spend arrives as its own event).
      break;
  }
  next.seq += 1;
  next.lastTimestamp = event.timestamp;
}

/**
 * What a run has cost so far, as its log says: present when its policy has prices or a cost
 * limit (as the live run decides), undefined otherwise.
 */
export function costOf(state: RunFold): Cost | undefined {
  if (state.policy.pricing === undefined && state.policy.maxCostUsd === undefined) return undefined;
  return { micros: state.costMicros, usd: state.costMicros / 1_000_000 };
}

function costPart(state: RunFold): { cost?: Cost } {
  const cost = costOf(state);
  return cost === undefined ? {} : { cost };
}

/**
 * The report a run's log implies, at `finishedAt`: SUCCESS when the run reached TERMINATE with
 * nothing deciding otherwise, FAILED with the recorded termination otherwise.
 */
export function buildReport(state: RunFold, finishedAt: number): ExecutionReport {
  // As the live run decides: reaching TERMINATE is success (the chart only goes there undisturbed).
  const success = state.state === 'TERMINATE';
  const termination: Termination = success ? { reason: 'completed' } : (state.termination ?? { reason: 'error', message: 'The run failed' });
  const byTool: Record<string, number> = Object.fromEntries(state.toolCallsByName);
  return {
    executionId: state.executionId,
    agentName: state.agentName,
    status: success ? 'SUCCESS' : 'FAILED',
    termination,
    totalSteps: state.steps,
    tokenUsage: { ...state.tokens },
    ...costPart(state),
    toolUsage: { total: state.toolCalls, byTool },
    executionTimeMs: Math.max(0, finishedAt - state.startedAt - idleUntil(state, finishedAt)),
    wallTimeMs: Math.max(0, finishedAt - state.startedAt),
    stateHistory: state.stateHistory.map((entry) => ({ ...entry })),
    ...(state.approvals.length === 0 ? {} : { approvals: state.approvals.map((record) => ({ ...record })) }),
    finalOutput: state.lastOutput,
    ...(!success && state.error !== undefined ? { error: state.error } : {}),
    startedAt: new Date(state.startedAt).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
    executionHash: state.executionHash,
  };
}
