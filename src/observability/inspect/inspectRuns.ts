import type { ActorRefLike, AnyEventObject, InspectionEvent, Snapshot } from 'xstate';
import type { OaoInspector } from '../../Orchestrator.js';
import { Batch } from '../../runtime/Batch.js';
import { RunSession } from '../../runtime/RunSession.js';

/** What an inspector is shown of a run's ledger instead of the ledger itself. */
export interface InspectedRun {
  readonly executionId: string;
  readonly agentName: string;
  readonly state: string;
  readonly steps: number;
  readonly tokens: { readonly input: number; readonly output: number; readonly total: number };
  readonly toolCalls: number;
  readonly limits: RunSession['limits'];
  readonly termination: RunSession['termination'] | null;
}

/** What an inspector is shown of a supervisor's batch instead of the batch itself. */
export interface InspectedBatch {
  readonly batchId: string;
  readonly maxConcurrency: number;
  readonly total: number;
  readonly waiting: number;
  readonly finished: number;
}

/**
 * Wraps any XState inspector so it sees OAO's actors without their ledgers. A run actor's context
 * holds its `RunSession` (the agent object, its tools and every event so far) and a supervisor's
 * holds its `Batch`; serializing those on every snapshot would cost time per event, send the agent
 * and the tools' code to the inspector, and grow with the run. Each is replaced by a small summary
 * (`InspectedRun`, `InspectedBatch`) wherever it appears one level down in a snapshot's context,
 * a snapshot's input or an event's input. Everything else passes through unchanged.
 *
 * @example
 * ```ts
 * import { createBrowserInspector } from '@statelyai/inspect';
 * const orch = new Orchestrator({ inspect: inspectRuns(createBrowserInspector().inspect) });
 * ```
 */
export function inspectRuns(target: OaoInspector): (event: InspectionEvent) => void {
  const forward = typeof target === 'function' ? target : (event: InspectionEvent) => target.next?.(event);
  return (event) => {
    forward(sanitizeInspectionEvent(event));
  };
}

export function sanitizeInspectionEvent(event: InspectionEvent): InspectionEvent {
  switch (event.type) {
    case '@xstate.actor':
      return { ...event, actorRef: withSanitizedSnapshot(event.actorRef) };
    case '@xstate.snapshot':
    case '@xstate.transition':
    case '@xstate.microstep':
      return { ...event, event: sanitizeEvent(event.event), snapshot: sanitizeSnapshot(event.snapshot) };
    case '@xstate.event':
      return { ...event, event: sanitizeEvent(event.event) };
    default:
      return event;
  }
}

function sanitizeSnapshot<T extends Snapshot<unknown>>(snapshot: T): T {
  const holder = snapshot as T & { context?: unknown; input?: unknown };
  const context = summarizeFields(holder.context);
  const input = summarizeFields(holder.input);
  if (context === holder.context && input === holder.input) return snapshot;
  // A machine snapshot's toJSON reads `this`, so the copy serializes with the summaries.
  return { ...snapshot, ...(context === holder.context ? {} : { context }), ...(input === holder.input ? {} : { input }) };
}

function sanitizeEvent(event: AnyEventObject): AnyEventObject {
  if (!('input' in event)) return event;
  const input = summarizeFields(event.input);
  return input === event.input ? event : { ...event, input };
}

/**
 * The actor as the inspector reads it when it registers (id, session, parent, logic, snapshot),
 * with the snapshot sanitized at the moment it is read.
 */
function withSanitizedSnapshot(actorRef: ActorRefLike): ActorRefLike {
  const original = actorRef as ActorRefLike & { id: string; _parent?: unknown; logic?: unknown; src?: unknown; systemId?: unknown };
  return new Proxy(original, {
    get(target, property, receiver) {
      if (property === 'getSnapshot') return () => sanitizeSnapshot(target.getSnapshot() as Snapshot<unknown>);
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The value with every RunSession or Batch among its own fields summarized; the same object when there is none. */
function summarizeFields(value: unknown): unknown {
  const direct = summarize(value);
  if (direct !== undefined) return direct;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, field] of Object.entries(value)) {
    const summary = summarize(field);
    if (summary === undefined) continue;
    copy ??= { ...(value as Record<string, unknown>) };
    copy[key] = summary;
  }
  return copy ?? value;
}

function summarize(value: unknown): InspectedRun | InspectedBatch | undefined {
  if (value instanceof RunSession) {
    return {
      executionId: value.executionId,
      agentName: value.agentName,
      state: value.state,
      steps: value.steps,
      tokens: { input: value.tokensIn, output: value.tokensOut, total: value.tokensTotal },
      toolCalls: value.toolCalls,
      limits: value.limits,
      termination: value.termination ?? null,
    };
  }
  if (value instanceof Batch) {
    return {
      batchId: value.batchId,
      maxConcurrency: value.maxConcurrency,
      total: value.total,
      waiting: value.waiting,
      finished: value.finished,
    };
  }
  return undefined;
}
