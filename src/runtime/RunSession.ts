import type { AgentLike, ReviewDecision, ToolCallContext, ToolFunction, ToolSet } from '../agent.js';
import {
  OaoError,
  PolicyViolationError,
  RunAbortedError,
  safeString,
  serializeError,
  type PolicyViolation,
  type SerializedError,
} from '../errors.js';
import type { EventCounters, ModelReservation, OaoEvent, OaoEventOf, OaoEventPayload, OaoEventType } from '../events/schema.js';
import { checkModelCall, checkReservation, checkStepStart, checkTokens, checkToolCall, deadlinePassed, DEFAULT_RESERVE_OUTPUT_TOKENS, fitOutputTokens, retryDelay } from '../policy/checks.js';
import { deepFreeze, ownRecord } from '../policy/schema.js';
import type { ApprovalPredicate, PolicyLimits } from '../policy/schema.js';
import { checkRaise, type BudgetRaise } from '../policy/raiseLimits.js';
import { checkCostReservation, checkCostSpent, costMicros as costOf, priceOf, usdToMicros, type PriceMicros } from '../policy/pricing.js';
import type {
  ApprovalRecord,
  ExecutionReport,
  JsonValue,
  LifecycleState,
  Termination,
  TokenUsage,
} from '../report/schema.js';
import type { Clock } from './clock.js';
import { toRecordable, toRecordableText, type NormalizedStep } from './agentOutput.js';
import type { CallPhase, CallScope } from './CallScope.js';
import type { SharedBudget } from './SharedBudget.js';
import type { TenantAccount } from '../tenants/TenantLevel.js';
import { RunLog, type RunOwnership } from '../store/RunLog.js';
import type { Lease, RunStore } from '../store/RunStore.js';
import type { RecordedModelCall, RecordedToolCall, ResumePoint, ResumePointKind } from '../log/resumePoint.js';
import { canonicalJson } from '../report/canonicalJson.js';
import type { PluginRuleSet } from '../policy/pluginRules.js';
import type { PluginFactsBase, PluginRuleFacts, PluginRuleKind, PluginToolCall } from '../plugins/definePlugin.js';

/**
 * Where a session delivers its events besides its own record (the orchestrator's stream and
 * hooks). `observed` says whether anyone listens: events nobody would see are never built.
 */
export interface EventSink {
  readonly observed: boolean;
  emit(event: OaoEvent): void;
}

export interface RunSessionInit {
  readonly executionId: string;
  readonly agent: AgentLike;
  readonly agentName: string;
  readonly task: unknown;
  readonly tools: ToolSet | undefined;
  readonly toolNames: readonly string[];
  /** The run's tenant, recorded in its EXECUTION_START when set. */
  readonly tenant?: string | undefined;
  /** The queued batch the run belongs to, recorded in its EXECUTION_START when set. */
  readonly batch?: string | undefined;
  readonly limits: PolicyLimits;
  readonly executionHash: string;
  readonly clock: Clock;
  readonly sink: EventSink | undefined;
  /** Keep every event on the session (for handle.events() and replay to late subscribers). */
  readonly record: boolean;
  readonly syncOnly: boolean;
  readonly shared?: SharedBudget | undefined;
  /** The run's account on its tenant's budget in this process (the level above the run's and its batch's). */
  readonly tenantBudget?: TenantAccount | undefined;
  /** Where the run's log is written, if anywhere. */
  readonly store?: RunStore | undefined;
  /** Who leases the run in the store while it is live. */
  readonly ownership?: RunOwnership | undefined;
  /**
   * Verify-replay: sees every event as it is emitted (to compare it with the recorded one) and
   * the run arms no deadline (the recorded run's ending is replayed instead).
   */
  readonly replay?: ReplayObserver | undefined;
  /** Whether the agent has `plan` / `review`, read once when the request was checked. */
  readonly hasPlanner?: boolean;
  readonly hasReviewer?: boolean;
  /**
   * A run continued from its log (see `orch.resume()`): the ledger starts where the log left off,
   * and the interrupted call's recorded tool calls, model calls and usage are served from it.
   */
  readonly resume?: { readonly point: ResumePoint; readonly lease?: Lease | undefined } | undefined;
  /** `tools.approve` given as a function (see StrictPolicy.approvalPredicate). */
  readonly approvalPredicate?: ApprovalPredicate | undefined;
  /** How far `raise()` may take a limit: the orchestrator's own policy. @default the run's limits */
  readonly ceiling?: PolicyLimits | undefined;
  /** The rules of the orchestrator's plugins, asked before each spend like the policy's limits. */
  readonly plugins?: PluginRuleSet | undefined;
  /** A resumed run's tool calls before it was resumed, as its plugins' rules see them. */
  readonly pluginToolCalls?: readonly PluginToolCall[] | undefined;
}

export type { BudgetRaise };

/** A tool call waiting for approval, as `handle.pendingApprovals()` lists it. */
export interface PendingApprovalView {
  readonly callId: string;
  readonly tool: string;
  readonly args: JsonValue;
  readonly step: number;
  /** ISO 8601 */
  readonly requestedAt: string;
}

interface PendingEntry {
  readonly callId: string;
  readonly tool: string;
  readonly args: JsonValue;
  readonly step: number;
  readonly requestedAt: number;
  readonly decide: (decision: Decision) => void;
  timer: unknown;
}

interface ApprovalState {
  /** Calls waiting for a decision, by call id (in request order). */
  readonly pending: Map<string, PendingEntry>;
  /** Calls already decided: a second decision is refused. */
  readonly decided: Set<string>;
  /** Every decision, for the report. */
  readonly log: ApprovalRecord[];
  /** A resumed run: when each call its log left waiting was requested. */
  readonly restored: Map<string, number>;
}

type Decision =
  | { readonly kind: 'approve'; readonly by: string | null; readonly reason: string | null; readonly args?: JsonValue }
  | { readonly kind: 'deny'; readonly by: string | null; readonly reason: string | null }
  | { readonly kind: 'timeout' };

/** What verify-replay plugs into a session. */
export interface ReplayObserver {
  /** Called after every event is emitted, with the session (to end it as the recording did). */
  observe(event: OaoEvent, session: RunSession): void;
  /** The recorded outcome of a model call, served instead of calling the model. */
  recordedModelResult(callId: string): RecordedModelResult | undefined;
  /**
   * The refusal of the model call beginning now, when the recording shows it refused by a budget
   * above the run (its batch's or its tenant's, which a re-run does not have): it is refused as
   * recorded. Asked once per call.
   */
  recordedRefusal?(): RecordedModelRefusal | undefined;
  /**
   * The reservation the recording's model call beginning now made: a `fitOutput` call is lowered
   * to it at most, as budgets above the run (which a re-run does not have) may have lowered it.
   * Asked once per call.
   */
  recordedReservation?(): ModelReservation | undefined;
}

/** A model call refused by a budget above the run, as the log recorded it. */
export interface RecordedModelRefusal {
  readonly denied: OaoEventOf<'MODEL_CALL_DENIED'>['payload'];
  readonly violation: PolicyViolation;
}

/** A model call's outcome as the log recorded it. */
export interface RecordedModelResult {
  readonly ok: boolean;
  readonly output?: unknown;
  readonly error?: SerializedError;
  readonly usage: TokenUsage | null;
}

interface StateRecord {
  state: LifecycleState;
  enteredAt: number;
  durationMs: number;
}

/** The open record of one governed model call. */
/** What a model call may spend at most, when its caller knows: the prompt's tokens counted, the output's cap. */
export interface ModelCallSizes {
  readonly inputTokens?: number | undefined;
  readonly maxOutputTokens?: number | undefined;
  /** The caller can send the call with a lower output cap: lower it to what the budgets have left rather than refuse. */
  readonly fitOutput?: boolean | undefined;
}

export interface ModelCallRecord {
  readonly callId: string;
  /** In verify-replay, the recorded outcome: use it instead of calling the model. */
  readonly replayed: RecordedModelResult | undefined;
  /** Settles once the MODEL_CALL event is durable (at once without a store); rejects if it cannot be. */
  readonly ready: Promise<void>;
  /** With `fitOutput`: the output cap the call was lowered to (and reserved), when it was lowered. */
  readonly loweredMaxOutputTokens?: number;
  end(output: unknown, usage: TokenUsage | null): void;
  fail(error: unknown, usage: TokenUsage | null): void;
}

/** A governed tool call whose body the caller runs (see `RunSession.beginToolCall`). */
export interface ToolCallRecord {
  /** The call's id, once the call was allowed. */
  readonly callId: string | undefined;
  /** Set once `ready` settles when the log already held the call's result (the body need not run). */
  readonly served: { readonly value: unknown } | undefined;
  /** Settles when the body may run (allowed, counted, TOOL_CALL durable); rejects with the refusal. */
  readonly ready: Promise<void>;
  end(result: unknown): void;
  fail(error: unknown): void;
}

/** What the lifecycle machine is sent when something outside it ends the run. */
export type StopEvent = { type: 'CANCEL' } | { type: 'DEADLINE' } | { type: 'VIOLATION' } | { type: 'STORE_FAILED' } | { type: 'PLUGIN_FAILED' } | { type: 'PRICE_UNKNOWN' };

/** What the lifecycle machine is sent when a tool call starts or stops waiting for approval. */
export type ApprovalEvent = { type: 'APPROVAL.WAIT' } | { type: 'APPROVAL.DONE' } | { type: 'BUDGET.WAIT' } | { type: 'BUDGET.RAISED' };

type EventListener = (event: OaoEvent) => void;

/**
 * The ledger of one run, owned by its actor: counters, the event record, the state history and how
 * the run ended. Policy decisions are the pure functions of src/policy; the ledger applies them
 * synchronously at the moment of the spend, so nothing over a limit ever starts. It holds no
 * timers of its own except the run's deadline, which the orchestrator arms.
 */
export class RunSession {
  readonly executionId: string;
  readonly agent: AgentLike;
  readonly agentName: string;
  readonly task: unknown;
  readonly tools: ToolSet | undefined;
  readonly toolNames: readonly string[];
  readonly tenant: string | undefined;
  readonly batch: string | undefined;
  /** The run's limits: its effective policy, raised only by `raise()` while the run waits for budget. */
  limits: PolicyLimits;
  readonly executionHash: string;
  readonly clock: Clock;
  readonly syncOnly: boolean;
  readonly shared: SharedBudget | undefined;
  /** The tenant level of the run's budget: asked after the run's own limits and its batch's. */
  readonly tenantBudget: TenantAccount | undefined;
  readonly hasPlanner: boolean;
  readonly hasReviewer: boolean;

  steps = 0;
  attempt = 0;
  tokensIn = 0;
  tokensOut = 0;
  tokensTotal = 0;
  /** Micro-dollars spent on model calls, as the policy's `pricing` costs them. */
  costMicros = 0;
  toolCalls = 0;
  /**
   * Keyed by tool name; a Map, since a tool may be named "constructor" or "__proto__". Created by
   * the first tool call: most runs make none, and a live run's heap is part of what it costs.
   */
  #toolCallsByName: Map<string, number> | undefined;
  lastOutput: JsonValue = null;
  /** Frozen: handed to `review`, which must not be able to change what the run recorded. */
  lastStep: Readonly<{ step: number; input: unknown; output: JsonValue; usage: TokenUsage | null }> | null = null;

  /** Every event of the run, in order, when the session records them (see `record`). */
  readonly events: OaoEvent[] = [];
  readonly record: boolean;
  /** Set once the run is bound to end: later spend is refused. */
  termination: Termination | undefined;
  error: SerializedError | undefined;
  /** The error that aborts pending calls once the run is stopping. */
  stopError: unknown;
  report: ExecutionReport | undefined;
  startedAt = 0;

  #sink: EventSink | undefined;
  #listeners: Set<EventListener> | undefined;
  #state: LifecycleState = 'INIT';
  #history: StateRecord[] = [];
  /** Shared by consecutive events until a counter changes. */
  #counters: EventCounters | undefined;
  #send: ((event: StopEvent | ApprovalEvent) => void) | undefined;
  #deadline: unknown;
  #seq = 0;
  #toolSeq = 0;
  #modelSeq = 0;
  #activeScope: CallScope | undefined;
  #log: RunLog | undefined;
  readonly #replay: ReplayObserver | undefined;
  /** Time no process held the run (between a crash and its resume): not charged to timeoutMs. */
  #idleMs = 0;
  /** Idle time inside the state that was open when the run was resumed (left out of its duration). */
  #openIdleMs = 0;
  /** A resumed run: the lifecycle state its log left open, until the machine is back in it. */
  #resumedState: LifecycleState | undefined;
  /** A resumed run: where it continues (read by the machine once, at START). */
  #resumeKind: ResumePointKind | undefined;
  /** A resumed run whose step (or retry) was in flight: EXECUTE is re-entered without a new step. */
  #resumeInStep = false;
  /** What the interrupted call recorded, served to its re-run in order. */
  #ledger: ResumeLedger | undefined;
  #lastTimestamp = 0;
  #unloaded = false;
  /** A resumed run whose log left calls waiting: the wait goes on from the resume. */
  #resumeWaiting = false;
  /** The timestamp of the last event emitted. */
  #lastEmitted = 0;
  /** Calls waiting for a decision, by call id (in request order). */
  /** Approval bookkeeping, created by the first run that needs it (most never do). */
  #approvalState: ApprovalState | undefined;

  get #approvals(): ApprovalState {
    return (this.#approvalState ??= { pending: new Map(), decided: new Set(), log: [], restored: new Map() });
  }
  /** Calls already decided: a second decision is refused. */
  /** Every decision, for the report. */
  /** Since when at least one call waits for approval (not live time); undefined otherwise. */
  #waitingSince: number | undefined;
  /** The orchestrator armed the deadline: re-armed when a wait for approval ends. */
  #deadlineWanted = false;
  /** The machine was told that the run waits (AWAITING_APPROVAL). */
  #waitSignalled = false;
  /** A resumed run: when each call its log left waiting was requested. */
  readonly #approvalPredicate: ApprovalPredicate | undefined;
  readonly #ceiling: PolicyLimits;
  /** The run waits for a limit to be raised: what it reached, and who waits. */
  #budgetWait: { readonly violation: PolicyViolation; readonly waiters: (() => void)[]; timer: unknown; readonly inStep: boolean } | undefined;
  /** The clock reading the next emitted event carries, when its caller recorded the same one. */
  #at: number | undefined;
  #onFinish: ((report: ExecutionReport) => void) | undefined;
  /** Behind `ctx.runSignal`: created only when an agent asks for it, aborted when the run ends. */
  #runController: AbortController | undefined;
  /** Tool bodies by name, own names only (never an inherited `constructor` or `toString`). */
  /** Undefined for a run without tools (most runs): no Map to build. */
  readonly #toolBodies: ReadonlyMap<string, (...args: never[]) => unknown> | undefined;
  /** Bodies of calls opened with `beginToolCall`, by call id, until they are run. */
  #externalBodies: Map<string, ToolFunction> | undefined;

  /** Reservations of the model calls that are running, by call id (see #hold). */
  #holds: Map<string, { readonly scope: CallScope; readonly tokens: number; readonly costMicros: number }> | undefined;
  /** Model calls whose request went out and that have not settled, by call id: how to abandon each (see `#openModelCall`). */
  #openCalls: Map<string, () => void> | undefined;
  #reservedTotal = 0;
  /** Micro-dollars held by this run's running model calls. */
  #reservedCostMicros = 0;
  /** The plugins' rules; undefined when there are none (most runs). */
  readonly #plugins: PluginRuleSet | undefined;
  /** The run's tool calls as rules see them (kept only when there are rules). */
  #pluginCalls: readonly PluginToolCall[] = NO_CALLS;
  /** The stepStart rules' answer for the step about to start, asked once per decision (keyed by seq). */
  #pluginStep: { readonly seq: number; readonly violation: PolicyViolation | null; readonly failure: OaoError | null; readonly refused: boolean } | undefined;

  constructor(init: RunSessionInit) {
    this.executionId = init.executionId;
    this.agent = init.agent;
    this.agentName = init.agentName;
    this.task = init.task;
    this.tools = init.tools;
    this.toolNames = Object.isFrozen(init.toolNames) ? init.toolNames : Object.freeze([...init.toolNames]);
    this.tenant = init.tenant;
    this.batch = init.batch;
    this.limits = init.limits;
    this.executionHash = init.executionHash;
    this.clock = init.clock;
    this.#sink = init.sink;
    this.record = init.record;
    this.syncOnly = init.syncOnly;
    this.shared = init.shared;
    this.tenantBudget = init.tenantBudget;
    this.hasPlanner = init.hasPlanner ?? typeof (init.agent as { plan?: unknown }).plan === 'function';
    this.hasReviewer = init.hasReviewer ?? typeof (init.agent as { review?: unknown }).review === 'function';
    const tools = init.tools;
    if (tools !== undefined && init.toolNames.length > 0) {
      const bodies = new Map<string, (...args: never[]) => unknown>();
      for (const name of init.toolNames) {
        const body = Object.hasOwn(tools, name) ? tools[name] : undefined;
        if (typeof body === 'function') bodies.set(name, body as (...args: never[]) => unknown);
      }
      this.#toolBodies = bodies;
    }
    this.#replay = init.replay;
    this.#approvalPredicate = init.approvalPredicate;
    this.#ceiling = init.ceiling ?? init.limits;
    this.#plugins = init.plugins;
    if (init.plugins !== undefined && init.pluginToolCalls !== undefined) this.#pluginCalls = Object.freeze([...init.pluginToolCalls]);
    if (init.resume !== undefined) this.#restore(init.resume.point);
    if (init.store !== undefined) {
      this.#log = new RunLog(init.store, this.executionId, (error) => this.#storeFailed(error), init.ownership, init.resume?.lease === undefined ? undefined : { lease: init.resume.lease });
    }
  }

  /** Takes the ledger to where the log left the run. */
  #restore(point: ResumePoint): void {
    const fold = point.fold;
    this.#seq = fold.seq;
    this.startedAt = fold.startedAt;
    this.#lastTimestamp = fold.lastTimestamp;
    this.#idleMs = fold.idleMs;
    this.steps = fold.steps;
    this.attempt = point.kind === 'retry' && point.retry !== undefined ? point.retry.attempt : fold.attempt;
    this.tokensIn = fold.tokens.input;
    this.tokensOut = fold.tokens.output;
    this.tokensTotal = fold.tokens.total;
    this.costMicros = fold.costMicros;
    this.toolCalls = fold.toolCalls;
    if (fold.toolCallsByName.size > 0) this.#toolCallsByName = new Map(fold.toolCallsByName);
    this.lastOutput = fold.lastOutput;
    if (point.lastStep !== null) this.lastStep = Object.freeze({ ...point.lastStep });
    this.#history = fold.stateHistory.map((entry) => ({ state: entry.state, enteredAt: entry.enteredAt, durationMs: entry.durationMs }));
    this.#state = fold.state ?? 'INIT';
    this.#resumedState = fold.state;
    this.#resumeKind = point.kind;
    this.#resumeInStep = point.kind === 'step' || point.kind === 'retry';
    if (fold.termination !== undefined) {
      this.termination = fold.termination;
      this.error = fold.error === undefined ? undefined : deepFreeze({ ...fold.error });
      this.stopError = new OaoError('OAO_ERR_RUN_FINISHED', fold.termination.message ?? 'The run is ending');
    }
    this.#toolSeq = point.toolSeq;
    this.#modelSeq = point.modelSeq;
    if (fold.approvals.length > 0 || fold.pendingApprovals.size > 0) {
      const approvals = this.#approvals;
      approvals.log.push(...fold.approvals.map((record) => Object.freeze({ ...record })));
      for (const record of fold.approvals) approvals.decided.add(record.callId);
      for (const pending of fold.pendingApprovals.values()) approvals.restored.set(pending.callId, pending.requestedAt);
    }
    if (fold.waitingSince !== undefined) {
      // The wait before the gap ends at the log's last event; it goes on from the resume.
      this.#idleMs += Math.max(0, fold.lastTimestamp - fold.waitingSince);
      this.#resumeWaiting = true;
    }
    const recorded = point.recorded;
    if (recorded !== undefined && (recorded.tools.length > 0 || recorded.models.length > 0 || recorded.usages.length > 0)) {
      this.#toolSeq = recorded.toolSeqBefore;
      this.#modelSeq = recorded.modelSeqBefore;
      this.#ledger = new ResumeLedger(recorded.tools, recorded.models, recorded.usages, recorded.toolSeqEnd, recorded.modelSeqEnd);
    }
  }

  /** Where a resumed run continues; undefined for a run that starts from the beginning. */
  get resumeKind(): ResumePointKind | undefined {
    return this.#resumeKind;
  }

  /** The input the resumed run's next (or interrupted) step takes, set by `orch.resume()`. */
  resumeInput: unknown;

  /**
   * EXECUTE is entered to continue a step that was in flight (or about to be retried): no new
   * step is counted or announced. True once, for that entry.
   */
  takeResumedStep(): boolean {
    const inStep = this.#resumeInStep;
    this.#resumeInStep = false;
    return inStep;
  }

  /** The run's log writer, when the run is recorded in a store. */
  get log(): RunLog | undefined {
    return this.#log;
  }

  get finished(): boolean {
    return this.report !== undefined;
  }

  get state(): LifecycleState {
    return this.#state;
  }

  /** Connects the ledger to its run actor: stops decided outside the machine are sent to it. */
  bindActor(actor: { send(event: StopEvent | ApprovalEvent): void }): void {
    this.#send = (event) => actor.send(event);
  }

  /** Aborted once the run has ended (its report is built): see `AgentContext.runSignal`. */
  get runSignal(): AbortSignal {
    if (this.#runController === undefined) {
      this.#runController = new AbortController();
      if (this.finished) this.#runController.abort(runEnded());
    }
    return this.#runController.signal;
  }

  /** Registers who awaits the report (called once, with the report, when the run ends). */
  onFinish(callback: (report: ExecutionReport) => void): void {
    this.#onFinish = callback;
  }

  /** Emits EXECUTION_START (and arms the deadline, unless told not to). Called once, before the actor starts. */
  begin(armDeadline: boolean): void {
    // One clock reading: the report's startedAt is this event's timestamp, so a fold over the log
    // gives the same report.
    this.startedAt = this.clock.now();
    this.#at = this.startedAt;
    const payload: { -readonly [K in keyof OaoEventPayload<'EXECUTION_START'>]: OaoEventPayload<'EXECUTION_START'>[K] } = {
      agentName: this.agentName,
      // A copy: the task itself belongs to the caller and the agent; hooks see what was recorded.
      task: this.wantsEvents ? toRecordable(this.task) : null,
      policy: this.limits,
      tools: this.toolNames as string[],
      executionHash: this.executionHash,
    };
    // Only a run with a tenant names one (a log without it is as before tenants existed).
    if (this.tenant !== undefined) payload.tenant = this.tenant;
    if (this.batch !== undefined) payload.batch = this.batch;
    this.emit('EXECUTION_START', payload);
    if (armDeadline) this.armDeadline();
  }

  /**
   * Emits EXECUTION_RESUMED for a run continued from its log (instead of `begin()`): the time since
   * the log's last event is idle time, not charged to `timeoutMs`.
   */
  beginResumed(owner: string | null, armDeadline: boolean): void {
    const now = this.clock.now();
    const idleMs = Math.max(0, now - this.#lastTimestamp);
    this.#idleMs += idleMs;
    this.#openIdleMs += idleMs;
    this.#at = now;
    this.emit('EXECUTION_RESUMED', { idleMs, owner, point: this.#resumeKind ?? 'start' });
    if (this.#resumeWaiting) this.#waitingSince = now;
    if (armDeadline) this.armDeadline();
  }

  /** Live time so far: since `begin()`, less the time no process held the run. */
  liveMs(now = this.clock.now()): number {
    const waiting = this.#waitingSince === undefined ? 0 : Math.max(0, now - this.#waitingSince);
    return Math.max(0, now - this.startedAt - this.#idleMs - waiting);
  }

  /** The time the last event carried (or the clock, when no event is built). */
  #eventTime(): number {
    return this.wantsEvents ? this.#lastEmitted : this.clock.now();
  }

  /**
   * Arms the run's deadline, measured from `begin()`. The orchestrator arms it only once the
   * synchronous part of a run is over, so a run that finished at once never creates a timer.
   */
  armDeadline(): void {
    this.#deadlineWanted = true;
    // While a call waits for approval the deadline does not run; it is armed when the wait ends.
    if (this.finished || this.#deadline !== undefined || this.#replay !== undefined || this.#waitingSince !== undefined) return;
    const remaining = this.limits.timeoutMs - this.liveMs();
    this.#deadline = this.clock.setTimeout(() => this.timeOut(), Math.max(0, remaining));
  }

  // ---- events -------------------------------------------------------------------------------

  /** Whether an event emitted now would reach anyone (callers skip building payloads otherwise). */
  get wantsEvents(): boolean {
    return this.record || this.#log !== undefined || this.#listeners !== undefined || (this.#sink !== undefined && this.#sink.observed);
  }

  emit<T extends OaoEventType>(type: T, payload: OaoEventPayload<T>): void {
    // An unloaded run records nothing more here: its log goes on in whoever resumes it.
    if (this.#unloaded) return;
    const seq = this.#seq++;
    // A timestamp the caller already read (and recorded elsewhere) is used once, for this event.
    const at = this.#at;
    this.#at = undefined;
    if (!this.wantsEvents) return;
    const timestamp = at ?? this.clock.now();
    this.#lastEmitted = timestamp;
    const event = {
      id: `${this.executionId}:${seq}`,
      executionId: this.executionId,
      seq,
      timestamp,
      type,
      state: this.#state,
      counters: this.counters(),
      payload,
    } as OaoEvent;
    // Every value in a payload is the runtime's own copy and already frozen (recorded values,
    // usage, counters, limits, errors, the report); freezing the envelope and the payload means no
    // hook or subscriber can change what another one (or the run's record) sees.
    Object.freeze(payload);
    Object.freeze(event);
    this.#log?.add(event);
    if (this.record) this.events.push(event);
    if (this.#listeners !== undefined) {
      for (const listener of this.#listeners) listener(event);
    }
    if (this.#sink !== undefined && this.#sink.observed) this.#sink.emit(event);
    this.#replay?.observe(event, this);
  }

  counters(): EventCounters {
    return (this.#counters ??= Object.freeze({ steps: this.steps, tokens: this.tokensTotal, toolCalls: this.toolCalls }));
  }

  /** Live listener for this run's events; returns the function that removes it. */
  listen(listener: EventListener): () => void {
    (this.#listeners ??= new Set()).add(listener);
    return () => this.#listeners?.delete(listener);
  }

  // ---- lifecycle states ---------------------------------------------------------------------

  /**
   * A lifecycle state is entered. The state it replaces is closed here, with a STATE_EXIT just
   * before the STATE_ENTER: what the transition did on its way (STEP_COMPLETE, REVIEW_DECISION, a
   * violation) is thus reported while the run is still in the state it is leaving, and the machine
   * needs no exit actions.
   */
  enterState(state: LifecycleState): void {
    if (this.#resumedState !== undefined) {
      // A resumed run: its log already has INIT, and the state it left open stays open.
      if (state === 'INIT') return;
      const open = this.#resumedState;
      this.#resumedState = undefined;
      if (state === open) return;
    }
    const now = this.clock.now();
    const previous = this.#history[this.#history.length - 1];
    const wanted = this.wantsEvents;
    if (previous !== undefined) {
      previous.durationMs = Math.max(0, now - previous.enteredAt - this.#openIdleMs);
      this.#openIdleMs = 0;
      this.#at = now;
      if (wanted) this.emit('STATE_EXIT', { state: previous.state, durationMs: previous.durationMs });
      else this.#seq++;
    }
    this.#state = state;
    this.#history.push({ state, enteredAt: now, durationMs: 0 });
    this.#at = now;
    if (wanted) this.emit('STATE_ENTER', STATE_ENTER_PAYLOADS[state]);
    else this.#seq++;
    this.#at = undefined;
  }

  // ---- steps and spend ----------------------------------------------------------------------

  /** Has the run been live longer than its time limit, by its clock now? */
  get pastDeadline(): boolean {
    return deadlinePassed(this.limits, this.liveMs());
  }

  /** Would charging `tokens` more take the run (or its batch) past a token budget? */
  tokensWouldExceed(tokens: number): boolean {
    // With onLimit.maxTokens 'pause' the run's own token limit pauses before the next step instead.
    return (
      (checkTokens(this.limits, this.tokensTotal + tokens) !== null && !this.#tokensPause) ||
      (this.shared !== undefined && this.shared.checkTokens(tokens) !== null) ||
      (this.tenantBudget !== undefined && this.tenantBudget.checkTokens(tokens) !== null)
    );
  }

  /** The policy pauses at the token limit (onLimit.maxTokens: 'pause'). */
  get #tokensPause(): boolean {
    return this.limits.onLimit?.maxTokens === 'pause';
  }

  /** The token budget is spent and pauses: nothing more may start until it is raised. */
  #tokensExhausted(): PolicyViolation | null {
    if (!this.#tokensPause || this.tokensTotal < this.limits.maxTokens) return null;
    return {
      rule: 'max_tokens',
      message: `The token budget (${this.limits.maxTokens}) is spent: ${this.tokensTotal} tokens used`,
      limit: this.limits.maxTokens,
      attempted: this.tokensTotal,
    };
  }

  canStartStep(): boolean {
    return (
      checkStepStart(this.limits, this.steps) === null &&
      (this.shared === undefined || this.shared.checkStep() === null) &&
      (this.tenantBudget === undefined || this.tenantBudget.checkStep() === null) &&
      (!this.#tokensPause || this.#tokensExhausted() === null) &&
      (this.#plugins === undefined || this.#stepRuling().refused === false)
    );
  }

  /**
   * What the plugins' stepStart rules say about the next step. Asked from the machine's guards, so
   * it records nothing: `refuseStep` records the refusal (or the rule's failure). Asked once per
   * decision: the answer is kept until the next event.
   */
  #stepRuling(): { readonly violation: PolicyViolation | null; readonly failure: OaoError | null; readonly refused: boolean } {
    const cached = this.#pluginStep;
    if (cached !== undefined && cached.seq === this.#seq) return cached;
    let violation: PolicyViolation | null = null;
    let failure: OaoError | null = null;
    const plugins = this.#plugins;
    if (plugins !== undefined && plugins.has('stepStart')) {
      try {
        violation = plugins.check('stepStart', this.#pluginFacts(this.steps + 1), this.counters());
      } catch (error) {
        failure = error as OaoError;
      }
    }
    // A rule that failed refuses the step too: the run fails closed.
    const ruling = { seq: this.#seq, violation, failure, refused: violation !== null || failure !== null };
    this.#pluginStep = ruling;
    return ruling;
  }

  /** The facts every plugin rule is given. */
  #pluginFacts(step: number): PluginFactsBase {
    return { executionId: this.executionId, agentName: this.agentName, step, toolCalls: this.#pluginCalls };
  }

  /**
   * Asks the plugins' rules of one kind (when there are any): their refusal, or null. A rule that
   * fails ends the run closed (reason `error`, OAO_ERR_PLUGIN_FAILED) and its error is thrown.
   */
  #askPlugins<K extends PluginRuleKind>(kind: K, facts: () => PluginRuleFacts[K]): PolicyViolation | null {
    const plugins = this.#plugins;
    if (plugins === undefined || !plugins.has(kind)) return null;
    try {
      return plugins.check(kind, facts(), this.counters());
    } catch (error) {
      this.#pluginFailed(error as OaoError);
      throw error;
    }
  }

  /** A plugin's rule failed: the run ends FAILED with its error before anything more happens. */
  #pluginFailed(error: OaoError): void {
    if (this.finished || this.termination !== undefined) return;
    this.failWith(error);
    this.#activeScope?.abort(error);
    this.#stop({ type: 'PLUGIN_FAILED' });
  }

  /** The REVIEW -> EXECUTE edge was refused: record the max_steps violation (the run's or the batch's). */
  refuseStep(): void {
    const violation = checkStepStart(this.limits, this.steps) ?? this.shared?.checkStep() ?? this.tenantBudget?.checkStep() ?? null;
    if (violation === null) {
      if (this.#plugins === undefined) return;
      const ruling = this.#stepRuling();
      if (ruling.failure !== null) this.failWith(ruling.failure);
      else if (ruling.violation !== null) this.recordViolation(ruling.violation);
      return;
    }
    if (violation.scope === 'shared') this.shared?.trip(violation, this.executionId);
    this.recordViolation(violation);
  }

  beginStep(): void {
    this.#counters = undefined;
    this.steps += 1;
    this.attempt = 1;
    this.shared?.chargeStep();
    this.tenantBudget?.chargeStep();
  }

  recordPlan(input: unknown): void {
    this.#endLedger();
    if (this.wantsEvents) this.emit('PLAN_COMPLETE', { input: toRecordable(input) });
    else this.#seq++;
  }

  announceAttempt(input: unknown): void {
    if (this.wantsEvents) this.emit('STEP_START', { step: this.steps, attempt: this.attempt, input: toRecordable(input) });
    else this.#seq++;
  }

  completeStep(input: unknown, result: NormalizedStep): void {
    this.#endLedger();
    this.lastOutput = result.output;
    this.lastStep = Object.freeze({ step: this.steps, input, output: result.output, usage: result.usage });
    if (this.wantsEvents) this.emit('STEP_COMPLETE', { step: this.steps, attempt: this.attempt, output: result.output, usage: result.usage });
    else this.#seq++;
    if (result.usage !== null) this.addUsage(result.usage, 'output', false);
  }

  recordReview(decision: ReviewDecision): void {
    this.#endLedger();
    this.emit(
      'REVIEW_DECISION',
      !decision.done && decision.input !== undefined
        ? { step: this.steps, done: false, input: toRecordable(decision.input) }
        : { step: this.steps, done: decision.done },
    );
  }

  /** An agent call failed: record it, and either count a retry or end the run with reason error. */
  agentError(phase: CallPhase, error: unknown, willRetry: boolean): void {
    if (this.termination !== undefined) return;
    this.#endLedger();
    const attempt = phase === 'step' ? this.attempt : 1;
    let retryInMs: number | null = null;
    if (willRetry) {
      this.attempt += 1;
      retryInMs = retryDelay(this.limits, this.attempt - 1);
    }
    this.emit('ERROR', {
      phase,
      step: phase === 'plan' ? 0 : this.steps,
      attempt,
      error: frozenError(error),
      willRetry,
      retryInMs,
    });
    if (!willRetry) this.failWith(error, false);
  }

  setActiveScope(scope: CallScope): void {
    this.#activeScope = scope;
  }

  releaseScope(scope: CallScope): void {
    if (this.#activeScope === scope) this.#activeScope = undefined;
    if (this.#holds !== undefined) {
      for (const [callId, hold] of this.#holds) {
        if (hold.scope !== scope) continue;
        // A call its aborted step left running may still be billed: it is charged its whole
        // reservation now. One still open when its step simply ended holds nothing any more; its
        // result, should it come, is charged as it reports.
        if (scope.aborted) this.#openCalls?.get(callId)?.();
        this.#release(callId);
      }
    }
  }

  /** Tokens held by this run's model calls that are running (their reservations). */
  get reservedTokens(): number {
    return this.#reservedTotal;
  }

  /** Holds a running model call's reservation against the run's budget and its batch's. */
  #hold(callId: string, scope: CallScope, tokens: number, costMicros = 0): void {
    (this.#holds ??= new Map()).set(callId, { scope, tokens, costMicros });
    this.#reservedTotal += tokens;
    this.#reservedCostMicros += costMicros;
    this.shared?.reserve(tokens, costMicros);
    this.tenantBudget?.reserve(tokens, costMicros);
  }

  #release(callId: string): void {
    const hold = this.#holds?.get(callId);
    if (hold === undefined) return;
    this.#holds?.delete(callId);
    this.#reservedTotal -= hold.tokens;
    this.#reservedCostMicros -= hold.costMicros;
    this.shared?.release(hold.tokens, hold.costMicros);
    this.tenantBudget?.release(hold.tokens, hold.costMicros);
  }

  /** The run's cost limit in micro-dollars; undefined without one. */
  get #maxCostMicros(): number | undefined {
    const usd = this.limits.maxCostUsd;
    return usd === undefined ? undefined : usdToMicros(usd);
  }

  /** Does a cost limit (the run's, its batch's or its tenant's) cover the run? Then every model call must be priced. */
  get #costLimited(): boolean {
    return this.limits.maxCostUsd !== undefined || this.shared?.maxCostMicros !== undefined || this.tenantBudget?.maxCostMicros !== undefined;
  }

  /** The price of `model` under the run's policy (its own entry, else `default`), or undefined. */
  #priceOf(model: string | null): PriceMicros | undefined {
    return priceOf(this.limits.pricing, model);
  }

  /**
   * Whether the run is costed at all (its policy has prices or a cost limit): only then do its
   * usage events and its report carry cost.
   */
  get costed(): boolean {
    return this.limits.pricing !== undefined || this.limits.maxCostUsd !== undefined;
  }

  /** Adds token spend; spend past the budget ends the run (and aborts the running step) at once. */
  addUsage(usage: TokenUsage, source: 'reported' | 'output' | 'model', notifyActor = true, model: string | null = null): void {
    if (usage.total === 0 && usage.input === 0 && usage.output === 0) return;
    // The re-run of an interrupted call reports again what the log already charged: not twice.
    if (source === 'reported' && this.#ledger !== undefined && this.#ledger.takeUsage(usage)) return;
    const total = this.tokensTotal + usage.total;
    if (!Number.isSafeInteger(total) || !Number.isSafeInteger(this.tokensIn + usage.input) || !Number.isSafeInteger(this.tokensOut + usage.output)) {
      // The totals would lose precision: refuse the charge (the counters stay exact) and stop the run.
      const violation = checkTokens(this.limits, Number.MAX_SAFE_INTEGER + 1) as PolicyViolation;
      if (notifyActor) this.violate(violation);
      else this.recordViolation(violation);
      return;
    }
    let refused: PolicyViolation | null = null;
    if (this.#plugins !== undefined) {
      try {
        refused = this.#askPlugins('usage', () => ({ ...this.#pluginFacts(this.steps), usage: { input: usage.input, output: usage.output, total: usage.total, source } }));
      } catch {
        return; // the run fails closed (see #askPlugins); the charge is not counted
      }
    }
    // Usage naming a priced model is costed: a model call's always, a bare report's when it names one.
    const price = model === null && source !== 'model' ? undefined : this.#priceOf(model);
    const cost = price === undefined ? undefined : costOf(price, usage.input, usage.output);
    this.#counters = undefined;
    this.tokensIn += usage.input;
    this.tokensOut += usage.output;
    this.tokensTotal += usage.total;
    if (cost !== undefined) this.costMicros = Math.min(Number.MAX_SAFE_INTEGER, this.costMicros + cost);
    this.emit('TOKEN_USAGE', {
      step: this.steps,
      input: usage.input,
      output: usage.output,
      total: usage.total,
      source,
      ...(model === null || !this.costed ? {} : { model }),
      ...(cost === undefined || !this.costed ? {} : { costMicros: cost }),
    });
    const sharedViolation = this.shared?.chargeTokens(usage.total) ?? null;
    const sharedCost = cost === undefined ? null : (this.shared?.chargeCost(cost) ?? null);
    const tenant = this.tenantBudget;
    const tenantTokens = tenant === undefined ? null : tenant.chargeTokens(usage.total);
    const tenantCost = tenant === undefined || cost === undefined ? null : tenant.chargeCost(cost);
    const own = checkTokens(this.limits, this.tokensTotal);
    const maxCost = this.#maxCostMicros;
    const ownCost = maxCost === undefined ? null : checkCostSpent('run', maxCost, this.costMicros);
    // Spend that crossed a pausing limit has happened: the run is not failed for it, it pauses
    // before its next model call or step.
    const violation = (own !== null && this.#tokensPause ? null : own) ?? ownCost ?? sharedViolation ?? sharedCost ?? tenantTokens ?? tenantCost ?? refused;
    if (violation === null) return;
    if (violation.scope === 'shared') this.shared?.trip(violation, this.executionId);
    // Usage inside a step stops the actor; usage carried by a step's output is decided by the machine itself.
    if (notifyActor) this.violate(violation);
    else this.recordViolation(violation);
  }

  /**
   * A governed tool call. The policy is asked first; a denied call never runs its body and ends the
   * run even if the agent catches the error it receives.
   */
  callTool(scope: CallScope, name: string, args: unknown): Promise<unknown> {
    return this.#callTool(scope, name, args, undefined);
  }

  /**
   * A governed tool call whose body someone else runs (a framework's own tool). The same path as
   * `callTool`: policy, plugin rules, approvals, counting, TOOL_CALL written ahead; `ready` settles
   * when the body may run, and `end`/`fail` record its outcome (TOOL_RESULT).
   */
  beginToolCall(scope: CallScope, name: string, args: unknown): ToolCallRecord {
    let settle!: { resolve(value: unknown): void; reject(error: unknown): void };
    const result = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
    let callId: string | undefined;
    let started = false;
    let served: { readonly value: unknown } | undefined;
    let gate!: { resolve(): void; reject(error: unknown): void };
    const ready = new Promise<void>((resolve, reject) => (gate = { resolve, reject }));
    ready.catch(noop);
    const body: ToolFunction = (_args: unknown, call: ToolCallContext) => {
      started = true;
      callId = call.callId;
      gate.resolve();
      return result;
    };
    this.#callTool(scope, name, args, body).then(
      (value) => {
        // Settled without the body: the log already held this call's result (a resumed run).
        if (!started) served = { value };
        gate.resolve();
      },
      (error: unknown) => {
        if (!started) gate.reject(error);
      },
    );
    return {
      get callId() {
        return callId;
      },
      get served() {
        return served;
      },
      ready,
      end: (value) => settle.resolve(value),
      fail: (error) => settle.reject(error),
    };
  }

  #callTool(scope: CallScope, name: string, args: unknown, external: ToolFunction | undefined): Promise<unknown> {
    const refusal = scope.refusal();
    if (refusal !== undefined) return rejectHandled(refusal);
    if (this.#ledger !== undefined) {
      const recorded = this.#ledger.takeTool(name, args);
      if (recorded !== undefined) {
        if (external !== undefined) (this.#externalBodies ??= new Map()).set(recorded.callId, external);
        return this.#serveTool(scope, recorded, args);
      }
      this.#toolSeq = Math.max(this.#toolSeq, this.#ledger.toolSeqEnd);
    }
    const callId = `t${++this.#toolSeq}`;
    if (external !== undefined) (this.#externalBodies ??= new Map()).set(callId, external);
    return this.#authorize(scope, name, args, callId, false);
  }

  /** The body of a call: one run by someone else (`beginToolCall`), else the run's tool. Taken once. */
  #bodyOf(name: string, callId: string): ToolFunction | undefined {
    const external = this.#externalBodies?.get(callId);
    if (external === undefined) return this.#toolBodies?.get(name) as ToolFunction | undefined;
    this.#externalBodies?.delete(callId);
    return external;
  }

  /**
   * Asks the policy about a tool call, then waits for its approval when the policy wants one
   * (unless it was given), then counts it, records TOOL_CALL (write-ahead) and runs its body.
   */
  #authorize(scope: CallScope, name: string, args: unknown, callId: string, approved: boolean): Promise<unknown> {
    const step = scope.step;
    let violation =
      checkToolCall(this.limits, name, this.toolCalls, this.#toolCallsByName?.get(name) ?? 0) ?? this.shared?.checkToolCall(name) ?? this.tenantBudget?.checkToolCall(name) ?? null;
    // The rules see the arguments as they are recorded; the same copy goes into the run's call list.
    const asked = this.#plugins === undefined ? undefined : Object.freeze({ tool: name, args: toRecordable(args) });
    if (violation === null && asked !== undefined) {
      try {
        violation = this.#askPlugins('toolCall', () => ({ ...this.#pluginFacts(step), toolCall: asked }));
      } catch (error) {
        return rejectHandled(error);
      }
    }
    if (violation !== null) {
      if (this.#pauses(violation)) {
        return scope.race(this.#waitForBudget(violation, true)).then(() => {
          const refusal = scope.refusal();
          if (refusal !== undefined) throw refusal;
          return this.#authorize(scope, name, args, callId, approved);
        });
      }
      return this.#denyTool(step, callId, name, args, violation);
    }
    if (this.#externalBodies?.has(callId) !== true && this.#toolBodies?.get(name) === undefined) {
      return rejectHandled(
        new OaoError('OAO_ERR_UNKNOWN_TOOL', `The run has no tool named "${name}"`, {
          details: { tool: name, tools: [...this.toolNames] },
        }),
      );
    }
    if (!approved && this.#needsApproval(name, args)) return this.#requestApproval(scope, name, args, callId);
    const body = this.#bodyOf(name, callId) as ToolFunction;
    this.#counters = undefined;
    this.toolCalls += 1;
    const byName = (this.#toolCallsByName ??= new Map());
    byName.set(name, (byName.get(name) ?? 0) + 1);
    this.shared?.chargeToolCall();
    this.tenantBudget?.chargeToolCall();
    if (asked !== undefined) this.#pluginCalls = Object.freeze([...this.#pluginCalls, asked]);
    this.emit('TOOL_CALL', { step, callId, tool: name, args: toRecordable(args) });
    // Write-ahead: the TOOL_CALL that authorizes the body is durable before the body runs.
    let ready: void | Promise<void>;
    try {
      ready = this.#log?.writeAhead();
    } catch (error) {
      return rejectHandled(error);
    }
    const run = (): Promise<unknown> => this.#runTool(scope, body, name, callId, step, args);
    if (ready === undefined) return run();
    return scope.race(
      ready.then(() => {
        const refusal = scope.refusal();
        if (refusal !== undefined) throw refusal;
        return run();
      }),
    );
  }

  #denyTool(step: number, callId: string, name: string, args: unknown, violation: PolicyViolation): Promise<never> {
    this.emit('TOOL_DENIED', {
      step,
      callId,
      tool: name,
      args: toRecordable(args),
      rule: violation.rule,
      message: violation.message,
    });
    const error = new PolicyViolationError(violation, 'OAO_ERR_TOOL_DENIED');
    // The batch halts first, so stopping this run cannot let a queued sibling start.
    if (violation.scope === 'shared') this.shared?.trip(violation, this.executionId);
    this.violate(violation);
    return rejectHandled(error);
  }

  // ---- budget pauses ------------------------------------------------------------------------

  /** Whether reaching this limit pauses the run (the policy's onLimit) instead of failing it. */
  #pauses(violation: PolicyViolation): boolean {
    // Only the run's own limits pause: a batch's or a tenant's total is not the run's to raise.
    if (violation.scope === 'shared' || violation.scope === 'tenant') return false;
    const onLimit = this.limits.onLimit;
    return (violation.rule === 'max_steps' && onLimit?.maxSteps === 'pause') || (violation.rule === 'max_tool_calls' && onLimit?.maxToolCalls === 'pause');
  }

  /** The next step would pass maxSteps, and the policy pauses there instead of failing. */
  get stepBudgetPauses(): boolean {
    if (this.shared !== undefined && this.shared.checkStep() !== null) return false;
    if (this.tenantBudget !== undefined && this.tenantBudget.checkStep() !== null) return false;
    const violation = checkStepStart(this.limits, this.steps);
    if (violation !== null) return this.#pauses(violation);
    return this.#tokensExhausted() !== null;
  }

  /** Whether the run waits for a limit to be raised. */
  get waitingForBudget(): boolean {
    return this.#budgetWait !== undefined;
  }

  /** Between steps: the step budget is spent and pauses; the machine is in AWAITING_BUDGET. */
  exhaustSteps(): void {
    const violation = checkStepStart(this.limits, this.steps) ?? this.#tokensExhausted();
    if (violation === null || this.#budgetWait !== undefined) return;
    void this.#waitForBudget(violation, false);
  }

  /**
   * Records BUDGET_EXHAUSTED (once per wait), stops the deadline and arms the decision timeout;
   * settles when a raise comes. A timeout ends the run with the original limit's violation.
   */
  #waitForBudget(violation: PolicyViolation, inStep: boolean): Promise<void> {
    let wait = this.#budgetWait;
    if (wait === undefined) {
      wait = { violation, waiters: [], timer: undefined, inStep };
      this.#budgetWait = wait;
      this.emit('BUDGET_EXHAUSTED', {
        step: this.steps,
        rule: violation.rule,
        message: violation.message,
        limit: violation.limit,
        attempted: violation.attempted,
        ...(violation.tool === undefined ? {} : { tool: violation.tool }),
      });
      try {
        void this.#log?.writeAhead();
      } catch {
        // reported through the store's failure path: the run ends
      }
      this.#startWaiting(inStep ? 'BUDGET.WAIT' : undefined);
      const timeoutMs = this.limits.budgetDecisionTimeoutMs;
      if (timeoutMs !== undefined) {
        const current = wait;
        current.timer = this.clock.setTimeout(() => {
          current.timer = undefined;
          if (this.#budgetWait === current) this.violate(current.violation);
        }, timeoutMs);
      }
    }
    const current = wait;
    return new Promise<void>((resolve) => current.waiters.push(resolve));
  }

  /**
   * Raises limits of a run that waits for budget, within the ceiling (the orchestrator's own
   * policy), and lets it go on: BUDGET_RAISED records the new values, who and why.
   */
  raise(limits: BudgetRaise, decision: { readonly by?: string | undefined; readonly reason?: string | undefined } = {}): void {
    if (this.finished || this.termination !== undefined) {
      throw new OaoError('OAO_ERR_ALREADY_DECIDED', `Run "${this.executionId}" has finished (or is ending): nothing is left to raise`, { details: { executionId: this.executionId } });
    }
    const wait = this.#budgetWait;
    if (wait === undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Run "${this.executionId}" is not waiting for budget: only a paused run's limits can be raised`, {
        details: { field: 'state', executionId: this.executionId },
      });
    }
    // Verify-replay serves the recorded raise: the recording's ceiling was checked when it was made.
    const raised = checkRaise(limits, this.limits, this.#replay === undefined ? this.#ceiling : null);
    const by = decisionText(decision.by, 'by');
    const reason = decisionText(decision.reason, 'reason');
    this.limits = deepFreeze({ ...this.limits, ...raised });
    this.#budgetWait = undefined;
    if (wait.timer !== undefined) this.clock.clearTimeout(wait.timer);
    this.emit('BUDGET_RAISED', { limits: raised, by, reason });
    this.#stopWaiting();
    this.#send?.({ type: 'BUDGET.RAISED' });
    for (const resume of wait.waiters) resume();
  }

  // ---- approvals ----------------------------------------------------------------------------

  /** Whether the policy makes this call wait for a person's decision. A predicate that throws says yes. */
  #needsApproval(name: string, args: unknown): boolean {
    if (this.limits.tools.approve?.includes(name) === true) return true;
    const predicate = this.#approvalPredicate;
    if (predicate === undefined) return false;
    try {
      return predicate({ tool: name, args }) === true;
    } catch {
      return true;
    }
  }

  /** Tool calls waiting for a decision now, oldest first. */
  get waitingForApproval(): boolean {
    return this.#approvalState !== undefined && this.#approvalState.pending.size > 0;
  }

  get pendingApprovals(): readonly PendingApprovalView[] {
    return [...this.#approvals.pending.values()].map((entry) => Object.freeze({ callId: entry.callId, tool: entry.tool, args: entry.args, step: entry.step, requestedAt: new Date(entry.requestedAt).toISOString() }));
  }

  /** Records the request, moves the run to AWAITING_APPROVAL and waits for the decision. */
  #requestApproval(scope: CallScope, name: string, args: unknown, callId: string): Promise<unknown> {
    const step = scope.step;
    const recorded = toRecordable(args);
    this.emit('APPROVAL_REQUESTED', { step, callId, tool: name, args: recorded });
    let ready: void | Promise<void>;
    try {
      ready = this.#log?.writeAhead();
    } catch (error) {
      return rejectHandled(error);
    }
    return this.#awaitDecision(scope, name, args, recorded, callId, step, this.clock.now(), ready);
  }

  /** Registers a call as waiting (a new request, or one a resumed run found pending in its log). */
  #awaitDecision(scope: CallScope, name: string, args: unknown, recorded: JsonValue, callId: string, step: number, requestedAt: number, ready: void | Promise<void>): Promise<unknown> {
    let decide!: (decision: Decision) => void;
    const decided = new Promise<Decision>((resolve) => (decide = resolve));
    const entry: PendingEntry = { callId, tool: name, args: recorded, step, requestedAt, decide, timer: undefined };
    this.#approvals.pending.set(callId, entry);
    this.#startWaiting();
    const timeoutMs = this.limits.approvalTimeoutMs;
    if (timeoutMs !== undefined && this.#replay === undefined) {
      const left = Math.max(0, timeoutMs - (this.clock.now() - requestedAt));
      entry.timer = this.clock.setTimeout(() => {
        entry.timer = undefined;
        if (this.#approvals.pending.get(callId) === entry) this.#decide(entry, { kind: 'timeout' });
      }, left);
    }
    const afterDecision = (decision: Decision): Promise<unknown> => {
      const refusal = scope.refusal();
      if (refusal !== undefined) throw refusal;
      if (decision.kind === 'approve') return this.#authorize(scope, name, decision.args === undefined ? args : decision.args, callId, true);
      const rule = decision.kind === 'timeout' ? 'approval_timeout' : 'approval_denied';
      const message =
        decision.kind === 'timeout'
          ? `Tool call ${callId} (${name}) was not approved within ${this.limits.approvalTimeoutMs ?? 0} ms`
          : `Tool call ${callId} (${name}) was denied${decision.by === null ? '' : ` by ${decision.by}`}${decision.reason === null ? '' : `: ${decision.reason}`}`;
      return this.#denyTool(step, callId, name, args, { rule, message, limit: null, attempted: null, tool: name });
    };
    const waiting = ready === undefined ? decided : ready.then(() => decided);
    return scope.race(waiting.then(afterDecision));
  }

  /**
   * A person decides on a waiting tool call: approve (optionally with edited arguments, checked by
   * the policy again and by the tool's schema when it has one) or deny. Exactly one decision per
   * call: a second one is OAO_ERR_ALREADY_DECIDED, an unknown call OAO_ERR_UNKNOWN_APPROVAL.
   */
  decide(callId: string, decision: { readonly approve: boolean; readonly by?: string | undefined; readonly reason?: string | undefined; readonly args?: unknown }): void {
    if (this.finished || this.termination !== undefined) {
      throw new OaoError('OAO_ERR_ALREADY_DECIDED', `Run "${this.executionId}" has finished (or is ending): nothing is left to decide`, {
        details: { executionId: this.executionId, callId },
      });
    }
    const entry = typeof callId === 'string' ? this.#approvals.pending.get(callId) : undefined;
    if (entry === undefined) {
      if (typeof callId === 'string' && this.#approvals.decided.has(callId)) {
        throw new OaoError('OAO_ERR_ALREADY_DECIDED', `Tool call ${callId} of run "${this.executionId}" was already decided`, {
          details: { executionId: this.executionId, callId },
        });
      }
      throw new OaoError('OAO_ERR_UNKNOWN_APPROVAL', `Run "${this.executionId}" has no tool call ${safeString(callId)} awaiting approval`, {
        details: { executionId: this.executionId, callId: safeString(callId), pending: [...this.#approvals.pending.keys()] },
      });
    }
    const by = decisionText(decision.by, 'by');
    const reason = decisionText(decision.reason, 'reason');
    if (!decision.approve) {
      this.#decide(entry, { kind: 'deny', by, reason });
      return;
    }
    let args: JsonValue | undefined;
    if (decision.args !== undefined) {
      args = checkEditedArgs(decision.args, this.#toolBodies?.get(entry.tool), entry.tool);
    }
    this.#decide(entry, { kind: 'approve', by, reason, ...(args === undefined ? {} : { args }) });
  }

  /** Whether `unload()` took the run out of this process. */
  get unloaded(): boolean {
    return this.#unloaded;
  }

  /**
   * Takes a run that waits for approval out of this process: its timers stop, its in-flight step
   * is aborted (signal reason OAO_ERR_RUN_UNLOADED) and nothing more is recorded here. Its log
   * already holds everything (the approval request was written ahead); the caller flushes it and
   * gives the lease up. Only a run recorded in a store, waiting for a decision, can be unloaded.
   */
  unload(): OaoError {
    if (this.#log === undefined) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', "Only a run recorded in a store can be unloaded: this run's orchestrator records none", { details: { field: 'store' } });
    }
    if (this.finished || this.termination !== undefined || this.#unloaded) {
      throw new OaoError('OAO_ERR_RUN_FINISHED', `Run "${this.executionId}" has finished (or is ending, or was unloaded)`, { details: { executionId: this.executionId } });
    }
    if (this.#approvals.pending.size === 0) {
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Run "${this.executionId}" is not waiting for approval: only a waiting run can be unloaded`, {
        details: { field: 'state', executionId: this.executionId },
      });
    }
    const error = new OaoError('OAO_ERR_RUN_UNLOADED', `Run "${this.executionId}" was unloaded while it waited for approval; resume it to continue`, {
      details: { executionId: this.executionId },
    });
    this.#unloaded = true;
    this.stopError = error;
    for (const entry of this.#approvals.pending.values()) {
      if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    }
    this.#approvals.pending.clear();
    if (this.#deadline !== undefined) {
      this.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    this.#listeners = undefined;
    this.#onFinish = undefined;
    this.#send = undefined;
    // Out of this process: what it spent so far is charged to its tenant's window now.
    this.tenantBudget?.settle(this.executionId, { steps: this.steps, tokens: this.tokensTotal, toolCalls: this.toolCalls, costMicros: this.costMicros });
    return error;
  }

  /** Verify-replay: a waiting call's approval timed out where the recording says it did. */
  expireApproval(callId: string): void {
    const entry = this.#approvals.pending.get(callId);
    if (entry !== undefined) this.#decide(entry, { kind: 'timeout' });
  }

  #decide(entry: PendingEntry, decision: Decision): void {
    this.#approvals.pending.delete(entry.callId);
    this.#approvals.decided.add(entry.callId);
    if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    const by = decision.kind === 'timeout' ? null : decision.by;
    const reason = decision.kind === 'timeout' ? `not decided within ${this.limits.approvalTimeoutMs ?? 0} ms` : decision.reason;
    if (decision.kind === 'approve') {
      this.emit('APPROVAL_GRANTED', { step: entry.step, callId: entry.callId, tool: entry.tool, by, reason, ...(decision.args === undefined ? {} : { args: decision.args }) });
    } else {
      this.emit('APPROVAL_DENIED', { step: entry.step, callId: entry.callId, tool: entry.tool, by, reason, timedOut: decision.kind === 'timeout' });
    }
    this.#approvals.log.push(
      Object.freeze({
        callId: entry.callId,
        tool: entry.tool,
        decision: decision.kind === 'approve' ? 'approved' : decision.kind === 'timeout' ? 'timeout' : 'denied',
        by,
        reason,
        ...(decision.kind === 'approve' && decision.args !== undefined ? { args: decision.args } : {}),
        decidedAt: new Date(this.#eventTime()).toISOString(),
      } as const),
    );
    this.#stopWaiting();
    entry.decide(decision);
  }

  /** The first waiting call: the run enters AWAITING_APPROVAL and its deadline stops running. */
  #startWaiting(signal: 'APPROVAL.WAIT' | 'BUDGET.WAIT' | undefined = 'APPROVAL.WAIT'): void {
    if (this.#waitingSince === undefined) {
      this.#waitingSince = this.#eventTime();
      if (this.#deadline !== undefined) {
        this.clock.clearTimeout(this.#deadline);
        this.#deadline = undefined;
      }
    }
    if (signal === 'BUDGET.WAIT') this.#send?.({ type: 'BUDGET.WAIT' });
    else if (signal !== undefined && !this.#waitSignalled) {
      this.#waitSignalled = true;
      this.#send?.({ type: 'APPROVAL.WAIT' });
    }
  }

  /** The last waiting call was decided: the wait is not live time; the deadline runs again. */
  #stopWaiting(): void {
    if ((this.#approvalState?.pending.size ?? 0) > 0 || this.#budgetWait !== undefined || this.#waitingSince === undefined) return;
    this.#idleMs += Math.max(0, this.#eventTime() - this.#waitingSince);
    this.#waitingSince = undefined;
    if (this.#deadlineWanted) this.armDeadline();
    if (this.#waitSignalled) {
      this.#waitSignalled = false;
      this.#send?.({ type: 'APPROVAL.DONE' });
    }
  }

  /**
   * A call of a resumed run's interrupted step that matches a recorded one: its recorded result
   * (the body does not run again), or, when the log has no result (the process died while it ran),
   * the body runs again under the same call id. Either way it was counted and authorized when it
   * was first made. A call that was waiting for approval waits again (without a second request),
   * and one decided while the run was not live gets that decision.
   */
  #serveTool(scope: CallScope, recorded: RecordedToolCall, args: unknown): Promise<unknown> {
    this.#toolSeq += 1;
    const approval = recorded.approval;
    if (!recorded.started && approval !== undefined) {
      if (approval.status === 'granted') return this.#authorize(scope, recorded.tool, approval.args === undefined ? args : approval.args, recorded.callId, true);
      if (approval.status === 'denied') {
        const rule = approval.timedOut ? 'approval_timeout' : 'approval_denied';
        return this.#denyTool(scope.step, recorded.callId, recorded.tool, args, { rule, message: `Tool call ${recorded.callId} (${recorded.tool}) was ${approval.timedOut ? 'not approved in time' : 'denied'}`, limit: null, attempted: null, tool: recorded.tool });
      }
      const requestedAt = this.#approvals.restored.get(recorded.callId) ?? this.clock.now();
      return this.#awaitDecision(scope, recorded.tool, args, toRecordable(args), recorded.callId, scope.step, requestedAt, undefined);
    }
    const result = recorded.result;
    if (result !== undefined) {
      if (result.ok) return Promise.resolve(copyJson(result.value));
      return rejectHandled(Object.assign(new Error(result.error.message), { name: result.error.name }));
    }
    const body = this.#bodyOf(recorded.tool, recorded.callId);
    if (body === undefined) {
      return rejectHandled(
        new OaoError('OAO_ERR_UNKNOWN_TOOL', `The run has no tool named "${recorded.tool}"`, {
          details: { tool: recorded.tool, tools: [...this.toolNames] },
        }),
      );
    }
    const runArgs = approval?.status === 'granted' && approval.args !== undefined ? approval.args : args;
    return this.#runTool(scope, body, recorded.tool, recorded.callId, scope.step, runArgs);
  }

  /** The interrupted call has recorded its outcome: later calls are all live. */
  #endLedger(): void {
    const ledger = this.#ledger;
    if (ledger === undefined) return;
    this.#ledger = undefined;
    this.#toolSeq = Math.max(this.#toolSeq, ledger.toolSeqEnd);
    this.#modelSeq = Math.max(this.#modelSeq, ledger.modelSeqEnd);
  }

  #runTool(scope: CallScope, body: (...args: never[]) => unknown, name: string, callId: string, step: number, args: unknown): Promise<unknown> {
    const startedAt = this.clock.now();
    const settle = (ok: boolean, value: unknown): void => {
      if (this.finished) return;
      const durationMs = Math.max(0, this.clock.now() - startedAt);
      this.emit(
        'TOOL_RESULT',
        ok
          ? { step, callId, tool: name, ok, result: toRecordable(value), durationMs }
          : { step, callId, tool: name, ok, error: frozenError(value), durationMs },
      );
    };
    let result: unknown;
    try {
      result = (body as (args: unknown, ctx: unknown) => unknown)(args, { signal: scope.signal, executionId: this.executionId, callId, tool: name });
    } catch (error) {
      settle(false, error);
      return rejectHandled(error);
    }
    let thenable: boolean;
    try {
      thenable = isPromiseLike(result);
    } catch (error) {
      settle(false, error);
      return rejectHandled(error);
    }
    if (!thenable) {
      settle(true, result);
      return Promise.resolve(result);
    }
    // The agent sees the call end when the body settles or when its step is aborted, whichever is first.
    // (A thenable whose `then` throws becomes a rejection here, never an exception in the runtime.)
    return scope.race(
      Promise.resolve(result).then(
        (value) => {
          settle(true, value);
          return value;
        },
        (error: unknown) => {
          settle(false, error);
          throw error;
        },
      ),
    );
  }

  /**
   * A governed model call begins. Its worst case is reserved first: the prompt's tokens (counted
   * by the caller, or estimated from the input) plus its most output (the call's or model's cap,
   * else the policy's `reserveOutputTokens`). A call whose reservation does not fit in the run's
   * token budget, or its batch's, with what is spent and held already, is refused before it is sent
   * (MODEL_CALL_DENIED, then a max_tokens violation that ends the run); so is one the plugins refuse.
   */
  beginModelCall(scope: CallScope, model: string | null, input: unknown, sizes?: ModelCallSizes): ModelCallRecord {
    const refusal = scope.refusal();
    if (refusal !== undefined) throw refusal;
    if (this.#ledger !== undefined) {
      const recorded = this.#ledger.takeModel(model, input);
      if (recorded !== undefined) return this.#serveModelCall(scope, recorded, model);
      this.#modelSeq = Math.max(this.#modelSeq, this.#ledger.modelSeqEnd);
    }
    // One serialization of the input serves both its record and the estimate of its tokens.
    const { value: recordedInput, text: inputText } = toRecordableText(input);
    const asked = reservationFor(inputText, sizes, this.limits.reserveOutputTokens ?? DEFAULT_RESERVE_OUTPUT_TOKENS);
    // A verifying re-run lowers a fitOutput call at most as far as the recorded one was (asked for every call, so it stays in step).
    const recordedRoom = this.#replay?.recordedReservation?.();
    const fitted =
      sizes?.fitOutput === true
        ? fitOutputTokens(asked.input, asked.output, recordedRoom === undefined ? this.#tokensLeft() : Math.min(this.#tokensLeft(), recordedRoom.input + recordedRoom.output))
        : asked.output;
    const lowered = fitted < asked.output ? fitted : undefined;
    const tokenReservation = lowered === undefined ? asked : Object.freeze({ ...asked, output: lowered });
    const tokens = tokenReservation.input + tokenReservation.output;
    const price = this.#priceOf(model);
    if (price === undefined && this.#costLimited) this.#refuseUnpriced(model);
    // The worst case in money: the prompt at the input price, plus the most output at the output price.
    const cost = price === undefined ? 0 : costOf(price, tokenReservation.input, tokenReservation.output);
    const reserved: ModelReservation = price === undefined || !this.costed ? tokenReservation : Object.freeze({ ...tokenReservation, costMicros: cost });
    const above = this.#replay?.recordedRefusal?.();
    if (above !== undefined) {
      // A verifying re-run: refused where the recording was, by the budget above the run it names.
      this.emit('MODEL_CALL_DENIED', { ...above.denied, step: scope.step });
      this.violate(above.violation);
      throw new PolicyViolationError(above.violation);
    }
    const spent = checkModelCall(this.limits, this.tokensTotal) ?? this.shared?.checkModelCall() ?? this.tenantBudget?.checkModelCall() ?? null;
    const maxCost = this.#maxCostMicros;
    const costViolation =
      (maxCost === undefined ? null : checkCostReservation('run', maxCost, this.costMicros + this.#reservedCostMicros, cost)) ??
      this.shared?.checkCostReservation(cost) ??
      this.tenantBudget?.checkCostReservation(cost) ??
      null;
    const violation =
      spent ?? checkReservation(this.limits, this.tokensTotal + this.#reservedTotal, tokens) ?? this.shared?.checkReservation(tokens) ?? this.tenantBudget?.checkReservation(tokens) ?? costViolation;
    // Only the run's own token limit pauses: a batch's or a tenant's total refuses the call.
    const ownTokens = violation !== null && violation.rule === 'max_tokens' && violation.scope !== 'shared' && violation.scope !== 'tenant';
    // A run pausing at its token limit waits for a raise, unless the call's cost does not fit
    // either: a raise of tokens could not let it through.
    if (ownTokens && this.#tokensPause && costViolation === null) {
      return withLowered(this.#pausedModelCall(scope, model, input, reserved), lowered);
    }
    if (ownTokens && this.#tokensPause) this.#denyModelCall(scope, model, reserved, costViolation ?? violation);
    if (violation !== null) this.#denyModelCall(scope, model, spent === null ? reserved : null, violation);
    const refused = this.#askPlugins('modelCall', () => ({ ...this.#pluginFacts(scope.step), modelCall: Object.freeze({ model, input: recordedInput }) }));
    if (refused !== null) this.#denyModelCall(scope, model, reserved, refused);
    const callId = `m${++this.#modelSeq}`;
    const step = scope.step;
    this.emit('MODEL_CALL', { step, callId, model, input: recordedInput, reserved });
    this.#hold(callId, scope, tokens, cost);
    // Write-ahead: with a synchronous store the MODEL_CALL is durable when this returns (a failed
    // append throws here, before the model is called); with an asynchronous one, `ready` settles
    // when it is, and callers that can wait await it before sending the request.
    const written = this.#log?.writeAhead();
    const ready = written === undefined ? RESOLVED : written;
    return withLowered(this.#openModelCall(scope, callId, model, ready, reserved), lowered);
  }

  /** Tokens a new reservation may take: the least any budget covering the run has left (the run's, its batch's, its tenant's). */
  #tokensLeft(): number {
    const own = this.limits.maxTokens - this.tokensTotal - this.#reservedTotal;
    const shared = this.shared;
    const left = shared === undefined ? own : Math.min(own, shared.tokensLeft());
    return this.tenantBudget === undefined ? left : Math.min(left, this.tenantBudget.tokensLeft());
  }

  /** Records a refused model call (MODEL_CALL_DENIED, then the violation) and throws its error. */
  #denyModelCall(scope: CallScope, model: string | null, reserved: ModelReservation | null, violation: PolicyViolation): never {
    const shared = violation.scope === 'shared' ? this.shared : undefined;
    const tenant = violation.scope === 'tenant' ? this.tenantBudget : undefined;
    const remaining =
      shared !== undefined
        ? Math.max(0, (shared.limits.maxTokens ?? 0) - shared.tokens - shared.reserved)
        : tenant !== undefined
          ? Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, tenant.tokensLeft()))
          : Math.max(0, this.limits.maxTokens - this.tokensTotal - this.#reservedTotal);
    const remainingCostMicros =
      violation.rule !== 'max_cost'
        ? undefined
        : shared !== undefined
          ? Math.max(0, (shared.maxCostMicros ?? 0) - shared.costMicros - shared.reservedCostMicros)
          : tenant !== undefined
            ? tenant.costLeft()
            : Math.max(0, (this.#maxCostMicros ?? 0) - this.costMicros - this.#reservedCostMicros);
    this.emit('MODEL_CALL_DENIED', {
      step: scope.step,
      model,
      reserved,
      remaining,
      ...(remainingCostMicros === undefined ? {} : { remainingCostMicros }),
      rule: violation.rule,
      message: violation.message,
      ...(violation.scope === 'shared' || violation.scope === 'tenant' ? { scope: violation.scope } : {}),
    });
    if (shared !== undefined) shared.trip(violation, this.executionId);
    this.violate(violation);
    throw new PolicyViolationError(violation);
  }

  /**
   * A model call under a cost limit whose model has no price (and the table no default): it is
   * refused before it is sent, and the run fails closed with OAO_ERR_UNKNOWN_MODEL_PRICE, since
   * its spend could not be counted against the limit.
   */
  #refuseUnpriced(model: string | null): never {
    const named = model === null ? 'A model call that names no model' : `Model "${model}"`;
    const error = new OaoError('OAO_ERR_UNKNOWN_MODEL_PRICE', `${named} has no price in the policy's pricing, and a cost limit (maxCostUsd) applies: add its price, or a "default" entry`, {
      details: { model, field: model === null ? 'pricing.default' : `pricing.${model}` },
    });
    if (!this.finished && this.termination === undefined) {
      this.failWith(error);
      this.#activeScope?.abort(error);
      this.#stop({ type: 'PRICE_UNKNOWN' });
    }
    throw error;
  }

  /**
   * A model call while the token budget is spent and pauses: its `ready` settles once the limit is
   * raised (then MODEL_CALL is recorded, written ahead) or rejects when the run ends first. The
   * adapters await `ready` before sending the request; so must an agent that calls a model itself.
   */
  #pausedModelCall(scope: CallScope, model: string | null, input: unknown, reserved: ModelReservation): ModelCallRecord {
    const callId = `m${++this.#modelSeq}`;
    const exhausted: PolicyViolation = this.#tokensExhausted() ??
      checkModelCall(this.limits, this.tokensTotal) ?? { rule: 'max_tokens', message: 'The token budget is spent', limit: this.limits.maxTokens, attempted: this.tokensTotal };
    const ready = scope.race(this.#waitForBudget(exhausted, true)).then(() => {
      const refusal = scope.refusal();
      if (refusal !== undefined) throw refusal;
      this.emit('MODEL_CALL', { step: scope.step, callId, model, input: toRecordable(input), reserved });
      this.#hold(callId, scope, reserved.input + reserved.output, reserved.costMicros ?? 0);
      return this.#log?.writeAhead();
    });
    ready.catch(noop);
    return this.#openModelCall(scope, callId, model, ready, reserved);
  }

  /**
   * A model call of a resumed run's interrupted step that matches a recorded one: the recorded
   * outcome is served (`replayed`; ending it records and charges nothing again), or, when the log
   * has none, the call is made again under the same call id and its result recorded and charged.
   */
  #serveModelCall(scope: CallScope, recorded: RecordedModelCall, model: string | null): ModelCallRecord {
    this.#modelSeq += 1;
    const result = recorded.result;
    if (result === undefined) return this.#openModelCall(scope, recorded.callId, model, RESOLVED);
    return {
      callId: recorded.callId,
      replayed: Object.freeze({ ...result }),
      ready: RESOLVED,
      end: noop,
      fail: noop,
    };
  }

  #openModelCall(scope: CallScope, callId: string, model: string | null, ready: Promise<void>, reserved?: ModelReservation): ModelCallRecord {
    const step = scope.step;
    const startedAt = this.clock.now();
    let open = true;
    if (reserved !== undefined) {
      // Abandoned (its step aborted, or the run ended, while it ran): the request went out and may
      // be billed, so the call is charged its whole reservation, recorded as its result; whatever it
      // answers later is ignored. Budgets above the run can then never be spent twice over.
      (this.#openCalls ??= new Map()).set(callId, () => {
        if (!open) return;
        open = false;
        this.#openCalls?.delete(callId);
        // No hold: the request was never sent (a paused call still waiting for its budget).
        if (this.#holds?.has(callId) !== true) return;
        this.#release(callId);
        const usage = Object.freeze({ input: reserved.input, output: reserved.output, total: reserved.input + reserved.output });
        const durationMs = Math.max(0, this.clock.now() - startedAt);
        this.emit('MODEL_RESULT', { step, callId, model, ok: false, error: ABANDONED, usage, unmetered: true, abandoned: true, durationMs });
        this.addUsage(usage, 'model', false, model);
      });
    }
    const settle = (ok: boolean, value: unknown, reported: TokenUsage | null): void => {
      if (!open) return;
      open = false;
      this.#openCalls?.delete(callId);
      // Settled: the reservation gives way to what the call spent.
      this.#release(callId);
      if (this.finished) return;
      const durationMs = Math.max(0, this.clock.now() - startedAt);
      // A response without usage is charged its whole reservation: an unmetered call never costs 0.
      const unmetered = ok && reported === null && reserved !== undefined && reserved.input + reserved.output > 0;
      const usage: TokenUsage | null = unmetered ? Object.freeze({ input: reserved.input, output: reserved.output, total: reserved.input + reserved.output }) : reported;
      this.emit(
        'MODEL_RESULT',
        ok
          ? { step, callId, model, ok, output: toRecordable(value), usage, ...(unmetered ? { unmetered: true as const } : {}), durationMs }
          : { step, callId, model, ok, error: frozenError(value), usage, durationMs },
      );
      if (usage !== null && !scope.aborted) this.addUsage(usage, 'model', true, model);
    };
    return {
      callId,
      replayed: this.#replay?.recordedModelResult(callId),
      ready,
      end: (output, usage) => settle(true, output, usage),
      fail: (error, usage) => settle(false, error, usage),
    };
  }

  // ---- how the run ends ---------------------------------------------------------------------

  /** A limit was crossed by something the agent did: record it and stop the run. */
  violate(violation: PolicyViolation): void {
    if (this.termination !== undefined) return;
    this.recordViolation(violation);
    this.#stop({ type: 'VIOLATION' });
  }

  private recordViolation(violation: PolicyViolation): void {
    if (this.termination !== undefined) return;
    this.termination =
      violation.scope === 'shared' || violation.scope === 'tenant'
        ? { reason: 'policy_violation', rule: violation.rule, scope: violation.scope, message: violation.message }
        : { reason: 'policy_violation', rule: violation.rule, message: violation.message };
    const error = new PolicyViolationError(violation);
    this.error = error.toJSON();
    this.stopError = error;
    this.emit('POLICY_VIOLATION', {
      rule: violation.rule,
      message: violation.message,
      limit: violation.limit,
      attempted: violation.attempted,
      ...(violation.tool === undefined ? {} : { tool: violation.tool }),
      ...(violation.scope === 'shared' || violation.scope === 'tenant' ? { scope: violation.scope } : {}),
    });
    this.#activeScope?.abort(error);
  }

  cancel(reason: string): void {
    if (this.termination !== undefined || this.finished) return;
    this.termination = { reason: 'cancelled', message: reason };
    const error = new RunAbortedError('OAO_ERR_CANCELLED', `The run was cancelled: ${reason}`);
    this.error = error.toJSON();
    this.stopError = error;
    this.emit('EXECUTION_CANCELLED', { reason });
    this.#activeScope?.abort(error);
    this.#stop({ type: 'CANCEL' });
  }

  /** The deadline passed: the run's own, or (with a message) its batch's. */
  timeOut(message = `The run exceeded its time limit of ${this.limits.timeoutMs} ms`): void {
    if (this.#deadline !== undefined) {
      // Called when a late result arrived before the timer could fire (the event loop was blocked).
      this.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    if (this.termination !== undefined || this.finished) return;
    this.termination = { reason: 'timeout', message };
    const error = new RunAbortedError('OAO_ERR_TIMEOUT', message);
    this.error = error.toJSON();
    this.stopError = error;
    this.emit('EXECUTION_TIMEOUT', { timeoutMs: this.limits.timeoutMs, message });
    this.#activeScope?.abort(error);
    this.#stop({ type: 'DEADLINE' });
  }

  /**
   * The run fails with reason `error`. After an agent call's ERROR event the failure is already in
   * the log; otherwise (`record`) an EXECUTION_FAILED event records it.
   */
  failWith(error: unknown, record = true): void {
    if (this.termination !== undefined) return;
    const serialized = frozenError(error);
    this.termination = { reason: 'error', message: serialized.message };
    this.error = serialized;
    this.stopError = error;
    if (record) this.emit('EXECUTION_FAILED', { error: serialized });
  }

  /**
   * The run's log could not be written: the run ends FAILED with the store's error before it does
   * anything more (the call in flight is aborted). A run never continues without its log.
   */
  #storeFailed(error: OaoError): void {
    if (this.finished || this.termination !== undefined) return;
    const serialized = deepFreeze(error.toJSON());
    this.termination = { reason: 'error', message: serialized.message };
    this.error = serialized;
    this.stopError = error;
    this.emit('EXECUTION_FAILED', { error: serialized });
    this.#activeScope?.abort(error);
    this.#stop({ type: 'STORE_FAILED' });
  }

  /** Whether a stop is pending: the machine takes its FAILED edge at the next chance. */
  get stopping(): boolean {
    return this.termination !== undefined;
  }

  #stop(event: StopEvent): void {
    this.#send?.(event);
  }

  /** Builds the report, emits EXECUTION_COMPLETE and releases everyone waiting. Idempotent. */
  finish(status: 'SUCCESS' | 'FAILED'): ExecutionReport {
    if (this.report !== undefined) return this.report;
    if (this.#deadline !== undefined) {
      this.clock.clearTimeout(this.#deadline);
      this.#deadline = undefined;
    }
    // Model calls still running are charged their whole reservation before the report is made.
    if (this.#openCalls !== undefined) for (const abandon of [...this.#openCalls.values()]) abandon();
    const finishedAt = this.clock.now();
    const termination: Termination =
      status === 'SUCCESS' ? { reason: 'completed' } : (this.termination ?? { reason: 'error', message: 'The run failed' });
    // Frozen as it is built, before anyone sees it: a hook cannot change the report the caller
    // receives. Its parts are frozen one by one (recorded outputs and errors already are), which is
    // cheaper than walking the whole report.
    for (const entry of this.#history) Object.freeze(entry);
    Object.freeze(this.#history);
    const report: ExecutionReport = Object.freeze({
      executionId: this.executionId,
      agentName: this.agentName,
      status,
      termination: Object.freeze(termination),
      totalSteps: this.steps,
      tokenUsage: Object.freeze({ input: this.tokensIn, output: this.tokensOut, total: this.tokensTotal }),
      ...(this.costed ? { cost: costReport(this.costMicros) } : {}),
      toolUsage: Object.freeze({ total: this.toolCalls, byTool: this.#toolCallsByName === undefined ? NO_TOOL_CALLS : Object.freeze(ownRecord(this.#toolCallsByName)) }),
      executionTimeMs: this.liveMs(finishedAt),
      wallTimeMs: Math.max(0, finishedAt - this.startedAt),
      // Handed over, not copied: the records are final once the run is (the last state never exits).
      stateHistory: this.#history,
      ...(this.#approvalState === undefined || this.#approvalState.log.length === 0 ? {} : { approvals: Object.freeze(this.#approvalState.log.slice()) as ApprovalRecord[] }),
      finalOutput: this.lastOutput,
      ...(status === 'FAILED' && this.error !== undefined ? { error: deepFreeze(this.error) } : {}),
      startedAt: new Date(this.startedAt).toISOString(),
      finishedAt: new Date(finishedAt).toISOString(),
      executionHash: this.executionHash,
    });
    this.report = report;
    // The tenant's window is charged with the report's spend as the level lets go of the run's
    // live spend: one step, so nothing is counted twice or missed in between.
    this.tenantBudget?.settle(this.executionId, { steps: this.steps, tokens: this.tokensTotal, toolCalls: this.toolCalls, costMicros: this.costMicros });
    if (this.#budgetWait?.timer !== undefined) this.clock.clearTimeout(this.#budgetWait.timer);
    this.#budgetWait = undefined;
    const approvals = this.#approvalState;
    if (approvals !== undefined) {
      for (const entry of approvals.pending.values()) {
        if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
      }
      approvals.pending.clear();
    }
    // Calls left open hold nothing once the run is over (a batch's siblings may spend it).
    if (this.#holds !== undefined) for (const callId of [...this.#holds.keys()]) this.#release(callId);
    this.#at = finishedAt;
    this.emit('EXECUTION_COMPLETE', { report });
    this.#listeners = undefined;
    this.#activeScope = undefined;
    const onFinish = this.#onFinish;
    this.#onFinish = undefined;
    this.#send = undefined;
    // Agents that left work open between steps close it now; listeners are agent code, so a throw
    // there must not change the run.
    try {
      this.#runController?.abort(runEnded());
    } catch {
      // ignored: the run has ended either way
    }
    onFinish?.(report);
    return report;
  }

  /** The actor itself failed (a defect, not an agent error): still produce a report. */
  crash(error: unknown): ExecutionReport {
    if (this.report !== undefined) return this.report;
    if (this.termination === undefined) {
      const serialized = serializeError(error);
      const message = `Internal error: ${serialized.message}`;
      this.termination = { reason: 'error', message };
      this.error = deepFreeze({ ...serialized, message });
      this.emit('EXECUTION_FAILED', { error: this.error });
    }
    this.#activeScope?.abort(error);
    return this.finish('FAILED');
  }
}

function runEnded(): RunAbortedError {
  return new RunAbortedError('OAO_ERR_RUN_FINISHED', 'The run has ended');
}

/** STATE_ENTER's payload names only the state: one frozen object per state serves every run. */
const STATE_ENTER_PAYLOADS: Readonly<Record<LifecycleState, OaoEventPayload<'STATE_ENTER'>>> = Object.freeze({
  INIT: Object.freeze({ state: 'INIT' }),
  PLAN: Object.freeze({ state: 'PLAN' }),
  EXECUTE: Object.freeze({ state: 'EXECUTE' }),
  REVIEW: Object.freeze({ state: 'REVIEW' }),
  TERMINATE: Object.freeze({ state: 'TERMINATE' }),
  FAILED: Object.freeze({ state: 'FAILED' }),
});

export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

const noop = (): void => {};

/** A serialized error, frozen: it goes into events and reports that are handed out. */
function frozenError(error: unknown): SerializedError {
  return deepFreeze(serializeError(error));
}
const RESOLVED: Promise<void> = Promise.resolve();

/** The recorded error of a model call abandoned by its step or run (see `#openModelCall`). */
const ABANDONED: SerializedError = Object.freeze({
  name: 'OaoError',
  code: 'OAO_ERR_RUN_FINISHED',
  message: 'The model call was still running when its step or its run ended: it was charged its whole reservation',
});

/** A report's `cost`: exact micro-dollars, and USD derived from them for display. */
function costReport(micros: number): ExecutionReport['cost'] {
  return Object.freeze({ micros, usd: micros / 1_000_000 });
}

const NO_CALLS: readonly PluginToolCall[] = Object.freeze([]);

/**
 * A model call's reservation: the prompt's tokens as the caller counted them, else estimated from
 * the recorded input (a token per 4 characters of its JSON, rounded up: a deliberate overestimate
 * for English prose), plus its most output: the caller's cap, else the policy's default.
 */
/** `inputText`: the recorded input's JSON text (a string input's own text), for the estimate. */
function reservationFor(inputText: string, sizes: ModelCallSizes | undefined, defaultOutput: number): ModelReservation {
  const output = sizes?.maxOutputTokens ?? defaultOutput;
  if (sizes?.inputTokens !== undefined) return Object.freeze({ input: sizes.inputTokens, output, estimated: false });
  return Object.freeze({ input: Math.ceil(inputText.length / 4), output, estimated: true });
}

/** `record`, saying the output cap its call was lowered to, when it was. */
function withLowered(record: ModelCallRecord, lowered: number | undefined): ModelCallRecord {
  return lowered === undefined ? record : { ...record, loweredMaxOutputTokens: lowered };
}

/** Longest `by` or `reason` a decision may carry. */
const MAX_DECISION_TEXT = 2_000;

/** A decision's `by` or `reason`: a string (at most 2,000 characters) or nothing. */
function decisionText(value: unknown, field: 'by' | 'reason'): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > MAX_DECISION_TEXT) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"${field}" must be a string of at most ${MAX_DECISION_TEXT} characters`, { details: { field } });
  }
  return value;
}

/**
 * Arguments an approver put in place of the requested ones: JSON, and valid for the tool's schema
 * when the tool carries one (a `schema` with `safeParse`, as zod schemas have).
 */
function checkEditedArgs(args: unknown, body: unknown, tool: string): JsonValue {
  let json: JsonValue;
  try {
    json = JSON.parse(JSON.stringify(args)) as JsonValue;
  } catch (error) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The edited arguments of "${tool}" must be JSON: ${serializeError(error).message}`, { details: { field: 'args' } });
  }
  if (json === undefined) throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The edited arguments of "${tool}" must be JSON`, { details: { field: 'args' } });
  const schema = (body as { schema?: { safeParse?: (value: unknown) => { success: boolean; error?: { issues?: { message: string; path: PropertyKey[] }[] } } } } | undefined)?.schema;
  if (schema !== undefined && typeof schema.safeParse === 'function') {
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error?.issues?.[0];
      throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `The edited arguments do not fit the schema of "${tool}": ${issue === undefined ? 'invalid' : `${issue.path.map(String).join('.') || 'args'}: ${issue.message}`}`, {
        details: { field: 'args', tool },
      });
    }
  }
  return deepFreeze(json);
}

/** A fresh, mutable copy of a recorded JSON value: the agent may change what it receives. */
function copyJson(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/**
 * What a resumed run's interrupted call recorded, matched in order against its re-run: the n-th
 * tool call (same name and arguments), the n-th model call (same model and input) and the n-th
 * usage report (same counts). The first mismatch ends the recorded prefix for that kind: from
 * there on, calls are live.
 */
class ResumeLedger {
  #tools: readonly RecordedToolCall[] | undefined;
  #models: readonly RecordedModelCall[] | undefined;
  #usages: readonly TokenUsage[] | undefined;
  #tool = 0;
  #model = 0;
  #usage = 0;

  constructor(
    tools: readonly RecordedToolCall[],
    models: readonly RecordedModelCall[],
    usages: readonly TokenUsage[],
    readonly toolSeqEnd: number,
    readonly modelSeqEnd: number,
  ) {
    this.#tools = tools;
    this.#models = models;
    this.#usages = usages;
  }

  takeTool(name: string, args: unknown): RecordedToolCall | undefined {
    const next = this.#tools?.[this.#tool];
    if (next !== undefined && next.tool === name && sameJson(next.args, args)) {
      this.#tool += 1;
      return next;
    }
    this.#tools = undefined;
    return undefined;
  }

  takeModel(model: string | null, input: unknown): RecordedModelCall | undefined {
    const next = this.#models?.[this.#model];
    if (next !== undefined && next.model === model && sameJson(next.input, input)) {
      this.#model += 1;
      return next;
    }
    this.#models = undefined;
    return undefined;
  }

  takeUsage(usage: TokenUsage): boolean {
    const next = this.#usages?.[this.#usage];
    if (next !== undefined && next.input === usage.input && next.output === usage.output && next.total === usage.total) {
      this.#usage += 1;
      return true;
    }
    this.#usages = undefined;
    return false;
  }
}

/** Whether a live value records as the recorded one. */
function sameJson(recorded: unknown, live: unknown): boolean {
  try {
    return canonicalJson(recorded) === canonicalJson(toRecordable(live));
  } catch {
    return false;
  }
}
const NO_TOOL_CALLS: Readonly<Record<string, number>> = Object.freeze({});

/** A rejected promise already marked handled: an agent that ignores it cannot crash the process. */
export function rejectHandled(error: unknown): Promise<never> {
  const promise = Promise.reject(error);
  promise.catch(noop);
  return promise;
}
