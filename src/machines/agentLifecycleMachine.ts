import { and, assign, setup } from 'xstate';
import type { ReviewDecision } from '../agent.js';
import { agentCallLogic, type AgentCallEvent } from '../actors/agentCall.js';
import { isRetryable } from '../errors.js';
import { retryDelay } from '../policy/checks.js';
import type { ExecutionReport, LifecycleState } from '../report/schema.js';
import type { NormalizedStep } from '../runtime/agentOutput.js';
import type { ApprovalEvent, RunSession, StopEvent } from '../runtime/RunSession.js';
import type { ResumePointKind } from '../log/resumePoint.js';

export interface LifecycleInput {
  readonly session: RunSession;
}

/**
 * Kept small on purpose: `assign` copies the context. Counters, events and history live in the
 * run's ledger (`session`); the context holds only what flows from state to state.
 */
export interface LifecycleContext {
  readonly session: RunSession;
  /** The input of the next (or current) step. */
  readonly input: unknown;
}

export type LifecycleEvent = AgentCallEvent | StopEvent | ApprovalEvent | { type: 'START' };

type Done = Extract<AgentCallEvent, { type: 'AGENT.DONE' }>;
type Failed = Extract<AgentCallEvent, { type: 'AGENT.ERROR' }>;

const FAILED = '#agentLifecycle.FAILED';
const TERMINATE = '#agentLifecycle.TERMINATE';
const EXECUTE = '#agentLifecycle.EXECUTE';

/**
 * The governed lifecycle of one agent run: INIT -> PLAN -> EXECUTE -> REVIEW -> TERMINATE, and
 * FAILED from anywhere. Every edge that lets the agent do more is guarded by the policy, and every
 * way out (done, violation, timeout, cancel, error) is an explicit transition to a final state.
 * Effects are the `agentCall` actor and the named actions, so tests can `provide()` others.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { agentLifecycleMachine } from 'open-agent-orchestrator';
 * // Visualize it: paste into the Stately editor, or run it with `inspect` set (see README).
 * console.log(agentLifecycleMachine.root.states.EXECUTE?.key); // 'EXECUTE'
 * ```
 */
export const agentLifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    input: {} as LifecycleInput,
    events: {} as LifecycleEvent,
    output: {} as ExecutionReport,
  },
  actors: {
    agentCall: agentCallLogic,
  },
  guards: {
    stopRequested: ({ context }) => context.session.stopping,
    /** A run continued from its log (orch.resume) goes on where the log left it. */
    resumesAt: ({ context }, params: { kind: ResumePointKind }) => context.session.resumeKind === params.kind,
    /** A new run, not one continued from its log: none of the resume edges can apply. */
    freshRun: ({ context }) => context.session.resumeKind === undefined,
    hasPlanner: ({ context }) => context.session.hasPlanner,
    hasReviewer: ({ context }) => context.session.hasReviewer,
    canStartStep: ({ context }) => context.session.canStartStep(),
    /** The step budget is spent and the policy pauses there (onLimit.maxSteps: 'pause'). */
    stepBudgetPauses: ({ context }) => context.session.stepBudgetPauses,
    reviewSaysDone: ({ event }) => ((event as Done).value as ReviewDecision).done,
    outputOverBudget: ({ context, event }) => {
      const usage = ((event as Done).value as NormalizedStep).usage;
      return usage !== null && context.session.tokensWouldExceed(usage.total);
    },
    canRetry: ({ context, event }) => {
      const session = context.session;
      return (
        !session.stopping &&
        !session.syncOnly &&
        session.attempt <= session.limits.retry.maxRetries &&
        isRetryable((event as Failed).error)
      );
    },
  },
  actions: {
    enterState: ({ context }, params: { state: LifecycleState }) => context.session.enterState(params.state),
    recordPlan: ({ context, event }) => context.session.recordPlan((event as Done).value),
    takePlan: assign({ input: ({ event }) => (event as Done).value }),
    takeResumeInput: assign({ input: ({ context }) => context.session.resumeInput }),
    beginStep: ({ context }) => {
      const session = context.session;
      // A resumed run's step that was in flight is the same step: not counted or announced again.
      if (session.takeResumedStep()) return;
      session.enterState('EXECUTE');
      session.beginStep();
      session.announceAttempt(context.input);
    },
    announceAttempt: ({ context }) => context.session.announceAttempt(context.input),
    completeStep: ({ context, event }) => context.session.completeStep(context.input, (event as Done).value as NormalizedStep),
    recordReview: ({ context, event }) => context.session.recordReview((event as Done).value as ReviewDecision),
    takeReviewInput: assign({
      input: ({ context, event }) => {
        const decision = (event as Done).value as ReviewDecision;
        return !decision.done && decision.input !== undefined ? decision.input : context.input;
      },
    }),
    refuseStep: ({ context }) => context.session.refuseStep(),
    exhaustSteps: ({ context }) => context.session.exhaustSteps(),
    scheduleRetry: ({ context, event }) => context.session.agentError((event as Failed).phase, (event as Failed).error, true),
    failWithAgentError: ({ context, event }) =>
      context.session.agentError((event as Failed).phase, (event as Failed).error, false),
    finish: ({ context }, params: { status: 'SUCCESS' | 'FAILED' }) => {
      context.session.enterState(params.status === 'SUCCESS' ? 'TERMINATE' : 'FAILED');
      context.session.finish(params.status);
    },
  },
  delays: {
    retryBackoff: ({ context }) => retryDelay(context.session.limits, context.session.attempt - 1),
  },
}).createMachine({
  id: 'agentLifecycle',
  context: ({ input }) => ({ session: input.session, input: input.session.task }),
  initial: 'INIT',
  output: ({ context }) => context.session.report as ExecutionReport,
  on: {
    CANCEL: { target: '.FAILED' },
    DEADLINE: { target: '.FAILED' },
    VIOLATION: { target: '.FAILED' },
    STORE_FAILED: { target: '.FAILED' },
    PLUGIN_FAILED: { target: '.FAILED' },
    PRICE_UNKNOWN: { target: '.FAILED' },
  },
  states: {
    INIT: {
      entry: { type: 'enterState', params: { state: 'INIT' } },
      // An explicit START, not an eventless edge: XState resolves eventless transitions when the actor
      // is created and starts the invoked children of that initial state before running entry
      // actions, which would call the agent before the run has even recorded that it began.
      // A resumed run (orch.resume) enters the state its log left open; one that never got past
      // INIT starts as a new run would.
      on: {
        START: [
          { guard: 'stopRequested', target: 'FAILED' },
          // Checked first so that a new run (nearly every run) does not evaluate every resume edge.
          { guard: 'freshRun', target: 'PLAN' },
          { guard: { type: 'resumesAt', params: { kind: 'plan' } }, target: 'PLAN' },
          { guard: { type: 'resumesAt', params: { kind: 'step' } }, target: 'EXECUTE.running', actions: 'takeResumeInput' },
          { guard: { type: 'resumesAt', params: { kind: 'retry' } }, target: 'EXECUTE.backingOff', actions: 'takeResumeInput' },
          { guard: { type: 'resumesAt', params: { kind: 'review' } }, target: 'REVIEW', actions: 'takeResumeInput' },
          {
            guard: and([{ type: 'resumesAt', params: { kind: 'next' as const } }, 'canStartStep']),
            target: 'EXECUTE',
            actions: 'takeResumeInput',
          },
          {
            guard: and([{ type: 'resumesAt', params: { kind: 'next' as const } }, 'stepBudgetPauses']),
            target: 'REVIEW.AWAITING_BUDGET',
            actions: 'takeResumeInput',
          },
          { guard: { type: 'resumesAt', params: { kind: 'next' } }, target: 'FAILED', actions: 'refuseStep' },
          { guard: { type: 'resumesAt', params: { kind: 'terminate' } }, target: 'TERMINATE' },
          { target: 'PLAN' },
        ],
      },
    },
    PLAN: {
      entry: { type: 'enterState', params: { state: 'PLAN' } },
      initial: 'deciding',
      states: {
        deciding: {
          // The first step is guarded like every other: a batch's shared maxSteps may already be spent.
          always: [
            { guard: 'hasPlanner', target: 'planning' },
            { guard: 'canStartStep', target: EXECUTE },
            { guard: 'stepBudgetPauses', target: 'AWAITING_BUDGET' },
            { target: FAILED, actions: 'refuseStep' },
          ],
        },
        // The step budget is spent and the policy pauses: a raise (BUDGET.RAISED) lets the run go on.
        AWAITING_BUDGET: {
          entry: 'exhaustSteps',
          on: { 'BUDGET.RAISED': [{ guard: 'canStartStep', target: EXECUTE }, { target: 'AWAITING_BUDGET', reenter: true }] },
        },
        planning: {
          invoke: {
            src: 'agentCall',
            input: ({ context }) => ({ session: context.session, phase: 'plan' as const, value: context.session.task }),
          },
          on: {
            'AGENT.DONE': [
              { guard: 'canStartStep', target: EXECUTE, actions: ['recordPlan', 'takePlan'] },
              { guard: 'stepBudgetPauses', target: 'AWAITING_BUDGET', actions: ['recordPlan', 'takePlan'] },
              { target: FAILED, actions: ['recordPlan', 'refuseStep'] },
            ],
            'AGENT.ERROR': { target: FAILED, actions: 'failWithAgentError' },
          },
        },
      },
    },
    EXECUTE: {
      // Records EXECUTE, counts the step and announces its first attempt, in one action.
      entry: 'beginStep',
      initial: 'running',
      states: {
        running: {
          invoke: {
            src: 'agentCall',
            input: ({ context }) => ({ session: context.session, phase: 'step' as const, value: context.input }),
          },
          // The step stays in flight while a tool call it made waits for a person's decision: the
          // invoked call lives on `running`, so waiting is a substate of it, not a sibling.
          initial: 'working',
          states: {
            working: { on: { 'APPROVAL.WAIT': 'AWAITING_APPROVAL' } },
            AWAITING_APPROVAL: { on: { 'APPROVAL.DONE': 'working' } },
            // A tool call reached maxToolCalls and the policy pauses there (onLimit.maxToolCalls: 'pause').
            AWAITING_BUDGET: { on: { 'BUDGET.RAISED': 'working' } },
          },
          on: {
            'BUDGET.WAIT': '.AWAITING_BUDGET',
            'AGENT.DONE': [
              { guard: 'outputOverBudget', target: FAILED, actions: 'completeStep' },
              { target: '#agentLifecycle.REVIEW', actions: 'completeStep' },
            ],
            'AGENT.ERROR': [
              { guard: 'canRetry', target: 'backingOff', actions: 'scheduleRetry' },
              { target: FAILED, actions: 'failWithAgentError' },
            ],
          },
        },
        backingOff: {
          after: { retryBackoff: { target: 'running', actions: 'announceAttempt' } },
        },
      },
    },
    REVIEW: {
      entry: { type: 'enterState', params: { state: 'REVIEW' } },
      initial: 'deciding',
      states: {
        deciding: {
          always: [{ guard: 'hasReviewer', target: 'reviewing' }, { target: TERMINATE }],
        },
        AWAITING_BUDGET: {
          entry: 'exhaustSteps',
          on: { 'BUDGET.RAISED': [{ guard: 'canStartStep', target: EXECUTE }, { target: 'AWAITING_BUDGET', reenter: true }] },
        },
        reviewing: {
          invoke: {
            src: 'agentCall',
            input: ({ context }) => ({ session: context.session, phase: 'review' as const, value: context.session.lastStep }),
          },
          on: {
            'AGENT.DONE': [
              { guard: 'reviewSaysDone', target: TERMINATE, actions: 'recordReview' },
              { guard: 'canStartStep', target: EXECUTE, actions: ['recordReview', 'takeReviewInput'] },
              { guard: 'stepBudgetPauses', target: 'AWAITING_BUDGET', actions: ['recordReview', 'takeReviewInput'] },
              { target: FAILED, actions: ['recordReview', 'refuseStep'] },
            ],
            'AGENT.ERROR': { target: FAILED, actions: 'failWithAgentError' },
          },
        },
      },
    },
    TERMINATE: {
      type: 'final',
      entry: { type: 'finish', params: { status: 'SUCCESS' } },
    },
    FAILED: {
      type: 'final',
      entry: { type: 'finish', params: { status: 'FAILED' } },
    },
  },
});

export type AgentLifecycleMachine = typeof agentLifecycleMachine;
