import { fromCallback, type EventObject } from 'xstate';
import type { Agent, StepResult } from '../agent.js';
import { OaoError, RunAbortedError } from '../errors.js';
import { normalizeReviewDecision, normalizeStepOutput } from '../runtime/agentOutput.js';
import { CallScope, type CallPhase } from '../runtime/CallScope.js';
import { isPromiseLike, type RunSession } from '../runtime/RunSession.js';

export interface AgentCallInput {
  readonly session: RunSession;
  readonly phase: CallPhase;
  /** The task (plan), the step input (step) or the step result (review). */
  readonly value: unknown;
}

/** What an agent call sends back to the lifecycle: its checked result, or why it failed. */
export type AgentCallEvent =
  | { readonly type: 'AGENT.DONE'; readonly phase: CallPhase; readonly value: unknown }
  | { readonly type: 'AGENT.ERROR'; readonly phase: CallPhase; readonly error: unknown };

const noop = (): void => {};

function callAgent(session: RunSession, phase: CallPhase, value: unknown, scope: CallScope): unknown {
  const agent = session.agent;
  const ctx = scope.context();
  if (typeof agent === 'function') return agent(value, ctx);
  if (phase === 'step') return agent.invoke(value, ctx);
  if (phase === 'plan') return (agent as Required<Agent>).plan(value, ctx);
  return (agent as Required<Agent>).review(value as StepResult, ctx);
}

function check(phase: CallPhase, raw: unknown, fallback: unknown): unknown {
  if (phase === 'step') return normalizeStepOutput(raw);
  if (phase === 'review') return normalizeReviewDecision(raw);
  // A plan that returns nothing keeps the task as the first step's input.
  return raw === undefined ? fallback : raw;
}

/**
 * One call into the agent as actor logic. A synchronous result is sent back before `start`
 * returns (so `runSync` needs no event loop); an async one when it settles. Stopping the actor
 * aborts the call's signal, rejects its pending tool calls and drops any late result.
 */
export const agentCallLogic = fromCallback<EventObject, AgentCallInput>(({ input, sendBack }) => {
  const { session, phase, value } = input;
  // A stop is already on its way to the machine: do not start more agent work.
  if (session.stopping) return undefined;
  const scope = new CallScope(session, phase, phase === 'plan' ? 0 : session.steps, session.attempt || 1);
  session.setActiveScope(scope);

  // A result (or failure) that arrives after the deadline is a timeout, whatever it says: the step
  // may have blocked the event loop so the deadline's timer could not fire first.
  const late = (): boolean => {
    if (!session.pastDeadline) return false;
    session.timeOut();
    return true;
  };
  const succeed = (raw: unknown): void => {
    if (scope.aborted || late()) return;
    let checked: unknown;
    try {
      checked = check(phase, raw, value);
    } catch (error) {
      sendBack({ type: 'AGENT.ERROR', phase, error } satisfies AgentCallEvent);
      return;
    }
    sendBack({ type: 'AGENT.DONE', phase, value: checked } satisfies AgentCallEvent);
  };
  const fail = (error: unknown): void => {
    if (scope.aborted || late()) return;
    sendBack({ type: 'AGENT.ERROR', phase, error } satisfies AgentCallEvent);
  };

  let result: unknown;
  let thenable: boolean;
  try {
    result = callAgent(session, phase, value, scope);
    // Reading `then` is agent code too (a getter, a Proxy): it may throw.
    thenable = isPromiseLike(result);
  } catch (error) {
    fail(error);
    return () => release(session, scope);
  }
  if (!thenable) {
    succeed(result);
  } else if (session.syncOnly) {
    settleQuietly(result as PromiseLike<unknown>);
    fail(new OaoError('OAO_ERR_ASYNC_IN_SYNC_RUN', `runSync() needs a synchronous agent, but its ${phase} returned a promise`));
  } else {
    // Adopted through a real promise: a `then` that throws, or calls back twice, is handled there.
    Promise.resolve(result).then(succeed, fail);
  }
  return () => release(session, scope);
});

function settleQuietly(result: PromiseLike<unknown>): void {
  Promise.resolve(result).then(noop, noop);
}

function release(session: RunSession, scope: CallScope): void {
  const stopError = session.stopError;
  scope.close(() => stopError ?? normalEnd(scope.phase));
  session.releaseScope(scope);
}

/**
 * The reason a call's signal aborts when the call simply ended. Built without a stack trace: it is
 * no failure, so nothing would read one, and capturing it costs more than the rest of the step's
 * teardown (an adapter that hands the signal to a framework pays it on every step).
 */
function normalEnd(phase: CallScope['phase']): RunAbortedError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new RunAbortedError('OAO_ERR_RUN_FINISHED', `The ${phase} call has ended`);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
