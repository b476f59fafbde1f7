import type { Agent, AgentContext, ModelCall, ReviewDecision, StepResult } from '../../agent.js';
import { OaoError } from '../../errors.js';
import type { JsonValue } from '../../report/schema.js';
import { systemClock, type Clock } from '../../runtime/clock.js';
import type { A2ATransportOptions } from './a2a.js';
import { checkUrl, httpTransport } from './http.js';
import {
  errorFromRecord,
  remoteError,
  untilAborted,
  type RemoteHistoryEntry,
  type RemoteTransport,
  type RemoteTransportKind,
  type RemoteTurnResult,
} from './remoteTurn.js';

/** setTimeout cannot wait longer than this. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** An agent served over A2A: give its base URL (card at the well-known path) or its card's URL. */
export type RemoteA2ATransport =
  | { readonly kind: 'a2a'; readonly url: string; readonly headers?: Readonly<Record<string, string>> }
  | { readonly kind: 'a2a'; readonly agentCardUrl: string; readonly headers?: Readonly<Record<string, string>> };

/** An agent served as one JSON endpoint (see docs/adapters.md for the contract). */
export interface RemoteHttpTransport {
  readonly kind: 'http';
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** What `onInputRequired` receives when an A2A task stops at `input-required`. */
export interface RemoteInputRequest {
  /** What the remote said (its status message: text, or a data part's value). */
  readonly question: JsonValue;
  /** The turn that asked, from 1. */
  readonly turn: number;
  readonly taskId: string | undefined;
  readonly task: unknown;
}

export interface RemoteAgentOptions {
  /** The agent's name in reports and events. */
  readonly name: string;
  readonly transport: RemoteA2ATransport | RemoteHttpTransport;
  /**
   * How long one remote turn may take, in milliseconds. A turn past it is aborted (an A2A task is
   * sent `tasks/cancel`) and fails with `OAO_ERR_REMOTE_TIMEOUT`. The run's own `timeoutMs` holds too.
   * @default 60_000
   */
  readonly timeoutMs?: number;
  /**
   * The most turns one run may send. A remote that still wants another turn after it fails the run
   * with `OAO_ERR_REMOTE_AGENT` (`details.reason: 'max_turns'`). The policy's `maxSteps` bounds turns too.
   * @default no limit of its own
   */
  readonly maxTurns?: number;
  /**
   * The most output tokens a turn may report: what each turn reserves against the token budget,
   * with its message's estimate. @default the policy's `reserveOutputTokens`
   */
  readonly maxOutputTokens?: number;
  /** The model name recorded (and priced) for each turn. @default `name` */
  readonly model?: string;
  /**
   * Answers an A2A task that stopped at `input-required`: what it returns is sent as the next
   * turn (one more step). Without it, or when it returns `undefined`, the run fails with
   * `OAO_ERR_REMOTE_AGENT` (`details.reason: 'input_required'`). A run that ends while its task
   * waits, whatever the reason, sends the task `tasks/cancel`.
   */
  readonly onInputRequired?: (request: RemoteInputRequest, ctx: AgentContext) => unknown;
  /** The time source of the turn timers (XState's `SimulatedClock` in tests). @default the system clock */
  readonly clock?: Clock;
}

/** An OAO agent whose every step is one turn of a remote agent. */
export interface RemoteAgent extends Agent {
  readonly name: string;
}

/**
 * Governs an agent that runs elsewhere: a CrewAI crew, an AutoGen team or any agent served over
 * A2A (`@a2a-js/sdk`) or as a plain JSON endpoint. Each remote turn is one OAO step (so `maxSteps`
 * bounds the conversation and a step beyond it is never sent); each turn is a governed model call
 * that reserves its worst case before it is sent and is charged the usage the remote reports (its
 * reservation, flagged unmetered, when it reports none); the run's signal aborts the request and
 * cancels the remote A2A task; a turn that does not answer in `timeoutMs` fails with
 * `OAO_ERR_REMOTE_TIMEOUT`. Every turn's answer is recorded, so verify-replay makes no network call.
 *
 * @example
 * ```ts
 * import { fromRemoteAgent } from 'open-agent-orchestrator/remote';
 * const researcher = fromRemoteAgent({ name: 'researcher', transport: { kind: 'a2a', url: 'https://agents.example.com' }, timeoutMs: 30_000 });
 * const report = await orch.run({ agent: researcher, task: 'Summarise the last quarter' });
 * ```
 */
export function fromRemoteAgent(options: RemoteAgentOptions): RemoteAgent {
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected options to be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const name = checkText(options.name, 'name');
  const timeoutMs = options.timeoutMs === undefined ? 60_000 : checkWhole(options.timeoutMs, 'timeoutMs', 1, MAX_TIMEOUT_MS);
  const maxTurns = options.maxTurns === undefined ? undefined : checkWhole(options.maxTurns, 'maxTurns', 1, Number.MAX_SAFE_INTEGER);
  const maxOutputTokens = options.maxOutputTokens === undefined ? undefined : checkWhole(options.maxOutputTokens, 'maxOutputTokens', 0, Number.MAX_SAFE_INTEGER);
  const model = options.model === undefined ? name : checkText(options.model, 'model');
  const clock = options.clock ?? systemClock;
  if (typeof clock !== 'object' || clock === null || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected clock to have setTimeout() and clearTimeout()', { details: { field: 'clock' } });
  }
  const onInputRequired = options.onInputRequired;
  if (onInputRequired !== undefined && typeof onInputRequired !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected onInputRequired to be a function, got ${typeof onInputRequired}`, { details: { field: 'onInputRequired' } });
  }
  const transport = makeTransport(options.transport, timeoutMs, clock);
  const kind = transport.kind;

  const runTurn = async (conversation: RemoteConversation, ctx: AgentContext): Promise<RemoteTurnResult> => {
    const turn = conversation.turns + 1;
    const request = {
      task: conversation.task,
      message: conversation.next,
      runId: ctx.executionId,
      turn,
      history: conversation.history,
      taskId: conversation.taskId,
      contextId: conversation.contextId,
    };
    // The reservation is the message's estimate (the task on the first turn) plus the output cap.
    const call = ctx.beginModelCall({
      model,
      input: kind === 'http' ? { task: request.task, turn, history: request.history } : { turn, message: request.message, ...(request.taskId === undefined ? {} : { taskId: request.taskId }) },
      ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
    });
    await call.ready;
    if (call.replayed !== undefined) return replayTurn(call);
    conversation.closeAtRunEnd(ctx, transport);
    const timer = new TurnTimer(clock, timeoutMs, kind, turn);
    const signal = AbortSignal.any([call.signal, timer.signal]);
    let result: RemoteTurnResult;
    try {
      result = await untilAborted(transport.turn({ ...request, signal, cancelTask: (taskId) => conversation.cancel(taskId, transport) }), signal);
    } catch (error) {
      // A stopped turn's task was sent tasks/cancel by the transport; a failed one may still be open.
      if (!signal.aborted) conversation.noteFailure(error);
      call.fail(signal.aborted ? signal.reason : error, null);
      throw signal.aborted ? signal.reason : error;
    } finally {
      timer.clear();
    }
    conversation.noteTask(result.taskId, result.state);
    call.end(result, result.usage === undefined ? null : { input: result.usage.inputTokens, output: result.usage.outputTokens });
    return result;
  };

  return {
    name,
    plan(task: unknown) {
      return new RemoteConversation(task);
    },
    async invoke(input: unknown, ctx: AgentContext) {
      if (!(input instanceof RemoteConversation)) {
        throw new OaoError('OAO_ERR_INVALID_AGENT', 'A remote agent needs its own plan(): do not replace or drop it', { retryable: false });
      }
      const conversation = input;
      const result = await runTurn(conversation, ctx);
      const turn = conversation.turns + 1;
      conversation.record(result);
      if (result.done) return { output: result.output as never };
      if (maxTurns !== undefined && turn >= maxTurns) {
        throw remoteError(`The remote agent wanted another turn after its maxTurns (${maxTurns})`, { transport: kind, reason: 'max_turns', turn, maxTurns });
      }
      if (result.inputRequired === true) {
        const answer: unknown = onInputRequired === undefined ? undefined : await onInputRequired({ question: result.output, turn, taskId: result.taskId, task: conversation.task }, ctx);
        if (answer === undefined) {
          throw remoteError(`The remote agent asked for input and nobody answered: ${JSON.stringify(result.output)}`, {
            transport: kind,
            reason: 'input_required',
            turn,
            question: result.output,
            ...(result.taskId === undefined ? {} : { taskId: result.taskId }),
          });
        }
        conversation.next = answer;
      }
      return { output: result.output as never };
    },
    review(result: StepResult): ReviewDecision {
      const conversation = result.input;
      if (!(conversation instanceof RemoteConversation)) return { done: true };
      return { done: conversation.done };
    },
  };
}

/** A2A task states after which a task does no more work: such a task is never sent tasks/cancel. */
const FINAL_TASK_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'canceled', 'rejected']);

/**
 * A run's conversation with the remote: the input of every step (REVIEW passes it on), so it lives
 * exactly as long as the run's actor. Recorded in events as `{ task, turns }`.
 */
export class RemoteConversation {
  readonly task: unknown;
  /** What the next turn sends. */
  next: unknown;
  turns = 0;
  done = false;
  taskId: string | undefined;
  contextId: string | undefined;
  readonly history: RemoteHistoryEntry[] = [];
  /** Remote tasks live turns of this run left short of a final state (waiting for input, say). */
  readonly #open = new Set<string>();
  /** Tasks this run has sent tasks/cancel: each is sent it once. */
  readonly #cancelled = new Set<string>();
  #watching = false;

  constructor(task: unknown) {
    this.task = task;
    this.next = task;
  }

  /**
   * When the run ends, however it ends, every task it left open is sent tasks/cancel, so no remote
   * task outlives its run. Armed by the first live turn (verify-replay contacts nothing).
   */
  closeAtRunEnd(ctx: AgentContext, transport: RemoteTransport): void {
    if (this.#watching || transport.cancel === undefined) return;
    const runSignal = (ctx as { readonly runSignal?: AbortSignal }).runSignal;
    if (runSignal === undefined) return;
    this.#watching = true;
    const close = (): void => {
      for (const taskId of this.#open) this.cancel(taskId, transport);
      this.#open.clear();
    };
    if (runSignal.aborted) close();
    else runSignal.addEventListener('abort', close, { once: true });
  }

  /** Sends `taskId` tasks/cancel unless this run already has. */
  cancel(taskId: string, transport: RemoteTransport): void {
    this.#open.delete(taskId);
    if (this.#cancelled.has(taskId)) return;
    this.#cancelled.add(taskId);
    transport.cancel?.(taskId);
  }

  /** What a live turn said of its task: a final state closes it, anything else leaves it open. */
  noteTask(taskId: string | undefined, state: string | undefined): void {
    if (taskId === undefined || this.#cancelled.has(taskId)) return;
    if (state !== undefined && FINAL_TASK_STATES.has(state)) this.#open.delete(taskId);
    else this.#open.add(taskId);
  }

  /** A live turn failed (not stopped): the task it names is open unless it reached a final state. */
  noteFailure(error: unknown): void {
    if (!OaoError.isInstance(error)) return;
    const details = error.details as { readonly taskId?: unknown; readonly state?: unknown } | undefined;
    if (typeof details?.taskId !== 'string') return;
    this.noteTask(details.taskId, typeof details.state === 'string' ? details.state : undefined);
  }

  record(result: RemoteTurnResult): void {
    this.turns += 1;
    this.done = result.done;
    this.history.push({ turn: this.turns, output: result.output });
    if (result.taskId !== undefined) this.taskId = result.taskId;
    if (result.contextId !== undefined) this.contextId = result.contextId;
  }

  toJSON(): { task: unknown; turns: number } {
    return { task: this.task, turns: this.turns };
  }
}

/** The turn's time limit: its signal aborts with `OAO_ERR_REMOTE_TIMEOUT` when it passes. */
class TurnTimer {
  readonly #controller = new AbortController();
  readonly #clock: Clock;
  readonly #id: unknown;

  constructor(clock: Clock, timeoutMs: number, transport: RemoteTransportKind, turn: number) {
    this.#clock = clock;
    this.#id = clock.setTimeout(() => {
      this.#controller.abort(
        new OaoError('OAO_ERR_REMOTE_TIMEOUT', `The remote agent did not answer turn ${turn} within ${timeoutMs} ms`, { details: { transport, turn, timeoutMs } }),
      );
    }, timeoutMs);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  clear(): void {
    this.#clock.clearTimeout(this.#id);
  }
}

/** Serves a turn from the log (verify-replay): the recorded answer, or the recorded error. */
function replayTurn(call: ModelCall): RemoteTurnResult {
  const replayed = call.replayed as NonNullable<ModelCall['replayed']>;
  // Settled as the live turn was: a failure or a turn without reported usage passes no usage.
  if (!replayed.ok) {
    const error = errorFromRecord(replayed.error);
    call.fail(error, null);
    throw error;
  }
  const result = replayed.output as RemoteTurnResult;
  call.end(result, result.usage === undefined || replayed.usage == null ? null : { input: replayed.usage.input, output: replayed.usage.output });
  return result;
}

function makeTransport(value: unknown, timeoutMs: number, clock: Clock): RemoteTransport {
  if (typeof value !== 'object' || value === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected transport to be { kind: 'a2a', url | agentCardUrl } or { kind: 'http', url }, got ${value === null ? 'null' : typeof value}`, {
      details: { field: 'transport' },
    });
  }
  const spec = value as { kind?: unknown; url?: unknown; agentCardUrl?: unknown; headers?: unknown };
  const headers = checkHeaders(spec.headers);
  if (spec.kind === 'http') {
    return httpTransport({ url: checkUrl(spec.url, 'transport.url'), ...(headers === undefined ? {} : { headers }) });
  }
  if (spec.kind === 'a2a') {
    if ((spec.url === undefined) === (spec.agentCardUrl === undefined)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected an A2A transport to have exactly one of url and agentCardUrl', { details: { field: 'transport' } });
    }
    const where = spec.url !== undefined ? { url: checkUrl(spec.url, 'transport.url') } : { agentCardUrl: checkUrl(spec.agentCardUrl, 'transport.agentCardUrl') };
    return lazyA2ATransport({ ...where, ...(headers === undefined ? {} : { headers }), cancelTimeoutMs: timeoutMs, clock });
  }
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected transport.kind to be "a2a" or "http", got ${JSON.stringify(spec.kind) ?? 'undefined'}`, {
    details: { field: 'transport.kind' },
  });
}

/**
 * The A2A transport, loaded on the first turn that goes out: `@a2a-js/sdk` is an optional peer, so
 * the plain-HTTP transport (and verify-replay of A2A runs) works without it.
 */
function lazyA2ATransport(options: A2ATransportOptions): RemoteTransport {
  let loaded: Promise<RemoteTransport> | undefined;
  return {
    kind: 'a2a',
    async turn(request) {
      loaded ??= import('./a2a.js').then(
        (module) => module.a2aTransport(options),
        (error: unknown) => {
          loaded = undefined;
          const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
          if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && typeof message === 'string' && message.includes('@a2a-js/sdk')) {
            throw new OaoError('OAO_ERR_MISSING_PACKAGE', 'An A2A remote agent needs a package that is not installed: npm install @a2a-js/sdk', {
              details: { packages: ['@a2a-js/sdk'] },
            });
          }
          throw error;
        },
      );
      return (await untilAborted(loaded, request.signal)).turn(request);
    },
    cancel(taskId) {
      void loaded?.then(
        (transport) => transport.cancel?.(taskId),
        () => {
          // Never loaded: no turn went out, so no task exists.
        },
      );
    },
  };
}

function checkHeaders(value: unknown): Readonly<Record<string, string>> | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((header) => typeof header === 'string')) {
    return { ...(value as Record<string, string>) };
  }
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected transport.headers to be an object of string values', { details: { field: 'transport.headers' } });
}

function checkText(value: unknown, field: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be a non-empty string, got ${value === '' ? 'an empty string' : typeof value}`, { details: { field } });
}

function checkWhole(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected ${field} to be a whole number from ${min} to ${max}, got ${String(value)}`, { details: { field } });
  }
  return value;
}
