import { createActor } from 'xstate';
import type { AgentLike, ToolSet } from '../agent.js';
import { OaoError } from '../errors.js';
import type { ModelReservation, OaoEvent, OaoEventOf } from '../events/schema.js';
import { agentLifecycleMachine } from '../machines/agentLifecycleMachine.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import { canonicalJson } from '../report/canonicalJson.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Clock } from '../runtime/clock.js';
import { prepareRun } from '../runtime/prepareRun.js';
import type { RecordedModelRefusal, RecordedModelResult, ReplayObserver, RunSession } from '../runtime/RunSession.js';
import { replayLog } from './replayLog.js';

export interface VerifyOptions {
  /** The agent's current code, re-run against the log. */
  readonly agent: AgentLike;
  /**
   * Tool names the run may call. Bodies are never run: each call gets the recorded result. When
   * left out, the recorded run's tool names are used.
   */
  readonly tools?: ToolSet;
}

/** Where a re-run first differs from its recording. */
export interface ReplayDivergence {
  readonly executionId: string;
  readonly seq: number;
  /** The recorded event (type and payload), or null when the re-run emitted more than was recorded. */
  readonly expected: { readonly type: string; readonly payload: unknown } | null;
  readonly actual: { readonly type: string; readonly payload: unknown };
}

/**
 * Re-runs an agent's code against a recorded run: every tool result and model result is served
 * from the log (zero tool bodies, zero model calls), the run ends where the recording ended when
 * something outside the agent stopped it (a cancel, a timeout), and every event the re-run emits
 * is compared with the recorded one (type, payload, order; not times, durations or the identity
 * hash, which a newer runtime may compute differently). Resolves with the recorded report when the
 * two agree; rejects with `OAO_ERR_REPLAY_DIVERGED` naming the first differing event otherwise.
 */
export async function verifyReplay(recorded: readonly OaoEvent[], options: VerifyOptions): Promise<ExecutionReport> {
  const report = replayLog(recorded);
  // A run that never began its lifecycle (its batch had stopped before it started): none of the
  // agent's code ran, so there is nothing to re-run, and nothing that could differ.
  if (!recorded.some((event) => event.type === 'STATE_ENTER')) return report;
  const start = recorded[0] as OaoEventOf<'EXECUTION_START'>;
  const toolResults = new Map<string, OaoEventOf<'TOOL_RESULT'>['payload']>();
  const modelResults = new Map<string, RecordedModelResult>();
  for (const event of recorded) {
    if (event.type === 'TOOL_RESULT') toolResults.set(event.payload.callId, event.payload);
    // An abandoned call had no answer: in the re-run it stays open too, until its step or run ends.
    if (event.type === 'MODEL_RESULT' && event.payload.abandoned !== true) {
      const p = event.payload;
      modelResults.set(p.callId, { ok: p.ok, ...(p.ok ? { output: p.output } : { error: p.error }), usage: p.usage });
    }
  }

  // Stand-ins for the tools: the recorded result of the call with the same id, or its error.
  const names = options.tools === undefined ? start.payload.tools : Object.keys(options.tools);
  const tools: ToolSet = Object.fromEntries(
    names.map((name) => [
      name,
      (_args: unknown, ctx: { readonly callId: string }) => {
        const result = toolResults.get(ctx.callId);
        // Not recorded: the run ended while this call was in flight; it never settles here either.
        if (result === undefined) return new Promise<never>(() => {});
        if (result.ok) return result.result;
        throw Object.assign(new Error(result.error?.message ?? 'tool failed'), { name: result.error?.name ?? 'Error' });
      },
    ]),
  );

  let divergence: ReplayDivergence | undefined;
  // A model call the recording shows refused by its batch's or tenant's budget, for the next call.
  let refusal: RecordedModelRefusal | undefined;
  // The reservation of the recording's next model call (a fitOutput call may have been lowered by such a budget).
  let reservation: ModelReservation | undefined;
  const observer: ReplayObserver = {
    recordedModelResult: (callId) => modelResults.get(callId),
    recordedRefusal: () => {
      const next = refusal;
      refusal = undefined;
      return next;
    },
    recordedReservation: () => {
      const next = reservation;
      reservation = undefined;
      return next;
    },
    observe(event: OaoEvent, session: RunSession) {
      if (divergence !== undefined) return;
      const expected = recorded[event.seq];
      if (expected === undefined || canonicalJson(comparable(expected)) !== canonicalJson(comparable(event))) {
        divergence = {
          executionId: start.executionId,
          seq: event.seq,
          expected: expected === undefined ? null : { type: expected.type, payload: comparable(expected).payload },
          actual: { type: event.type, payload: comparable(event).payload },
        };
        session.cancel(`replay diverged at event ${event.seq}`);
        return;
      }
      // What ended the recorded run from outside the agent happens here at the same point.
      const next = recorded[event.seq + 1];
      reservation = next?.type === 'MODEL_CALL' ? (next.payload.reserved ?? undefined) : undefined;
      // Budgets above the run are not replayed: a model call they refused is refused as recorded.
      if (next?.type === 'MODEL_CALL_DENIED' && (next.payload.scope === 'shared' || next.payload.scope === 'tenant')) {
        const ended = recorded[event.seq + 2];
        const p = ended?.type === 'POLICY_VIOLATION' ? ended.payload : undefined;
        refusal = {
          denied: next.payload,
          violation: {
            rule: p?.rule ?? next.payload.rule,
            message: p?.message ?? next.payload.message,
            limit: p?.limit ?? 0,
            attempted: p?.attempted ?? 0,
            scope: next.payload.scope,
            ...(p?.tool === undefined ? {} : { tool: p.tool }),
          },
        };
        return;
      }
      // A person's decision on a waiting call is served from the log, as it was given.
      if (next?.type === 'APPROVAL_GRANTED' || next?.type === 'APPROVAL_DENIED') {
        const p = next.payload;
        queueMicrotask(() => {
          try {
            if (next.type === 'APPROVAL_DENIED' && next.payload.timedOut) session.expireApproval(p.callId);
            else session.decide(p.callId, { approve: next.type === 'APPROVAL_GRANTED', by: p.by ?? undefined, reason: p.reason ?? undefined, ...(next.type === 'APPROVAL_GRANTED' && next.payload.args !== undefined ? { args: next.payload.args } : {}) });
          } catch {
            // the re-run has no such waiting call: the next event it emits differs and is reported
          }
        });
        return;
      }
      if (next?.type === 'BUDGET_RAISED') {
        const p = next.payload;
        queueMicrotask(() => {
          try {
            session.raise(p.limits, { by: p.by ?? undefined, reason: p.reason ?? undefined });
          } catch {
            // the re-run is not paused here: the next event it emits differs and is reported
          }
        });
        return;
      }
      // A model call is open only once its MODEL_CALL is out: an ending recorded right after it came
      // from outside the run, after the call was open (and is charged its reservation as it ends),
      // so here it comes a microtask later too.
      if (event.type === 'MODEL_CALL' && (next?.type === 'EXECUTION_CANCELLED' || next?.type === 'EXECUTION_TIMEOUT')) {
        const ending = next;
        queueMicrotask(() => (ending.type === 'EXECUTION_CANCELLED' ? session.cancel(ending.payload.reason) : session.timeOut(ending.payload.message)));
        return;
      }
      if (next?.type === 'EXECUTION_CANCELLED') session.cancel(next.payload.reason);
      else if (next?.type === 'EXECUTION_TIMEOUT') session.timeOut(next.payload.message);
      else if (next?.type === 'EXECUTION_FAILED') session.failWith(Object.assign(new Error(next.payload.error.message), { name: next.payload.error.name }));
      else if (next?.type === 'POLICY_VIOLATION' && (next.payload.scope === 'shared' || next.payload.scope === 'tenant')) {
        // Budgets above the run (its batch's, its tenant's) are not replayed: their ending is.
        const p = next.payload;
        session.violate({ rule: p.rule, message: p.message, limit: p.limit, attempted: p.attempted, scope: p.scope, ...(p.tool === undefined ? {} : { tool: p.tool }) });
      }
    },
  };

  const clock = replayClock(start.timestamp);
  const { session } = prepareRun(
    {
      agent: options.agent,
      task: start.payload.task,
      tools,
      executionId: start.executionId,
      agentName: start.payload.agentName,
      ...(start.payload.tenant === undefined ? {} : { tenant: start.payload.tenant }),
      ...(start.payload.batch === undefined ? {} : { batch: start.payload.batch }),
    },
    {
      policy: StrictPolicy.fromLimits(start.payload.policy),
      clock,
      sink: undefined,
      generateId: () => start.executionId,
      syncOnly: false,
      record: true,
      replay: observer,
    },
  );
  const done = new Promise<void>((resolve) => session.onFinish(() => resolve()));
  const actor = createActor(agentLifecycleMachine, { input: { session }, clock });
  session.bindActor(actor);
  actor.subscribe({ error: (error) => session.crash(error) });
  session.begin(false);
  actor.start();
  actor.send({ type: 'START' });
  await done;

  if (divergence === undefined && session.events.length !== recorded.length) {
    const seq = Math.min(session.events.length, recorded.length);
    const missing = recorded[seq];
    divergence = {
      executionId: start.executionId,
      seq,
      expected: missing === undefined ? null : { type: missing.type, payload: comparable(missing).payload },
      actual: { type: 'END_OF_RUN', payload: null },
    };
  }
  if (divergence !== undefined) {
    throw new OaoError(
      'OAO_ERR_REPLAY_DIVERGED',
      `Replay of run "${divergence.executionId}" diverged at event ${divergence.seq}: expected ${divergence.expected?.type ?? 'nothing'}, got ${divergence.actual.type}`,
      { details: { ...divergence } },
    );
  }
  return report;
}

/** An event without what legitimately differs between a recording and its re-run. */
function comparable(event: OaoEvent): { readonly type: string; readonly payload: unknown } {
  const payload = event.payload as Record<string, unknown>;
  switch (event.type) {
    case 'EXECUTION_START': {
      const { executionHash: _hash, ...rest } = payload;
      return { type: event.type, payload: rest };
    }
    case 'STATE_EXIT':
    case 'TOOL_RESULT':
    case 'MODEL_RESULT': {
      const { durationMs: _duration, ...rest } = payload;
      return { type: event.type, payload: rest };
    }
    case 'ERROR': {
      const { retryInMs: _retry, ...rest } = payload;
      return { type: event.type, payload: rest };
    }
    case 'EXECUTION_COMPLETE': {
      const report = event.payload.report;
      return {
        type: event.type,
        payload: {
          status: report.status,
          termination: report.termination,
          totalSteps: report.totalSteps,
          tokenUsage: report.tokenUsage,
          toolUsage: report.toolUsage,
          states: report.stateHistory.map((s) => s.state),
          finalOutput: report.finalOutput,
          error: report.error ?? null,
        },
      };
    }
    default:
      return { type: event.type, payload };
  }
}

/**
 * The re-run's clock: it starts at the recording's start and fires every timer on the next turn
 * of the event loop (retry backoff need not be waited for; the deadline is never armed).
 */
function replayClock(startedAt: number): Clock {
  let now = startedAt;
  return {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) =>
      setImmediate(() => {
        now += ms;
        fn();
      }),
    clearTimeout: (id: unknown) => clearImmediate(id as NodeJS.Immediate),
  };
}
