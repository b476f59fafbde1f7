import type { PolicyViolation } from '../errors.js';
import type { PolicyLimits } from './schema.js';

/**
 * Pure policy decisions. Each is asked *before* the spend it governs and answers with the
 * violation that the spend would cause, or null when it is allowed. Reaching a limit is allowed;
 * only going past it is a violation.
 */

/** May step number `stepsStarted + 1` start? */
export function checkStepStart(limits: PolicyLimits, stepsStarted: number): PolicyViolation | null {
  if (stepsStarted + 1 <= limits.maxSteps) return null;
  return {
    rule: 'max_steps',
    message: `Step ${stepsStarted + 1} would exceed maxSteps (${limits.maxSteps})`,
    limit: limits.maxSteps,
    attempted: stepsStarted + 1,
  };
}

/** May one more call of `tool` run, given the calls already made? */
export function checkToolCall(
  limits: PolicyLimits,
  tool: string,
  totalCalls: number,
  callsOfTool: number,
): PolicyViolation | null {
  const rules = limits.tools;
  if (rules.deny.includes(tool)) {
    return { rule: 'tool_denied', message: `Tool "${tool}" is on the policy's deny list`, limit: null, attempted: null, tool };
  }
  if (rules.allow !== null && !rules.allow.includes(tool)) {
    return {
      rule: 'tool_not_allowed',
      message: `Tool "${tool}" is not on the policy's allow list`,
      limit: null,
      attempted: null,
      tool,
    };
  }
  if (totalCalls + 1 > limits.maxToolCalls) {
    return {
      rule: 'max_tool_calls',
      message: `Tool call ${totalCalls + 1} would exceed maxToolCalls (${limits.maxToolCalls})`,
      limit: limits.maxToolCalls,
      attempted: totalCalls + 1,
      tool,
    };
  }
  // Own keys only: a tool may be named "constructor" or "toString".
  const perTool = Object.hasOwn(rules.maxCalls, tool) ? rules.maxCalls[tool] : undefined;
  if (perTool !== undefined && callsOfTool + 1 > perTool) {
    return {
      rule: 'tool_max_calls',
      message: `Call ${callsOfTool + 1} of tool "${tool}" would exceed its limit (${perTool})`,
      limit: perTool,
      attempted: callsOfTool + 1,
      tool,
    };
  }
  return null;
}

/**
 * Is a run that has used `totalTokens` over its token budget? A total that is not a safe integer
 * (a sum that lost precision) is always over it.
 */
export function checkTokens(limits: PolicyLimits, totalTokens: number): PolicyViolation | null {
  if (totalTokens <= limits.maxTokens) return null;
  if (!Number.isSafeInteger(totalTokens)) {
    return {
      rule: 'max_tokens',
      message: `Token usage would pass ${Number.MAX_SAFE_INTEGER} (the largest safe integer) and exceeds maxTokens (${limits.maxTokens})`,
      limit: limits.maxTokens,
      attempted: Number.MAX_SAFE_INTEGER,
    };
  }
  return {
    rule: 'max_tokens',
    message: `Token usage ${totalTokens} exceeds maxTokens (${limits.maxTokens})`,
    limit: limits.maxTokens,
    attempted: totalTokens,
  };
}

/** May a model call start, given the tokens already spent? Any call would spend at least one more. */
/** Output tokens a model call reserves when neither it nor its model states a maximum. */
export const DEFAULT_RESERVE_OUTPUT_TOKENS = 1024;

/**
 * Would a model call that reserves `reservation` tokens fit in the run's token budget, with
 * `committed` tokens spent or held by other calls already? Its worst case must fit: a call that
 * could end above the budget is refused before it is sent.
 */
export function checkReservation(limits: PolicyLimits, committed: number, reservation: number): PolicyViolation | null {
  const attempted = committed + reservation;
  if (attempted <= limits.maxTokens) return null;
  return {
    rule: 'max_tokens',
    message: `Model call refused: it may use up to ${reservation} tokens, but ${Math.max(0, limits.maxTokens - committed)} of maxTokens (${limits.maxTokens}) are left`,
    limit: limits.maxTokens,
    attempted,
  };
}

/**
 * The most output a model call that may be sent with a lower cap reserves: its own cap (or the
 * default reserve) when that fits in `room` (the tokens the tightest budget covering the run has
 * left, after what is spent and held) after its `input` tokens; otherwise what is left after the
 * prompt. With nothing left after the prompt the cap stays, and the call is refused as any other.
 */
export function fitOutputTokens(input: number, output: number, room: number): number {
  const left = room - input;
  return left > 0 && left < output ? left : output;
}

export function checkModelCall(limits: PolicyLimits, totalTokens: number): PolicyViolation | null {
  if (totalTokens < limits.maxTokens) return null;
  return {
    rule: 'max_tokens',
    message: `Model call refused: the token budget (${limits.maxTokens}) is spent`,
    limit: limits.maxTokens,
    attempted: totalTokens + 1,
  };
}

/**
 * Has a run that has been live for `elapsedMs` passed its deadline? Reaching the limit exactly is
 * allowed. Asked when an agent's result arrives, so a step that blocked the event loop past the
 * deadline (and so kept the timer from firing) still ends as a timeout.
 */
export function deadlinePassed(limits: PolicyLimits, elapsedMs: number): boolean {
  return elapsedMs > limits.timeoutMs;
}

/** The delay before retry number `retry` (1-based) of a failed step. */
export function retryDelay(limits: PolicyLimits, retry: number): number {
  const { initialDelayMs, backoffFactor, maxDelayMs } = limits.retry;
  return Math.min(maxDelayMs, Math.round(initialDelayMs * backoffFactor ** (retry - 1)));
}
