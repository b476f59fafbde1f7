import { OaoError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import type { JsonValue, TokenUsage } from '../report/schema.js';
import { applyEvent, type RunFold } from './foldRun.js';

/**
 * Where a run cut short (its process died, or it was unloaded) continues, read from its log alone:
 *
 * - `start`: nothing was decided yet; the run starts as a new one would (PLAN).
 * - `plan`: `plan` was running: it is called again.
 * - `step`: a step was in flight: the same step (same attempt) runs again, with its recorded calls
 *   served from the log (`recorded`).
 * - `retry`: a step failed and was to be retried: the retry runs after its delay.
 * - `review`: a step completed and `review` had not decided: `review` is called again.
 * - `next`: the plan or a review chose the next step's input, and the step had not started.
 * - `terminate`: the review said done: the run ends SUCCESS.
 * - `failed`: how the run ends was already decided (a violation, a cancel, a timeout, an error):
 *   the run ends FAILED with it.
 */
export type ResumePointKind = 'start' | 'plan' | 'step' | 'retry' | 'review' | 'next' | 'terminate' | 'failed';

/** A tool call the interrupted phase made, and its outcome when the log has one. */
export interface RecordedToolCall {
  readonly callId: string;
  readonly tool: string;
  /** The arguments the agent called it with. */
  readonly args: unknown;
  /** Whether its TOOL_CALL was recorded (its body was authorized to run). */
  readonly started: boolean;
  /** For a call that needed approval: the decision so far. */
  readonly approval?:
    | { readonly status: 'pending' }
    | { readonly status: 'granted'; readonly args?: unknown }
    | { readonly status: 'denied'; readonly timedOut: boolean };
  readonly result?: { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: { readonly name: string; readonly message: string } };
}

/** A model call the interrupted phase made, and its outcome when the log has one. */
export interface RecordedModelCall {
  readonly callId: string;
  readonly model: string | null;
  readonly input: unknown;
  readonly result?: {
    readonly ok: boolean;
    readonly output?: unknown;
    readonly error?: { readonly name: string; readonly message: string; readonly code: string };
    readonly usage: TokenUsage | null;
  };
}

/** What the interrupted agent call (plan, step or review) did before the run was cut short, in order. */
export interface RecordedCalls {
  readonly tools: readonly RecordedToolCall[];
  readonly models: readonly RecordedModelCall[];
  /** Usage the agent reported with `ctx.usage()`, each already charged. */
  readonly usages: readonly TokenUsage[];
  /** Tool call ids given out before this call began (the re-run numbers its calls from here). */
  readonly toolSeqBefore: number;
  readonly modelSeqBefore: number;
  /** Tool and model call ids given out in the whole log: a call beyond the recording numbers from here. */
  readonly toolSeqEnd: number;
  readonly modelSeqEnd: number;
}

export interface ResumePoint {
  readonly kind: ResumePointKind;
  /** Everything the log says about the run (counters, history, termination). */
  readonly fold: RunFold;
  /** The input of the step that runs next (or again); for `plan` and `start`, the task. */
  readonly input: unknown;
  /** The last completed step, as `review` receives it. */
  readonly lastStep: { readonly step: number; readonly input: unknown; readonly output: JsonValue; readonly usage: TokenUsage | null } | null;
  /** For `retry`: the attempt that runs next and the delay the log asked for. */
  readonly retry?: { readonly attempt: number; readonly delayMs: number };
  /** For `plan`, `step` and `review`: what the interrupted call did. */
  readonly recorded?: RecordedCalls;
  /** Tool and model call ids the whole log gave out: later calls number from here. */
  readonly toolSeq: number;
  readonly modelSeq: number;
}

interface OpenCalls {
  tools: RecordedToolCall[];
  models: RecordedModelCall[];
  usages: TokenUsage[];
  toolSeqBefore: number;
  modelSeqBefore: number;
}

/**
 * Reads where a run continues from its log (pure: no I/O, no clock). The log must be one that has
 * not finished; a finished one, an empty one or one out of order is a typed error.
 *
 * @throws OAO_ERR_LOG_CORRUPT for a log out of order; OAO_ERR_INVALID_ARGUMENT for an empty log
 *   or one that already ends with EXECUTION_COMPLETE.
 */
export function resumePoint(events: readonly OaoEvent[]): ResumePoint {
  const first = events[0];
  if (first === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Nothing to resume: the log is empty (is the execution id right?)', { details: { field: 'events' } });
  }
  const executionId = first.executionId;
  let fold: RunFold | undefined;
  let kind: ResumePointKind = 'start';
  let input: unknown = first.type === 'EXECUTION_START' ? first.payload.task : undefined;
  let stepInput: unknown = input;
  let lastStep: ResumePoint['lastStep'] = null;
  let retry: ResumePoint['retry'];
  // Tool call ids are given out once per call: at its approval request, or at its TOOL_CALL (or
  // TOOL_DENIED) when it needed none.
  const toolIds = new Set<string>();
  let toolSeq = 0;
  let modelSeq = 0;
  let open: OpenCalls | undefined;
  const openCalls = (): OpenCalls => ({ tools: [], models: [], usages: [], toolSeqBefore: toolSeq, modelSeqBefore: modelSeq });

  for (const event of events) {
    try {
      fold = applyEvent(fold, event);
    } catch (error) {
      throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of run "${executionId}" cannot be resumed: ${(error as Error).message}`, {
        details: { executionId, seq: event.seq },
        cause: error,
      });
    }
    switch (event.type) {
      case 'STATE_ENTER':
        if (event.payload.state === 'PLAN') {
          kind = 'plan';
          open = openCalls();
        } else if (event.payload.state === 'REVIEW' && kind === 'review') {
          open = openCalls();
        } else if (event.payload.state === 'TERMINATE') {
          kind = 'terminate';
        }
        break;
      case 'PLAN_COMPLETE':
        kind = 'next';
        input = event.payload.input;
        open = undefined;
        break;
      case 'STEP_START':
        kind = 'step';
        stepInput = event.payload.input;
        input = stepInput;
        retry = undefined;
        open = openCalls();
        break;
      case 'STEP_COMPLETE':
        kind = 'review';
        lastStep = { step: event.payload.step, input: stepInput, output: event.payload.output as JsonValue, usage: event.payload.usage };
        // Review runs in the REVIEW state, entered by the same transition.
        open = openCalls();
        break;
      case 'REVIEW_DECISION':
        open = undefined;
        if (event.payload.done) kind = 'terminate';
        else {
          kind = 'next';
          input = event.payload.input !== undefined ? event.payload.input : stepInput;
        }
        break;
      case 'ERROR':
        open = undefined;
        if (event.payload.willRetry) {
          kind = 'retry';
          retry = { attempt: event.payload.attempt + 1, delayMs: event.payload.retryInMs ?? 0 };
        }
        break;
      case 'APPROVAL_REQUESTED':
        toolIds.add(event.payload.callId);
        toolSeq = toolIds.size;
        open?.tools.push({ callId: event.payload.callId, tool: event.payload.tool, args: event.payload.args, started: false, approval: { status: 'pending' } });
        break;
      case 'APPROVAL_GRANTED':
      case 'APPROVAL_DENIED': {
        const calls = open?.tools;
        const index = calls === undefined ? -1 : calls.findIndex((call) => call.callId === event.payload.callId);
        if (calls !== undefined && index !== -1) {
          calls[index] = {
            ...(calls[index] as RecordedToolCall),
            approval:
              event.type === 'APPROVAL_GRANTED'
                ? { status: 'granted', ...(event.payload.args === undefined ? {} : { args: event.payload.args }) }
                : { status: 'denied', timedOut: event.payload.timedOut },
          };
        }
        break;
      }
      case 'TOOL_CALL': {
        const known = toolIds.has(event.payload.callId);
        toolIds.add(event.payload.callId);
        toolSeq = toolIds.size;
        const calls = open?.tools;
        const index = known && calls !== undefined ? calls.findIndex((call) => call.callId === event.payload.callId) : -1;
        if (calls !== undefined && index !== -1) calls[index] = { ...(calls[index] as RecordedToolCall), started: true };
        else open?.tools.push({ callId: event.payload.callId, tool: event.payload.tool, args: event.payload.args, started: true });
        break;
      }
      case 'TOOL_DENIED':
        toolIds.add(event.payload.callId);
        toolSeq = toolIds.size;
        break;
      case 'TOOL_RESULT': {
        const calls = open?.tools;
        const index = calls === undefined ? -1 : calls.findIndex((call) => call.callId === event.payload.callId);
        if (calls !== undefined && index !== -1) {
          const p = event.payload;
          calls[index] = {
            ...(calls[index] as RecordedToolCall),
            result: p.ok ? { ok: true, value: p.result } : { ok: false, error: { name: p.error?.name ?? 'Error', message: p.error?.message ?? 'The tool failed' } },
          };
        }
        break;
      }
      case 'MODEL_CALL':
        modelSeq += 1;
        open?.models.push({ callId: event.payload.callId, model: event.payload.model, input: event.payload.input });
        break;
      case 'MODEL_RESULT': {
        const calls = open?.models;
        const index = calls === undefined ? -1 : calls.findIndex((call) => call.callId === event.payload.callId);
        if (calls !== undefined && index !== -1) {
          const p = event.payload;
          calls[index] = {
            ...(calls[index] as RecordedModelCall),
            result: {
              ok: p.ok,
              ...(p.ok ? { output: p.output } : { error: { name: p.error?.name ?? 'Error', message: p.error?.message ?? 'The model call failed', code: p.error?.code ?? 'OAO_ERR_AGENT_FAILED' } }),
              usage: p.usage,
            },
          };
        }
        break;
      }
      case 'TOKEN_USAGE':
        if (event.payload.source === 'reported') open?.usages.push({ input: event.payload.input, output: event.payload.output, total: event.payload.total });
        break;
      case 'EXECUTION_COMPLETE':
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Run "${executionId}" has finished: there is nothing to resume`, {
          details: { field: 'executionId', executionId },
        });
      default:
        break;
    }
  }
  const folded = fold as RunFold;
  // A decided ending wins over whatever the lifecycle was doing: the run ends as it was bound to.
  if (folded.termination !== undefined || folded.state === 'FAILED') kind = 'failed';
  return {
    kind,
    fold: folded,
    input,
    lastStep,
    toolSeq,
    modelSeq,
    ...(kind === 'retry' && retry !== undefined ? { retry } : {}),
    ...((kind === 'plan' || kind === 'step' || kind === 'review') && open !== undefined
      ? { recorded: { ...open, toolSeqEnd: toolSeq, modelSeqEnd: modelSeq } }
      : {}),
  };
}
