import { randomUUID } from 'node:crypto';
import { Observable, Subject } from 'rxjs';
import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import type { AgentLike, ToolSet } from './agent.js';
import { OaoError } from './errors.js';
import type { OaoEvent, OaoEventOf, OaoEventType } from './events/schema.js';
import { agentLifecycleMachine, type AgentLifecycleMachine } from './machines/agentLifecycleMachine.js';
import { StrictPolicy } from './policy/StrictPolicy.js';
import type { PolicyOptions } from './policy/schema.js';
import { canonicalJson } from './report/canonicalJson.js';
import { executionHash } from './report/executionHash.js';
import type { ExecutionReport } from './report/schema.js';
import { systemClock, type Clock } from './runtime/clock.js';
import { RunSession } from './runtime/RunSession.js';

/** One run: the agent, its task, and optionally tools, a narrower policy and a cancel signal. */
export interface RunRequest {
  readonly agent: AgentLike;
  /** A string or any JSON value; it is what `plan` (or the first step) receives. */
  readonly task: unknown;
  /** Tools the agent may call through `ctx.tools`, each governed by the policy. */
  readonly tools?: ToolSet;
  /** Narrows the orchestrator's policy for this run; it can never widen it. */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Aborting it cancels the run. */
  readonly signal?: AbortSignal;
  /** Use this id instead of a generated one (it must be unique among live runs). */
  readonly executionId?: string;
}

/** A started run. */
export interface RunHandle {
  readonly executionId: string;
  /** The run's XState actor: subscribe to snapshots or inspect it. */
  readonly actor: Actor<AgentLifecycleMachine>;
  /** The run's events: those already emitted first, then live ones; completes after EXECUTION_COMPLETE. */
  readonly events$: Observable<OaoEvent>;
  /** Settles with the report; never rejects for agent or policy failures. */
  readonly report: Promise<ExecutionReport>;
  /** Cancels the run (its signal aborts, the report says `cancelled`). No effect once finished. */
  cancel(reason?: string): void;
  /** The events emitted so far. */
  events(): readonly OaoEvent[];
}

export type OaoInspector = Observer<InspectionEvent> | ((event: InspectionEvent) => void);

export interface OrchestratorOptions {
  /**
   * The limits every run is held to; a run may only narrow them.
   * @default new StrictPolicy()
   */
  readonly policy?: StrictPolicy | PolicyOptions;
  /** Passed to every run actor: an XState inspector (for example from `@statelyai/inspect`). */
  readonly inspect?: OaoInspector;
  /**
   * Time source for timestamps, deadlines and retry backoff; XState's `SimulatedClock` fits.
   * @default the system clock
   */
  readonly clock?: Clock;
  /** Called when a hook registered with `on()` throws or rejects. @default logs with console.error */
  readonly onHookError?: (error: unknown, event: OaoEvent) => void;
  /** Makes execution ids. @default crypto.randomUUID */
  readonly generateId?: () => string;
}

type Hook = (event: OaoEvent) => unknown;

const defaultHookError = (error: unknown, event: OaoEvent): void => {
  console.error(`[oao] a hook for ${event.type} failed:`, error);
};

/**
 * Runs agents under a policy. It holds configuration and hooks, never run state: one instance can
 * run any number of runs, one after another or at once, each in its own actor.
 *
 * @example
 * ```ts
 * import { Orchestrator, StrictPolicy } from 'open-agent-orchestrator';
 * class DummyAgent { invoke(task: string) { return { output: `Processed: ${task}` }; } }
 * const orch = new Orchestrator({ policy: new StrictPolicy({ maxSteps: 5 }) });
 * const report = await orch.run({ agent: new DummyAgent(), task: 'Explain AI orchestration' });
 * report.status; // 'SUCCESS'
 * ```
 */
export class Orchestrator {
  readonly policy: StrictPolicy;
  /** Every event of every run of this orchestrator. */
  readonly events$: Observable<OaoEvent>;
  readonly #subject = new Subject<OaoEvent>();
  readonly #hooks = new Map<OaoEventType | '*', Set<Hook>>();
  readonly #inspect: OaoInspector | undefined;
  readonly #clock: Clock;
  readonly #customClock: boolean;
  readonly #onHookError: (error: unknown, event: OaoEvent) => void;
  readonly #generateId: () => string;
  readonly #sink: (event: OaoEvent) => void;

  constructor(options: OrchestratorOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected Orchestrator options to be an object, got ${typeOf(options)}`);
    }
    this.policy = options.policy instanceof StrictPolicy ? options.policy : new StrictPolicy(options.policy ?? {});
    this.#inspect = options.inspect;
    this.#clock = options.clock ?? systemClock;
    this.#customClock = options.clock !== undefined;
    this.#onHookError = options.onHookError ?? defaultHookError;
    this.#generateId = options.generateId ?? randomUUID;
    this.events$ = this.#subject.asObservable();
    this.#sink = (event) => this.#dispatch(event);
  }

  /** Runs an agent to its end. Rejects only for invalid arguments; every run outcome is in the report. */
  run(request: RunRequest): Promise<ExecutionReport> {
    try {
      return this.start(request).report;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs a synchronous agent to its end without the event loop, through the same machine. Throws
   * `OAO_ERR_ASYNC_IN_SYNC_RUN` (with the failed report on `error.details.report`) if the agent
   * returns a promise. Time limits cannot interrupt a blocking agent here.
   */
  runSync(request: RunRequest): ExecutionReport {
    const { session, actor } = this.#launch(request, true);
    if (session.report === undefined) {
      // Something is waiting on a timer (only retry backoff can): a sync run cannot wait.
      session.failWith(new OaoError('OAO_ERR_ASYNC_IN_SYNC_RUN', 'runSync() could not finish without waiting'));
      actor.send({ type: 'CANCEL' });
    }
    const report = session.report as ExecutionReport;
    if (report.error?.code === 'OAO_ERR_ASYNC_IN_SYNC_RUN') {
      throw new OaoError('OAO_ERR_ASYNC_IN_SYNC_RUN', report.error.message, { details: { report } });
    }
    return report;
  }

  /** Starts a run and returns its handle at once. Throws a typed error for invalid arguments. */
  start(request: RunRequest): RunHandle {
    let settle!: (report: ExecutionReport) => void;
    const report = new Promise<ExecutionReport>((resolve) => (settle = resolve));
    const { session, actor } = this.#launch(request, false, (r) => settle(r));
    return new Handle(session, actor, report);
  }

  /**
   * Calls `hook` for every event of `type` (or every event, with '*'). A hook that throws or
   * rejects is reported to `onHookError` and never changes a run. Returns the unsubscribe function.
   */
  on<T extends OaoEventType>(type: T | '*', hook: (event: T extends OaoEventType ? OaoEventOf<T> : OaoEvent) => unknown): () => void {
    if (typeof hook !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected hook to be a function, got ${typeOf(hook)}`);
    }
    let set = this.#hooks.get(type);
    if (set === undefined) this.#hooks.set(type, (set = new Set()));
    const registered = hook as Hook;
    set.add(registered);
    return () => {
      set.delete(registered);
    };
  }

  #dispatch(event: OaoEvent): void {
    if (this.#subject.observed) this.#subject.next(event);
    if (this.#hooks.size === 0) return;
    this.#callHooks(this.#hooks.get(event.type), event);
    this.#callHooks(this.#hooks.get('*'), event);
  }

  #callHooks(hooks: Set<Hook> | undefined, event: OaoEvent): void {
    if (hooks === undefined) return;
    for (const hook of hooks) {
      try {
        const result = hook(event);
        if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, (error: unknown) => this.#reportHookError(error, event));
        }
      } catch (error) {
        this.#reportHookError(error, event);
      }
    }
  }

  #reportHookError(error: unknown, event: OaoEvent): void {
    try {
      this.#onHookError(error, event);
    } catch {
      // The error handler itself failed; nothing more can be done without risking the run.
    }
  }

  #launch(
    request: RunRequest,
    syncOnly: boolean,
    onFinish?: (report: ExecutionReport) => void,
  ): { session: RunSession; actor: Actor<AgentLifecycleMachine> } {
    const checked = checkRequest(request);
    const policy = checked.policy === undefined ? this.policy : this.policy.narrow(checked.policy);
    const executionId = checked.executionId ?? this.#generateId();
    const session = new RunSession({
      executionId,
      agent: checked.agent,
      agentName: checked.agentName,
      task: checked.task,
      tools: checked.tools,
      toolNames: checked.toolNames,
      limits: policy.limits,
      executionHash: executionHash({
        task: checked.taskJson,
        policy: policy.canonical,
        agent: checked.agentName,
        tools: checked.toolNames,
      }),
      clock: this.#clock,
      sink: this.#sink,
      syncOnly,
    });
    const actor = createActor(agentLifecycleMachine, {
      id: executionId,
      input: { session },
      ...(this.#inspect === undefined ? {} : { inspect: this.#inspect }),
      ...(this.#customClock ? { clock: this.#clock } : {}),
    });
    const signal = checked.signal;
    const onAbort = signal === undefined ? undefined : () => session.cancel(abortReason(signal));
    session.attach(
      (event) => actor.send(event),
      (report) => {
        if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
        onFinish?.(report);
      },
    );
    // An error inside the actor is a defect, but it must still end in a report.
    actor.subscribe({ error: (error) => session.crash(error) });
    session.begin(!syncOnly);
    actor.start();
    if (signal !== undefined && onAbort !== undefined) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    actor.send({ type: 'START' });
    return { session, actor };
  }
}

class Handle implements RunHandle {
  readonly #session: RunSession;
  readonly actor: Actor<AgentLifecycleMachine>;
  readonly report: Promise<ExecutionReport>;
  #events$: Observable<OaoEvent> | undefined;

  constructor(session: RunSession, actor: Actor<AgentLifecycleMachine>, report: Promise<ExecutionReport>) {
    this.#session = session;
    this.actor = actor;
    this.report = report;
  }

  get executionId(): string {
    return this.#session.executionId;
  }

  get events$(): Observable<OaoEvent> {
    return (this.#events$ ??= replayThenLive(this.#session));
  }

  cancel(reason = 'cancelled by caller'): void {
    this.#session.cancel(String(reason));
  }

  events(): readonly OaoEvent[] {
    return this.#session.events.slice();
  }
}

function replayThenLive(session: RunSession): Observable<OaoEvent> {
  return new Observable<OaoEvent>((subscriber) => {
    const recorded = session.events;
    // By index: a subscriber may cause new events while it is being replayed to.
    for (let i = 0; i < recorded.length && !subscriber.closed; i++) subscriber.next(recorded[i] as OaoEvent);
    if (session.finished) {
      subscriber.complete();
      return undefined;
    }
    return session.listen((event) => {
      subscriber.next(event);
      if (event.type === 'EXECUTION_COMPLETE') subscriber.complete();
    });
  });
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message || reason.name;
  if (typeof reason === 'string' && reason.length > 0) return reason;
  return 'aborted by signal';
}

interface CheckedRequest {
  agent: AgentLike;
  agentName: string;
  task: unknown;
  taskJson: string;
  tools: ToolSet | undefined;
  toolNames: readonly string[];
  policy: StrictPolicy | PolicyOptions | undefined;
  signal: AbortSignal | undefined;
  executionId: string | undefined;
}

const EMPTY: readonly string[] = Object.freeze([]);

function checkRequest(request: RunRequest): CheckedRequest {
  if (typeof request !== 'object' || request === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the run request to be an object, got ${typeOf(request)}`);
  }
  const { agent, task, tools, policy, signal, executionId } = request;
  const agentName = checkAgent(agent);
  if (task === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'The run request needs a "task"', { details: { field: 'task' } });
  }
  let taskJson: string;
  try {
    taskJson = canonicalJson(task);
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"task" must be JSON-serializable: ${(error as Error).message}`, {
      details: { field: 'task' },
    });
  }
  let toolNames = EMPTY;
  if (tools !== undefined) {
    if (typeof tools !== 'object' || tools === null || Array.isArray(tools)) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"tools" must be an object of functions, got ${typeOf(tools)}`, {
        details: { field: 'tools' },
      });
    }
    const names = Object.keys(tools);
    for (const name of names) {
      if (typeof tools[name] !== 'function') {
        throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Tool "${name}" must be a function, got ${typeOf(tools[name])}`, {
          details: { field: `tools.${name}` },
        });
      }
    }
    toolNames = names.sort();
  }
  if (policy !== undefined && !(policy instanceof StrictPolicy) && (typeof policy !== 'object' || policy === null)) {
    throw new OaoError('OAO_ERR_INVALID_POLICY', `"policy" must be a StrictPolicy or policy options, got ${typeOf(policy)}`, {
      details: { field: 'policy' },
    });
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"signal" must be an AbortSignal, got ${typeOf(signal)}`, {
      details: { field: 'signal' },
    });
  }
  if (executionId !== undefined && (typeof executionId !== 'string' || executionId.length === 0)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', '"executionId" must be a non-empty string', { details: { field: 'executionId' } });
  }
  return { agent, agentName, task, taskJson, tools, toolNames, policy, signal, executionId };
}

/** Validates the agent contract and returns the agent's name. */
function checkAgent(agent: unknown): string {
  if (typeof agent === 'function') {
    return (agent as { name?: string }).name || 'agent';
  }
  if (typeof agent !== 'object' || agent === null) {
    throw new OaoError('OAO_ERR_INVALID_AGENT', `Expected "agent" to be an object with invoke() or a function, got ${typeOf(agent)}`, {
      details: { field: 'agent' },
    });
  }
  const candidate = agent as Record<string, unknown>;
  if (typeof candidate.invoke !== 'function') {
    throw new OaoError('OAO_ERR_INVALID_AGENT', 'The agent has no invoke(input, ctx) method', { details: { field: 'agent.invoke' } });
  }
  for (const method of ['plan', 'review'] as const) {
    if (candidate[method] !== undefined && typeof candidate[method] !== 'function') {
      throw new OaoError('OAO_ERR_INVALID_AGENT', `The agent's "${method}" must be a function when present`, {
        details: { field: `agent.${method}` },
      });
    }
  }
  const ctorName = (agent as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof candidate.name === 'string' && candidate.name.length > 0
      ? candidate.name
      : typeof ctorName === 'string' && ctorName !== 'Object' && ctorName.length > 0
        ? ctorName
        : 'agent';
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
