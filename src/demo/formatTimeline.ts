import { table, type Style } from '../cli/style.js';
import type { OaoEvent } from '../events/schema.js';

/** A value in at most `max` characters: strings as they are, anything else as JSON. */
export function preview(value: unknown, max = 48): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The facts of an event worth one glance; the full payload is in `--json`. */
export function eventFacts(event: OaoEvent): string {
  switch (event.type) {
    case 'EXECUTION_START': {
      const p = event.payload;
      const tools = p.tools.length === 0 ? 'none' : p.tools.join(', ');
      return `agent ${p.agentName} · task ${preview(p.task, 32)} · tools ${tools} · timeout ${p.policy.timeoutMs} ms`;
    }
    case 'STATE_ENTER':
      return ''; // the state column says which
    case 'STATE_EXIT':
      return `after ${event.payload.durationMs.toFixed(1)} ms`;
    case 'PLAN_COMPLETE':
      return `input ${preview(event.payload.input)}`;
    case 'STEP_START':
      return `step ${event.payload.step} · input ${preview(event.payload.input)}`;
    case 'STEP_COMPLETE': {
      const usage = event.payload.usage === null ? '' : ` · usage ${event.payload.usage.total}`;
      return `step ${event.payload.step} · output ${preview(event.payload.output)}${usage}`;
    }
    case 'APPROVAL_REQUESTED':
      return `${event.payload.callId} ${event.payload.tool} awaits approval · args ${preview(event.payload.args)}`;
    case 'APPROVAL_GRANTED':
      return `${event.payload.callId} approved${event.payload.by === null ? '' : ` by ${event.payload.by}`}${event.payload.args === undefined ? '' : ` · args edited to ${preview(event.payload.args)}`}`;
    case 'APPROVAL_DENIED':
      return `${event.payload.callId} ${event.payload.timedOut ? 'not decided in time' : 'denied'}${event.payload.by === null ? '' : ` by ${event.payload.by}`}`;
    case 'BUDGET_EXHAUSTED':
      return `${event.payload.rule}: ${event.payload.message} · waits for a raise`;
    case 'BUDGET_RAISED':
      return `raised ${Object.entries(event.payload.limits).map(([k, v]) => `${k} ${String(v)}`).join(', ')}${event.payload.by === null ? '' : ` by ${event.payload.by}`}`;
    case 'EXECUTION_RESUMED':
      return `at ${event.payload.point} · idle ${event.payload.idleMs.toFixed(0)} ms${event.payload.owner === null ? '' : ` · by ${event.payload.owner}`}`;
    case 'REVIEW_DECISION':
      return event.payload.done ? `step ${event.payload.step}: done` : `step ${event.payload.step}: another step`;
    case 'TOKEN_USAGE': {
      const p = event.payload;
      return `+${p.total} tokens (in ${p.input} / out ${p.output}, ${p.source})`;
    }
    case 'MODEL_CALL':
      return `${event.payload.callId} ${event.payload.model ?? 'model'}`;
    case 'MODEL_RESULT':
      return `${event.payload.callId} ${event.payload.ok ? 'ok' : 'failed'} · ${event.payload.durationMs.toFixed(1)} ms`;
    case 'MODEL_CALL_DENIED':
      return `${event.payload.model ?? 'model'} refused (${event.payload.rule}), not sent`;
    case 'TOOL_CALL':
      return `${event.payload.callId} ${event.payload.tool}(${preview(event.payload.args, 40)})`;
    case 'TOOL_RESULT': {
      const p = event.payload;
      const outcome = p.ok ? `→ ${preview(p.result, 40)}` : `✖ ${p.error?.code ?? 'error'}`;
      return `${p.callId} ${p.tool} ${outcome}`;
    }
    case 'TOOL_DENIED':
      return `${event.payload.callId} ${event.payload.tool} refused (${event.payload.rule}), body not run`;
    case 'POLICY_VIOLATION':
      return `${event.payload.rule}: ${event.payload.message}`;
    case 'ERROR':
      return `${event.payload.phase} · ${event.payload.error.code}: ${event.payload.error.message}`;
    case 'EXECUTION_FAILED':
      return `${event.payload.error.code}: ${event.payload.error.message}`;
    case 'EXECUTION_TIMEOUT':
      return `deadline of ${event.payload.timeoutMs} ms passed`;
    case 'EXECUTION_CANCELLED':
      return event.payload.reason;
    case 'EXECUTION_COMPLETE': {
      const { status, termination } = event.payload.report;
      return `${status} · ${termination.reason}${termination.rule === undefined ? '' : ` (${termination.rule})`}`;
    }
  }
}

const governance = new Set<OaoEvent['type']>(['TOOL_DENIED', 'POLICY_VIOLATION', 'EXECUTION_TIMEOUT', 'EXECUTION_CANCELLED', 'ERROR']);

/**
 * One run's events, one line each: seq, time since the run began, type, state and the payload's
 * key facts. Decisions that stopped or refused something stand out.
 */
export function formatTimeline(events: readonly OaoEvent[], style: Style, indent = '    '): string {
  const start = events[0]?.timestamp ?? 0;
  const rows = [['seq', 'time', 'type', 'state', 'facts']];
  for (const event of events) {
    const type = governance.has(event.type) ? style.yellow(event.type) : event.type;
    rows.push([
      String(event.seq).padStart(3),
      `+${(event.timestamp - start).toFixed(1)} ms`,
      type,
      style.dim(event.state),
      eventFacts(event),
    ]);
  }
  return table(rows, style)
    .split('\n')
    .map((line) => `${indent}${line}`.trimEnd())
    .join('\n');
}
