// What the panels show about one run, derived from its events alone (or from its report when
// the events are no longer kept). Pure functions, no DOM: the same events and clock give the
// same view, whether they were replayed or arrived live.

/** The lanes of the timeline, top to bottom. */
export const LANES = Object.freeze([
  { id: 'states', label: 'States' },
  { id: 'steps', label: 'Steps' },
  { id: 'models', label: 'Model calls' },
  { id: 'tools', label: 'Tool calls' },
]);

/**
 * @param {readonly object[]} events the run's events, in seq order
 * @param {{ now?: number | null, report?: object | null }} options `now`: the current time on
 *   the server's clock (epoch ms), so open bars and the time gauge grow while the run runs;
 *   `report`: the run's report when known from elsewhere (GET /runs/:id).
 */
export function deriveRun(events, { now = null, report = null } = {}) {
  if (events.length === 0 && report !== null) return fromReport(report);

  const start = events.find((event) => event.type === 'EXECUTION_START') ?? null;
  const origin = start?.timestamp ?? events[0]?.timestamp ?? 0;
  const last = events.at(-1) ?? null;
  const complete = last?.type === 'EXECUTION_COMPLETE' ? last : null;
  const finalReport = complete?.payload.report ?? report;
  const finished = finalReport !== null && finalReport !== undefined;
  const lastOffset = last === null ? 0 : last.timestamp - origin;
  const endAt = complete !== null ? complete.timestamp - origin : finished ? Math.max(lastOffset, finalReport.executionTimeMs ?? 0) : null;
  const elapsed = endAt ?? Math.max(lastOffset, now === null ? 0 : now - origin);

  const spans = [];
  const marks = [];
  const visits = new Map();
  const taken = new Set();
  const openStates = new Map();
  const openSteps = new Map();
  const openModels = new Map();
  const openTools = new Map();
  let currentState = null;

  const open = (lane, key, label, at, detail, extra = {}) => {
    const span = { id: `${lane}:${key}`, lane, label, start: at, end: null, status: 'open', detail, ...extra };
    spans.push(span);
    return span;
  };
  const close = (span, at, status, detail) => {
    if (span === undefined || span.end !== null) return;
    span.end = Math.max(span.start, at);
    span.status = status;
    if (detail) span.detail = `${span.detail}\n${detail}`;
  };
  const closeAll = (map, at, status) => {
    for (const span of map.values()) close(span, at, status, status === 'aborted' ? 'ended without a result' : '');
    map.clear();
  };

  for (const event of events) {
    const at = event.timestamp - origin;
    const p = event.payload ?? {};
    switch (event.type) {
      case 'STATE_ENTER': {
        if (currentState !== null && currentState !== p.state) taken.add(`${currentState}>${p.state}`);
        currentState = p.state;
        visits.set(p.state, (visits.get(p.state) ?? 0) + 1);
        const span = open('states', `${p.state}:${event.seq}`, p.state, at, `${p.state} entered at ${at.toFixed(0)} ms`, { state: p.state });
        if (p.state === 'TERMINATE' || p.state === 'FAILED') {
          span.end = at;
          span.status = 'final';
        } else {
          openStates.set(p.state, span);
        }
        break;
      }
      case 'STATE_EXIT':
        close(openStates.get(p.state), at, 'ok', `left after ${Math.round(p.durationMs)} ms`);
        openStates.delete(p.state);
        if (p.state === 'EXECUTE') closeAll(openSteps, at, 'aborted');
        break;
      case 'STEP_START':
        openSteps.set(
          `${p.step}:${p.attempt}`,
          open('steps', `${p.step}:${p.attempt}:${event.seq}`, p.attempt > 1 ? `step ${p.step} · try ${p.attempt}` : `step ${p.step}`, at, `step ${p.step}, attempt ${p.attempt}`),
        );
        break;
      case 'STEP_COMPLETE':
        close(openSteps.get(`${p.step}:${p.attempt}`), at, 'ok', 'completed');
        openSteps.delete(`${p.step}:${p.attempt}`);
        break;
      case 'ERROR':
        if (p.phase === 'step') {
          close(openSteps.get(`${p.step}:${p.attempt}`), at, 'error', `${p.error?.code ?? 'error'}: ${p.error?.message ?? ''}`);
          openSteps.delete(`${p.step}:${p.attempt}`);
        }
        marks.push({ at, kind: p.willRetry ? 'retry' : 'error', label: p.willRetry ? 'retry' : `${p.phase} error`, detail: `${p.error?.code ?? ''} ${p.error?.message ?? ''}`.trim() });
        break;
      case 'MODEL_CALL':
        openModels.set(p.callId, open('models', p.callId, p.model ?? 'model', at, `${p.model ?? 'model'} (step ${p.step})`));
        break;
      case 'MODEL_RESULT':
        close(openModels.get(p.callId), at, p.ok ? 'ok' : 'error', p.ok ? `${p.usage?.total ?? 0} tokens` : `failed: ${p.error?.message ?? ''}`);
        openModels.delete(p.callId);
        break;
      case 'TOOL_CALL':
        openTools.set(p.callId, open('tools', p.callId, p.tool, at, `${p.tool} (step ${p.step})`));
        break;
      case 'TOOL_RESULT':
        close(openTools.get(p.callId), at, p.ok ? 'ok' : 'error', p.ok ? 'returned' : `failed: ${p.error?.message ?? ''}`);
        openTools.delete(p.callId);
        break;
      case 'TOOL_DENIED':
        spans.push({ id: `tools:${p.callId}`, lane: 'tools', label: p.tool, start: at, end: at, status: 'denied', detail: `${p.tool} denied (${p.rule}): ${p.message}` });
        break;
      case 'POLICY_VIOLATION':
        marks.push({ at, kind: 'violation', label: p.rule, detail: p.message });
        break;
      case 'EXECUTION_TIMEOUT':
        marks.push({ at, kind: 'timeout', label: 'timeout', detail: `after ${p.timeoutMs} ms` });
        break;
      case 'EXECUTION_CANCELLED':
        marks.push({ at, kind: 'cancelled', label: 'cancelled', detail: p.reason });
        break;
      default:
        break;
    }
  }
  if (finished) {
    closeAll(openSteps, endAt, 'aborted');
    closeAll(openModels, endAt, 'aborted');
    closeAll(openTools, endAt, 'aborted');
    closeAll(openStates, endAt, 'aborted');
  }

  return {
    origin,
    elapsed,
    // The time charged to timeoutMs: waiting for a person (or for a process to hold the run) is not.
    liveTime: finished && typeof finalReport.executionTimeMs === 'number' ? finalReport.executionTimeMs : Math.max(0, elapsed - idleTime(events, origin, elapsed)),
    waitingForApproval: pendingApprovals(events),
    finished,
    status: finished ? finalReport.status : events.length > 0 ? 'running' : null,
    report: finished ? finalReport : null,
    agentName: start?.payload.agentName ?? finalReport?.agentName ?? null,
    task: start?.payload.task,
    tools: start?.payload.tools ?? [],
    currentState: currentState ?? last?.state ?? null,
    visits,
    taken,
    counters: last?.counters ?? { steps: 0, tokens: 0, toolCalls: 0 },
    cost: finished && finalReport.cost ? finalReport.cost.micros : costOf(events, start?.payload.policy ?? null),
    limits: start?.payload.policy ?? null,
    spans,
    marks,
    eventCount: events.length,
  };
}

/**
 * Time within `elapsed` that is not live: while a tool call waits for approval (or the run for a
 * budget decision), and the gaps no process held the run, as the run's own report counts them.
 */
function idleTime(events, origin, elapsed) {
  let idle = 0;
  let waitingSince = null;
  let budgetWaiting = false;
  let previousAt = 0;
  const pending = new Set();
  const stopWaiting = (at) => {
    if (pending.size > 0 || budgetWaiting || waitingSince === null) return;
    idle += Math.max(0, at - waitingSince);
    waitingSince = null;
  };
  for (const event of events) {
    const at = event.timestamp - origin;
    const p = event.payload ?? {};
    switch (event.type) {
      case 'EXECUTION_RESUMED':
        if (waitingSince !== null) {
          idle += Math.max(0, previousAt - waitingSince);
          waitingSince = at;
        }
        idle += p.idleMs ?? 0;
        break;
      case 'APPROVAL_REQUESTED':
        pending.add(p.callId);
        waitingSince ??= at;
        break;
      case 'APPROVAL_GRANTED':
      case 'APPROVAL_DENIED':
        pending.delete(p.callId);
        stopWaiting(at);
        break;
      case 'BUDGET_EXHAUSTED':
        budgetWaiting = true;
        waitingSince ??= at;
        break;
      case 'BUDGET_RAISED':
        budgetWaiting = false;
        stopWaiting(at);
        break;
      default:
        break;
    }
    previousAt = at;
  }
  return idle + (waitingSince === null ? 0 : Math.max(0, elapsed - waitingSince));
}

/** The tool calls of a run that wait for approval now: requested, not yet decided. */
function pendingApprovals(events) {
  const pending = new Map();
  for (const event of events) {
    if (event.type === 'APPROVAL_REQUESTED') pending.set(event.payload.callId, event.payload.tool);
    else if (event.type === 'APPROVAL_GRANTED' || event.type === 'APPROVAL_DENIED') pending.delete(event.payload.callId);
    else if (event.type === 'EXECUTION_COMPLETE') pending.clear();
  }
  return [...pending].map(([callId, tool]) => ({ callId, tool }));
}

/** The view of a finished run whose events are gone: its report still has the states it went through. */
function fromReport(report) {
  const history = report.stateHistory ?? [];
  const origin = history[0]?.enteredAt ?? 0;
  const visits = new Map();
  const taken = new Set();
  const spans = [];
  let previous = null;
  for (const entry of history) {
    visits.set(entry.state, (visits.get(entry.state) ?? 0) + 1);
    if (previous !== null && previous !== entry.state) taken.add(`${previous}>${entry.state}`);
    previous = entry.state;
    const start = entry.enteredAt - origin;
    const final = entry.state === 'TERMINATE' || entry.state === 'FAILED';
    spans.push({
      id: `states:${entry.state}:${spans.length}`,
      lane: 'states',
      label: entry.state,
      state: entry.state,
      start,
      end: start + (final ? 0 : entry.durationMs),
      status: final ? 'final' : 'ok',
      detail: `${entry.state} for ${Math.round(entry.durationMs)} ms`,
    });
  }
  return {
    origin,
    elapsed: report.executionTimeMs,
    liveTime: report.executionTimeMs,
    waitingForApproval: [],
    finished: true,
    status: report.status,
    report,
    agentName: report.agentName,
    task: undefined,
    tools: Object.keys(report.toolUsage?.byTool ?? {}),
    currentState: previous,
    visits,
    taken,
    counters: { steps: report.totalSteps, tokens: report.tokenUsage.total, toolCalls: report.toolUsage.total },
    cost: report.cost ? report.cost.micros : null,
    limits: null,
    spans,
    marks: [],
    eventCount: 0,
  };
}

/**
 * Micro-dollars spent so far: the sum of the usage events' integer costs, as the run's fold counts
 * them. Null when the run is not costed (its policy has neither prices nor a cost limit).
 */
export function costOf(events, policy) {
  if (!policy || (policy.pricing === undefined && policy.maxCostUsd === undefined)) return null;
  let micros = 0;
  for (const event of events) if (event.type === 'TOKEN_USAGE' && typeof event.payload.costMicros === 'number') micros += event.payload.costMicros;
  return micros;
}

/**
 * Lays the spans of one lane out in rows so that none overlap: each span takes the first row that
 * is free at its start. Beyond `maxRows`, spans share the last row.
 */
export function packRows(spans, elapsed, maxRows = 6) {
  const rowEnds = [];
  const placed = [];
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    const end = span.end ?? elapsed;
    let row = rowEnds.findIndex((rowEnd) => rowEnd <= span.start);
    if (row === -1) row = rowEnds.length < maxRows ? rowEnds.length : maxRows - 1;
    rowEnds[row] = Math.max(rowEnds[row] ?? 0, end);
    placed.push({ span, row });
  }
  return { placed, rows: Math.max(1, rowEnds.length) };
}

/** used / limit as a level: `ok`, `near` (from 80 %), `limit` (reached) or `over`. */
export function gaugeLevel(used, limit) {
  if (limit === null || limit === undefined) return 'unknown';
  if (used > limit) return 'over';
  if (used === limit) return 'limit';
  return limit > 0 && used / limit >= 0.8 ? 'near' : 'ok';
}

/** The limits a run can be started with, in the order the form and the budget show them. */
export const LIMIT_NAMES = Object.freeze(['maxSteps', 'maxTokens', 'maxToolCalls', 'timeoutMs']);

/**
 * The limits asked for above what applies (`applied`: a run's effective policy, or the server's
 * limits before it starts): the server narrows them to its own, so each is lowered, in form order.
 */
export function loweredLimits(requested, applied) {
  if (requested === null || requested === undefined || applied === null || applied === undefined) return [];
  return LIMIT_NAMES.filter((name) => typeof requested[name] === 'number' && typeof applied[name] === 'number' && requested[name] > applied[name]).map(
    (name) => ({ name, requested: requested[name], applied: applied[name] }),
  );
}
