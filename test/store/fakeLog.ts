import { createHash } from 'node:crypto';
import {
  canonicalJson,
  DEFAULT_LIMITS,
  oaoEventSchema,
  type EventCounters,
  type ExecutionReport,
  type LifecycleState,
  type OaoEvent,
} from '../../src/index.js';

/** 2026-01-01T00:00:00.000Z: the default start of fake runs. */
export const FAKE_EPOCH = Date.UTC(2026, 0, 1);

export interface FakeRunOptions {
  /** @default 'fake-agent' */
  readonly agentName?: string;
  /** Timestamp of `EXECUTION_START` (ms since the epoch; may have a fraction). @default FAKE_EPOCH */
  readonly startedAt?: number;
  /** Agent steps the run takes. @default 1 */
  readonly steps?: number;
  /**
   * How the run ends: with a report (`SUCCESS`, `FAILED`), or `running`: the log of a run still in
   * progress, which stops after its last step (no report).
   * @default 'SUCCESS'
   */
  readonly status?: 'SUCCESS' | 'FAILED' | 'running';
  /** From `EXECUTION_START` to `EXECUTION_COMPLETE`; events are spread evenly over it. @default 12 */
  readonly durationMs?: number;
}

/**
 * A valid event log of one run, shaped like the runtime's: `EXECUTION_START`, INIT, PLAN, then per
 * step EXECUTE (`STEP_START`, `STEP_COMPLETE`) and REVIEW, then TERMINATE or FAILED and
 * `EXECUTION_COMPLETE`. One step gives 13 events, as a trivial governed run does. Every event
 * passes `oaoEventSchema` (checked here, so a broken fake fails loudly, not as a store defect).
 */
export function fakeRun(executionId: string, options: FakeRunOptions = {}): OaoEvent[] {
  const agentName = options.agentName ?? 'fake-agent';
  const startedAt = options.startedAt ?? FAKE_EPOCH;
  const steps = options.steps ?? 1;
  const status = options.status ?? 'SUCCESS';
  const durationMs = options.durationMs ?? 12;
  const finalState: LifecycleState = status === 'FAILED' ? 'FAILED' : 'TERMINATE';

  type Draft = { type: OaoEvent['type']; state: LifecycleState; payload: unknown; steps: number };
  const drafts: Draft[] = [];
  const add = (type: OaoEvent['type'], state: LifecycleState, payload: unknown, stepsSoFar: number): void => {
    drafts.push({ type, state, payload, steps: stepsSoFar });
  };
  const enterExit = (state: LifecycleState, stepsSoFar: number, between: () => void = () => {}): void => {
    add('STATE_ENTER', state, { state }, stepsSoFar);
    between();
    add('STATE_EXIT', state, { state, durationMs: 0.5 }, stepsSoFar);
  };

  add(
    'EXECUTION_START',
    'INIT',
    {
      agentName,
      task: { prompt: `task of ${executionId}`, n: 1 },
      policy: structuredClone(DEFAULT_LIMITS),
      tools: ['search'],
      executionHash: hashOf(executionId),
    },
    0,
  );
  enterExit('INIT', 0);
  enterExit('PLAN', 0);
  for (let step = 1; step <= steps; step += 1) {
    enterExit('EXECUTE', step, () => {
      add('STEP_START', 'EXECUTE', { step, attempt: 1, input: `input ${step}` }, step);
      add('STEP_COMPLETE', 'EXECUTE', { step, attempt: 1, output: { text: `output ${step}`, ok: true }, usage: null }, step);
    });
    if (status !== 'running' || step < steps) enterExit('REVIEW', step);
  }
  if (status !== 'running') {
    add('STATE_ENTER', finalState, { state: finalState }, steps);
    add('EXECUTION_COMPLETE', finalState, { report: undefined }, steps);
  }

  const count = status === 'running' ? drafts.length + 2 : drafts.length;
  const timestampOf = (seq: number): number => startedAt + (durationMs * seq) / (count - 1);
  const events = drafts.map((draft, seq): OaoEvent => {
    const counters: EventCounters = { steps: draft.steps, tokens: 0, toolCalls: 0 };
    const payload =
      draft.type === 'EXECUTION_COMPLETE'
        ? { report: fakeReport(executionId, agentName, status === 'FAILED' ? 'FAILED' : 'SUCCESS', startedAt, durationMs, steps) }
        : draft.payload;
    return oaoEventSchema.parse({
      id: `${executionId}:${seq}`,
      executionId,
      seq,
      timestamp: timestampOf(seq),
      type: draft.type,
      state: draft.state,
      counters,
      payload,
    });
  });
  return events;
}

function fakeReport(
  executionId: string,
  agentName: string,
  status: 'SUCCESS' | 'FAILED',
  startedAt: number,
  durationMs: number,
  steps: number,
): ExecutionReport {
  return {
    executionId,
    agentName,
    status,
    termination: status === 'SUCCESS' ? { reason: 'completed' } : { reason: 'error', message: 'the fake agent failed' },
    totalSteps: steps,
    tokenUsage: { input: 0, output: 0, total: 0 },
    toolUsage: { total: 0, byTool: {} },
    executionTimeMs: durationMs,
    stateHistory: [{ state: 'INIT', enteredAt: startedAt, durationMs: 0.5 }],
    finalOutput: status === 'SUCCESS' ? { text: `output ${steps}`, ok: true } : null,
    ...(status === 'FAILED' ? { error: { name: 'Error', code: 'OAO_ERR_AGENT_FAILED', message: 'the fake agent failed' } } : {}),
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: new Date(startedAt + durationMs).toISOString(),
    executionHash: hashOf(executionId),
  };
}

function hashOf(executionId: string): string {
  return createHash('sha256').update(executionId).digest('hex');
}

/** The report a fake log ends with (undefined for a `running` one). */
export function reportOf(events: readonly OaoEvent[]): ExecutionReport | undefined {
  const last = events.at(-1);
  return last?.type === 'EXECUTION_COMPLETE' ? last.payload.report : undefined;
}

/** Events as canonical text: equal text, equal event (whatever order their keys come in). */
export function texts(events: readonly OaoEvent[]): string[] {
  return events.map(canonicalJson);
}

/** A copy of `event` that differs from it (a later timestamp): a conflicting event at the same seq. */
export function altered(event: OaoEvent): OaoEvent {
  return { ...event, timestamp: event.timestamp + 1 };
}

/** Splits a log into consecutive batches of the given sizes (the rest in the last one). */
export function batches(events: readonly OaoEvent[], ...sizes: number[]): OaoEvent[][] {
  const out: OaoEvent[][] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= events.length) break;
    out.push(events.slice(at, at + size));
    at += size;
  }
  if (at < events.length) out.push(events.slice(at));
  return out;
}
