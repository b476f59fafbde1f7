import { OaoError, type PolicyRule, type PolicyViolation } from '../errors.js';
import { oaoEventSchema, type OaoEvent } from '../events/schema.js';
import { invalidOption, typeOf } from '../options.js';
import { checkModelCall, checkStepStart, checkTokens, checkToolCall, deadlinePassed, retryDelay } from '../policy/checks.js';
import type { PolicyLimits, PolicyOptions } from '../policy/schema.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import { checkCostReservation, checkCostSpent, usdToMicros } from '../policy/pricing.js';
import type { Termination } from '../report/schema.js';
import type { RunStore } from '../store/RunStore.js';
import { applyEvent, costOf, type RunFold } from './foldRun.js';

/**
 * Why the new policy would have stopped a run: one of the policy's rules, `timeout` (its
 * `timeoutMs`), or `max_retries` (a failed step the recorded run retried, which `retry.maxRetries`
 * of the new policy would not have retried: the run would have ended with reason `error`).
 */
export type WhatIfRule = PolicyRule | 'timeout' | 'max_retries';

/** Where the new policy would have stopped a run. */
export interface WhatIfStop {
  /**
   * The `seq` of the event at which the run would have stopped: the step, tool call or model
   * call the policy would have refused, the usage report that crosses its token budget, or the
   * first event that came after its deadline.
   */
  readonly seq: number;
  readonly rule: WhatIfRule;
  /** Says what was refused and which limit refused it, as a violation message would. */
  readonly message: string;
}

/** Spend: steps started, tokens (total) and tool calls. */
export interface WhatIfCounts {
  readonly steps: number;
  readonly tokens: number;
  readonly toolCalls: number;
  /** Micro-dollars, as the log recorded them: present for runs whose policy had prices or a cost limit. */
  readonly costMicros?: number;
}

/** The verdict on one recorded run. */
export interface WhatIfRun {
  readonly executionId: string;
  readonly agentName: string;
  /**
   * `true` when the run would have ended the same way (same termination reason and rule) having
   * spent the same; `false` when it would have ended otherwise; `null` when the log cannot tell
   * (see `reason`).
   */
  readonly same: boolean | null;
  /** Where the new policy would have stopped the run, or `null` when it would not have. */
  readonly wouldStop: WhatIfStop | null;
  /** What stopping at `wouldStop` would have saved: the run's totals minus those at the stop. Zeros without a stop. */
  readonly saved: WhatIfCounts;
  /** Why `same` is `null`: present exactly then. */
  readonly reason?: string;
  /** How the recorded run ended (`null` while its log has no ending) and what it spent. */
  readonly recorded: WhatIfCounts & { readonly termination: Termination | null };
}

export interface WhatIfTotals {
  /** Runs evaluated. */
  readonly runs: number;
  /** Runs with `same: true`. */
  readonly same: number;
  /** Runs with `same: false`. */
  readonly changed: number;
  /** Runs with `same: null`. */
  readonly unknown: number;
  /** The sum of every run's `saved`. */
  readonly saved: WhatIfCounts;
}

export interface WhatIfResult {
  /** One verdict per run: in the order given, or newest first when read from a store's list. */
  readonly runs: readonly WhatIfRun[];
  readonly totals: WhatIfTotals;
}

/** Which recorded runs to evaluate; applies to runs read from a store and to logs passed in alike. */
export interface WhatIfFilter {
  /** Only runs of this agent (`EXECUTION_START.payload.agentName`). */
  readonly agentName?: string;
  /** Only runs that started at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Only runs that started before this time (ms since the epoch). */
  readonly until?: number;
}

export interface WhatIfOptions {
  /**
   * The policy to evaluate, as every run's effective policy. Options are resolved as
   * `new StrictPolicy(options)` resolves them (a field left out takes its default, not the
   * recorded value), so the policy file an orchestrator or `oao serve` would use can be evaluated
   * as it is. Invalid options are `OAO_ERR_INVALID_POLICY`.
   */
  readonly policy: StrictPolicy | PolicyOptions;
  /**
   * Where the runs are recorded. Without `runs`, every run that `store.list(filter)` lists is
   * evaluated (all pages); with `runs`, execution ids in it are read from this store.
   */
  readonly store?: RunStore;
  /** Runs to evaluate: event logs (each a run's events in `seq` order), or execution ids with `store`. */
  readonly runs?: readonly (readonly OaoEvent[] | string)[];
  readonly filter?: WhatIfFilter;
}

/**
 * Evaluates a policy against recorded runs, from their logs alone: no agent, tool or model is
 * called. Each log is folded event by event, and before every event that spent or decided
 * something the new policy's checks are asked on the counters so far, as the live run asks them:
 * a step start beyond `maxSteps`, a tool call denied, not allowed or over a call limit, a usage
 * report that crosses `maxTokens`, a model call once the tokens are spent, a model call whose
 * recorded worst-case cost does not fit under `maxCostUsd` or a usage report whose recorded cost
 * crosses it (costs are read from the log, not re-priced), an event after the
 * deadline (from `EXECUTION_START`'s timestamp), a retry beyond `retry.maxRetries`. The first
 * refusal is where the run would have stopped.
 *
 * A run that a limit stopped, under a policy that would have let it go on, cannot be judged: the
 * log does not say what it would have done next. Such runs get `same: null` with a `reason`, as
 * do runs whose log has not ended. Stops that came from outside the run's policy (a cancel, an
 * agent error, a batch's shared budget or deadline, a store failure) stand under any policy.
 *
 * @throws OAO_ERR_INVALID_ARGUMENT for options of the wrong shape; OAO_ERR_INVALID_POLICY for
 *   invalid policy options; OAO_ERR_RUN_NOT_FOUND for an execution id the store has no events
 *   of; OAO_ERR_LOG_CORRUPT (naming the run and `seq`) for a log that does not parse or is out of
 *   order; the store's own errors (`OAO_ERR_STORE`, ...) when it cannot be read.
 *
 * @example
 * ```ts
 * import { Orchestrator, createMemoryStore, whatIf, type AgentContext } from 'open-agent-orchestrator';
 *
 * const store = createMemoryStore();
 * await new Orchestrator({ store }).run({
 *   agent: {
 *     invoke: (task: string, ctx: AgentContext) => {
 *       ctx.usage(300);
 *       return task;
 *     },
 *     review: (result: { step: number }) => ({ done: result.step === 3 }),
 *   },
 *   task: 'summarize',
 * });
 * const { runs, totals } = await whatIf({ store, policy: { maxTokens: 500 } });
 * runs[0]?.same; // false: the run completed, and would have ended with a max_tokens violation
 * runs[0]?.wouldStop?.rule; // 'max_tokens', at step 2's usage report (600 tokens)
 * totals.saved; // { steps: 1, tokens: 300, toolCalls: 0 }
 * ```
 */
export async function whatIf(options: WhatIfOptions): Promise<WhatIfResult> {
  const { limits, store, runs, filter } = checkOptions(options);
  const verdicts: WhatIfRun[] = [];
  const evaluate = (events: readonly OaoEvent[]): void => {
    const verdict = whatIfRun(events, limits, filter);
    if (verdict !== undefined) verdicts.push(verdict);
  };
  if (runs !== undefined) {
    for (const [index, run] of runs.entries()) {
      if (typeof run !== 'string') {
        evaluate(parseLog(run, index));
        continue;
      }
      const events = await (store as RunStore).events(run);
      if (events.length === 0) {
        throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no run "${run}"`, { details: { executionId: run } });
      }
      evaluate(events);
    }
  } else {
    const source = store as RunStore;
    const listFilter = {
      ...(filter.agentName === undefined ? {} : { agentName: filter.agentName }),
      ...(filter.since === undefined ? {} : { since: filter.since }),
      ...(filter.until === undefined ? {} : { until: filter.until }),
    };
    let cursor: string | null = null;
    do {
      const page = await source.list(listFilter, cursor === null ? { limit: PAGE_SIZE } : { limit: PAGE_SIZE, cursor });
      // A page's logs are read together: one round trip each, in parallel, for a remote store.
      const logs = await Promise.all(page.runs.map(async (run) => source.events(run.executionId)));
      // A run deleted by retention between the list and the read has no log any more: skip it.
      for (const events of logs) if (events.length > 0) evaluate(events);
      cursor = page.nextCursor;
    } while (cursor !== null);
  }
  return { runs: verdicts, totals: totalsOf(verdicts) };
}

const PAGE_SIZE = 100;

/**
 * The verdict of `limits` on one run's log (pure: no I/O), or undefined when the run does not
 * match `filter`. The log must start at `seq` 0; it may end anywhere.
 *
 * @throws OAO_ERR_LOG_CORRUPT when the events are out of order.
 */
export function whatIfRun(events: readonly OaoEvent[], limits: PolicyLimits, filter: WhatIfFilter = {}): WhatIfRun | undefined {
  const first = events[0];
  if (first === undefined) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'A run to evaluate has no events', { details: { field: 'runs' } });
  }
  if (first.type === 'EXECUTION_START' && !matches(first, filter)) return undefined;
  const walk = new Walk(limits);
  let state: RunFold | undefined;
  let previous: OaoEvent | undefined;
  for (const event of events) {
    let next: RunFold;
    try {
      next = applyEvent(state, event);
    } catch (error) {
      const executionId = state?.executionId ?? event.executionId;
      throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of run "${executionId}" cannot be evaluated: ${(error as Error).message}`, {
        details: { executionId, seq: state?.seq ?? 0 },
        cause: error,
      });
    }
    if (state !== undefined && walk.open) walk.judge(state, next, event, previous);
    state = next;
    previous = event;
  }
  return walk.verdict(state as RunFold);
}

type Outcome =
  | { readonly kind: 'stop'; readonly stop: WhatIfStop; readonly at: WhatIfCounts; readonly atEnding: boolean }
  | { readonly kind: 'unknown'; readonly reason: string }
  | { readonly kind: 'ended' };

/** Events that only record the lifecycle: the deadline timer cannot fire between them and what caused them. */
const bookkeeping: ReadonlySet<OaoEvent['type']> = new Set(['EXECUTION_START', 'STATE_ENTER', 'STATE_EXIT', 'EXECUTION_RESUMED', 'EXECUTION_COMPLETE']);

/** Walks one log under the new limits until the first decision: a stop, the recorded ending, or "cannot tell". */
class Walk {
  readonly #limits: PolicyLimits;
  /** How much later (ms) than recorded each event would come under the new retry delays. */
  #shift = 0;
  #outcome: Outcome | undefined;

  constructor(limits: PolicyLimits) {
    this.#limits = limits;
  }

  get open(): boolean {
    return this.#outcome === undefined;
  }

  /** The new policy's cost limit in micro-dollars, judged over the costs the log recorded. */
  get #maxCostMicros(): number | undefined {
    const usd = this.#limits.maxCostUsd;
    return usd === undefined ? undefined : usdToMicros(usd);
  }

  /** `before` is the fold up to `event`, `after` includes it. */
  judge(before: RunFold, after: RunFold, event: OaoEvent, previous: OaoEvent | undefined): void {
    const limits = this.#limits;
    const recorded = before.policy;
    if (!bookkeeping.has(event.type) && !ends(event) && this.#deadlineTighter(recorded)) {
      // Live time: the time no process held the run (before each resume) is not charged.
      const elapsed = event.timestamp - before.startedAt - after.idleMs + this.#shift;
      if (deadlinePassed(limits, elapsed)) {
        this.#stop(event, 'timeout', `The run would have passed its time limit of ${limits.timeoutMs} ms (this event came ${elapsed} ms after the start)`, before);
        return;
      }
    }
    switch (event.type) {
      case 'STEP_START':
        if (event.payload.attempt === 1) this.#refuse(event, checkStepStart(limits, before.steps), before);
        return;
      case 'TOOL_CALL':
      case 'TOOL_DENIED': {
        const tool = event.payload.tool;
        // A call the recorded policy denied and this one allows is decided at the POLICY_VIOLATION after it.
        this.#refuse(event, checkToolCall(limits, tool, before.toolCalls, before.toolCallsByName.get(tool) ?? 0), before);
        return;
      }
      case 'MODEL_CALL': {
        // Its worst case in money, as the log recorded it, must fit under the new cost limit.
        const maxCost = this.#maxCostMicros;
        this.#refuse(
          event,
          checkModelCall(limits, before.tokens.total) ??
            (maxCost === undefined ? null : checkCostReservation('run', maxCost, before.costMicros, event.payload.reserved?.costMicros ?? 0)),
          before,
        );
        return;
      }
      case 'TOKEN_USAGE': {
        // The spend was made before it was reported: it counts at the stop.
        const maxCost = this.#maxCostMicros;
        this.#refuse(event, checkTokens(limits, after.tokens.total) ?? (maxCost === undefined ? null : checkCostSpent('run', maxCost, after.costMicros)), after);
        return;
      }
      case 'ERROR':
        this.#error(event, before);
        return;
      case 'POLICY_VIOLATION':
        this.#violation(event, before, previous);
        return;
      case 'EXECUTION_TIMEOUT':
        this.#timeout(event, before);
        return;
      case 'EXECUTION_CANCELLED':
      case 'EXECUTION_FAILED':
      case 'EXECUTION_COMPLETE':
        this.#outcome = { kind: 'ended' };
        return;
      default:
        return;
    }
  }

  /**
   * Is the new deadline, in the recorded run's time, earlier than the recorded one? Only then can
   * it stop a recorded event: every event the recorded deadline let through, a later one would too.
   */
  #deadlineTighter(recorded: PolicyLimits): boolean {
    return this.#limits.timeoutMs - this.#shift < recorded.timeoutMs;
  }

  #refuse(event: OaoEvent, violation: PolicyViolation | null, at: RunFold): void {
    if (violation !== null) this.#stop(event, violation.rule, violation.message, at);
  }

  #stop(event: OaoEvent, rule: WhatIfRule, message: string, at: RunFold): void {
    // Stopped where the recording ended: what the log charges after that point is the ending's own
    // (model calls it left running, charged their reservations), and a stop there charges it too.
    this.#outcome = { kind: 'stop', stop: { seq: event.seq, rule, message }, at: countsOf(at), atEnding: ends(event) };
  }

  #unknown(reason: string): void {
    this.#outcome = { kind: 'unknown', reason };
  }

  #error(event: Extract<OaoEvent, { type: 'ERROR' }>, before: RunFold): void {
    const { attempt, step, willRetry, retryInMs, phase } = event.payload;
    const limits = this.#limits;
    const recorded = before.policy.retry.maxRetries;
    if (willRetry) {
      if (attempt > limits.retry.maxRetries) {
        this.#stop(event, 'max_retries', `Attempt ${attempt} of step ${step} failed, and maxRetries (${limits.retry.maxRetries}) allows no retry of it`, before);
        return;
      }
      // The retry waits the new policy's backoff instead of the recorded one: later events move.
      this.#shift += retryDelay(limits, attempt) - (retryInMs ?? 0);
      return;
    }
    this.#outcome = { kind: 'ended' };
    if (phase === 'step' && attempt > recorded && attempt <= limits.retry.maxRetries) {
      this.#unknown(
        `Step ${step} failed on attempt ${attempt} with no retry left (maxRetries ${recorded}); the new policy allows ${limits.retry.maxRetries} retries, ` +
          'and the log cannot tell whether or how a retry would have gone',
      );
    }
  }

  #violation(event: Extract<OaoEvent, { type: 'POLICY_VIOLATION' }>, before: RunFold, previous: OaoEvent | undefined): void {
    const p = event.payload;
    // A batch's shared budget or its tenant's stopped it: that budget is not the run's policy, and stands.
    if (p.scope === 'shared' || p.scope === 'tenant') {
      this.#outcome = { kind: 'ended' };
      return;
    }
    const limits = this.#limits;
    const recorded = before.policy;
    let violation: PolicyViolation | null;
    if (previous?.type === 'TOOL_DENIED') {
      violation = null; // the new policy let the call through (it was asked at the TOOL_DENIED)
    } else if (p.rule === 'max_tokens' && previous?.type === 'TOKEN_USAGE' && checkTokens(recorded, before.tokens.total) !== null) {
      violation = null; // the usage crossed the recorded budget, not the new one (asked at the TOKEN_USAGE)
    } else if (p.rule === 'max_tokens') {
      // A model call refused because the budget was spent, or a charge past the safe integers (refused by any budget).
      violation =
        checkModelCall(recorded, before.tokens.total) !== null
          ? checkModelCall(limits, before.tokens.total)
          : checkTokens(limits, Number.MAX_SAFE_INTEGER + 1);
    } else if (p.rule === 'max_cost') {
      // A model call refused for its worst case: `attempted` is what it would have committed (micro-dollars).
      // One whose usage crossed the recorded limit was asked at its TOKEN_USAGE.
      const maxCost = this.#maxCostMicros;
      violation =
        maxCost === undefined || p.attempted === null || previous?.type === 'TOKEN_USAGE' || p.attempted <= maxCost
          ? null
          : checkCostSpent('run', maxCost, p.attempted);
    } else if (p.rule === 'max_steps') {
      violation = checkStepStart(limits, before.steps);
    } else {
      violation = null;
    }
    if (violation !== null) {
      this.#stop(event, violation.rule, violation.message, before);
      return;
    }
    this.#unknown(
      `The recorded run was stopped by ${p.rule} at seq ${event.seq} (${p.message}); the new policy would have let it go on, ` +
        'and the log cannot tell what the run would have done next',
    );
  }

  #timeout(event: Extract<OaoEvent, { type: 'EXECUTION_TIMEOUT' }>, before: RunFold): void {
    const limits = this.#limits;
    const recorded = before.policy.timeoutMs;
    const elapsed = event.timestamp - before.startedAt - before.idleMs + this.#shift;
    const own = event.payload.message === undefined || event.payload.message === `The run exceeded its time limit of ${event.payload.timeoutMs} ms`;
    if (own ? limits.timeoutMs - this.#shift <= recorded : elapsed >= limits.timeoutMs) {
      this.#stop(event, 'timeout', `The run would have exceeded its time limit of ${limits.timeoutMs} ms`, before);
      return;
    }
    if (!own) {
      // Its batch's deadline stopped it, and would have under any policy of the run's own.
      this.#outcome = { kind: 'ended' };
      return;
    }
    this.#unknown(
      `The recorded run timed out after ${recorded} ms; the new policy would have given it ${limits.timeoutMs - this.#shift} ms, ` +
        'and the log cannot tell what the run would have done with the time',
    );
  }

  verdict(final: RunFold): WhatIfRun {
    const totals = countsOf(final);
    const termination = final.report?.termination ?? final.termination ?? null;
    const base = {
      executionId: final.executionId,
      agentName: final.agentName,
      recorded: { ...totals, termination },
    };
    const outcome = this.#outcome;
    const finished = termination !== null;
    const none = totals.costMicros === undefined ? { ...ZERO } : { ...ZERO, costMicros: 0 };
    if (outcome?.kind === 'unknown') {
      return { ...base, same: null, wouldStop: null, saved: none, reason: outcome.reason };
    }
    if (outcome?.kind === 'stop') {
      const at = outcome.atEnding ? totals : outcome.at;
      const saved = {
        steps: Math.max(0, totals.steps - at.steps),
        tokens: Math.max(0, totals.tokens - at.tokens),
        toolCalls: Math.max(0, totals.toolCalls - at.toolCalls),
        ...(totals.costMicros === undefined ? {} : { costMicros: Math.max(0, totals.costMicros - (at.costMicros ?? 0)) }),
      };
      if (!finished) {
        return { ...base, same: null, wouldStop: outcome.stop, saved, reason: unfinished(final) };
      }
      const would = terminationOf(outcome.stop.rule);
      const same =
        would.reason === termination.reason && would.rule === termination.rule && saved.steps === 0 && saved.tokens === 0 && saved.toolCalls === 0 && (saved.costMicros ?? 0) === 0;
      return { ...base, same, wouldStop: outcome.stop, saved };
    }
    if (!finished) return { ...base, same: null, wouldStop: null, saved: none, reason: unfinished(final) };
    return { ...base, same: true, wouldStop: null, saved: none };
  }
}

const ZERO: WhatIfCounts = Object.freeze({ steps: 0, tokens: 0, toolCalls: 0 });

/** The events that decide how a run ends (an ERROR only when it is not retried). */
function ends(event: OaoEvent): boolean {
  switch (event.type) {
    case 'POLICY_VIOLATION':
    case 'EXECUTION_TIMEOUT':
    case 'EXECUTION_CANCELLED':
    case 'EXECUTION_FAILED':
      return true;
    default:
      return false;
  }
}

function terminationOf(rule: WhatIfRule): { reason: Termination['reason']; rule: PolicyRule | undefined } {
  if (rule === 'timeout') return { reason: 'timeout', rule: undefined };
  if (rule === 'max_retries') return { reason: 'error', rule: undefined };
  return { reason: 'policy_violation', rule };
}

function unfinished(final: RunFold): string {
  return `The run has not finished (its log ends at seq ${final.seq - 1}), so how it ends is not known yet`;
}

function countsOf(state: RunFold): WhatIfCounts {
  const cost = costOf(state);
  return { steps: state.steps, tokens: state.tokens.total, toolCalls: state.toolCalls, ...(cost === undefined ? {} : { costMicros: cost.micros }) };
}

function totalsOf(runs: readonly WhatIfRun[]): WhatIfTotals {
  let same = 0;
  let changed = 0;
  let unknown = 0;
  const saved: { steps: number; tokens: number; toolCalls: number; costMicros?: number } = { steps: 0, tokens: 0, toolCalls: 0 };
  for (const run of runs) {
    if (run.saved.costMicros !== undefined) saved.costMicros = (saved.costMicros ?? 0) + run.saved.costMicros;
    if (run.same === true) same += 1;
    else if (run.same === false) changed += 1;
    else unknown += 1;
    saved.steps += run.saved.steps;
    saved.tokens += run.saved.tokens;
    saved.toolCalls += run.saved.toolCalls;
  }
  return { runs: runs.length, same, changed, unknown, saved };
}

function matches(start: Extract<OaoEvent, { type: 'EXECUTION_START' }>, filter: WhatIfFilter): boolean {
  if (filter.agentName !== undefined && start.payload.agentName !== filter.agentName) return false;
  if (filter.since !== undefined && start.timestamp < filter.since) return false;
  if (filter.until !== undefined && start.timestamp >= filter.until) return false;
  return true;
}

interface CheckedOptions {
  readonly limits: PolicyLimits;
  readonly store: RunStore | undefined;
  readonly runs: readonly (readonly OaoEvent[] | string)[] | undefined;
  readonly filter: WhatIfFilter;
}

function checkOptions(options: unknown): CheckedOptions {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('options', `Expected the what-if options to be an object, got ${typeOf(options)}`);
  }
  const { policy, store, runs, filter } = options as Record<string, unknown>;
  if (policy === undefined) {
    throw invalidOption('policy', 'Expected policy to be a StrictPolicy or policy options: the policy to evaluate the runs against');
  }
  const limits = (policy instanceof StrictPolicy ? policy : new StrictPolicy(policy as PolicyOptions)).limits;
  if (store !== undefined && (typeof store !== 'object' || store === null || typeof (store as RunStore).list !== 'function' || typeof (store as RunStore).events !== 'function')) {
    throw invalidOption('store', `Expected store to be a RunStore (with list() and events()), got ${typeOf(store)}`);
  }
  if (runs !== undefined) {
    if (!Array.isArray(runs)) {
      throw invalidOption('runs', `Expected runs to be an array of event logs or execution ids, got ${typeOf(runs)}`);
    }
    for (const [index, run] of (runs as unknown[]).entries()) {
      if (typeof run === 'string') {
        if (store === undefined) {
          throw invalidOption(`runs.${index}`, `runs[${index}] is an execution id ("${run}"): pass the store to read it from, or pass its events`);
        }
      } else if (!Array.isArray(run)) {
        throw invalidOption(`runs.${index}`, `Expected runs[${index}] to be a run's events or an execution id, got ${typeOf(run)}`);
      } else if (run.length === 0) {
        throw invalidOption(`runs.${index}`, `runs[${index}] has no events: a run's log starts with EXECUTION_START`);
      }
    }
  } else if (store === undefined) {
    throw invalidOption('runs', 'Nothing to evaluate: pass store (every run it lists is evaluated) or runs (event logs, or execution ids with store)');
  }
  return {
    limits,
    store: store as RunStore | undefined,
    runs: runs as CheckedOptions['runs'],
    filter: checkFilter(filter),
  };
}

const filterFields: ReadonlySet<string> = new Set(['agentName', 'since', 'until']);

function checkFilter(filter: unknown): WhatIfFilter {
  if (filter === undefined) return {};
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw invalidOption('filter', `Expected filter to be an object, got ${typeOf(filter)}`);
  }
  for (const key of Object.keys(filter)) {
    if (!filterFields.has(key)) throw invalidOption(`filter.${key}`, `Unknown filter field "${key}": a what-if filter takes agentName, since and until`);
  }
  const { agentName, since, until } = filter as Record<string, unknown>;
  if (agentName !== undefined && typeof agentName !== 'string') {
    throw invalidOption('filter.agentName', `Expected filter.agentName to be a string, got ${typeOf(agentName)}`);
  }
  for (const [field, value] of [['since', since], ['until', until]] as const) {
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
      throw invalidOption(`filter.${field}`, `Expected filter.${field} to be a time in milliseconds since the epoch, got ${typeOf(value)}`);
    }
  }
  return {
    ...(agentName === undefined ? {} : { agentName }),
    ...(since === undefined ? {} : { since: since as number }),
    ...(until === undefined ? {} : { until: until as number }),
  };
}

/** A log handed in (from a file, a request body): every event is checked against the event schema. */
function parseLog(run: readonly OaoEvent[], index: number): OaoEvent[] {
  return run.map((value: unknown, position) => {
    const parsed = oaoEventSchema.safeParse(value);
    if (parsed.success) return parsed.data;
    const event = (typeof value === 'object' && value !== null ? value : {}) as { executionId?: unknown; seq?: unknown };
    const executionId = typeof event.executionId === 'string' ? event.executionId : null;
    const seq = typeof event.seq === 'number' ? event.seq : position;
    const issue = parsed.error.issues[0];
    throw new OaoError(
      'OAO_ERR_LOG_CORRUPT',
      `Event ${position} of runs[${index}]${executionId === null ? '' : ` (run "${executionId}")`} is not an event: ${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'}`,
      { details: { executionId, seq, field: `runs.${index}.${position}` } },
    );
  });
}
