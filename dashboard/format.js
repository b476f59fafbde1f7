// How values are written on the page: durations, clock times, short previews and one-line
// summaries of events.

/** 850 ms, 1.2 s, 2 min 5 s. */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1_000);
  return `${minutes} min ${seconds} s`;
}

/** An axis label: whole numbers where they suffice. */
export function formatTick(ms) {
  if (ms === 0) return '0';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1_000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/** +0.042 s: an event's time from the start of its run. */
export function formatOffset(ms) {
  if (!Number.isFinite(ms)) return '';
  return `+${(ms / 1_000).toFixed(3)} s`;
}

const pad = (value) => String(value).padStart(2, '0');

/** 14:03:27 in local time, from an ISO string or epoch milliseconds. */
export function formatClock(time) {
  const date = new Date(time);
  if (Number.isNaN(date.getTime())) return '';
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function formatNumber(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toLocaleString('en-US') : '–';
}

/** Integer micro-dollars as dollars, to the micro-dollar, trailing zeros dropped past the cents: `$0.0175`. */
export function formatUsd(micros) {
  if (typeof micros !== 'number' || !Number.isFinite(micros)) return '–';
  const whole = Math.floor(micros / 1_000_000);
  const fraction = String(micros % 1_000_000).padStart(6, '0').replace(/0{1,4}$/, '');
  return `$${whole.toLocaleString('en-US')}.${fraction}`;
}

/** A value on one line, at most `max` characters: strings as they are, the rest as JSON. */
export function preview(value, max = 80) {
  let text;
  if (value === undefined) text = '';
  else if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  text = text.replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Pretty JSON for the expanded views. */
export function prettyJson(value) {
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

function usageText(usage) {
  return usage ? `${formatNumber(usage.total)} tokens` : 'no usage';
}

/** What an event says, in one short line (its full JSON is one click away). */
export function summarizeEvent(event) {
  const p = event.payload ?? {};
  switch (event.type) {
    case 'EXECUTION_START':
      return `agent ${p.agentName} · task ${preview(p.task, 48)}${p.tools?.length ? ` · tools: ${p.tools.join(', ')}` : ''}`;
    case 'STATE_ENTER':
      return `entered ${p.state}`;
    case 'STATE_EXIT':
      return `left ${p.state} after ${formatDuration(p.durationMs)}`;
    case 'PLAN_COMPLETE':
      return `plan: ${preview(p.input, 64)}`;
    case 'STEP_START':
      return `step ${p.step}${p.attempt > 1 ? ` (attempt ${p.attempt})` : ''} · input ${preview(p.input, 48)}`;
    case 'STEP_COMPLETE':
      return `step ${p.step} done · ${preview(p.output, 56)}`;
    case 'REVIEW_DECISION':
      return p.done ? `step ${p.step} reviewed: done` : `step ${p.step} reviewed: another step`;
    case 'TOKEN_USAGE':
      return `+${formatNumber(p.total)} tokens (${formatNumber(p.input)} in, ${formatNumber(p.output)} out) · ${p.source}`;
    case 'MODEL_CALL':
      return `${p.model ?? 'model'} called · ${preview(p.input, 48)}`;
    case 'MODEL_RESULT':
      return p.ok
        ? `${p.model ?? 'model'} answered in ${formatDuration(p.durationMs)} · ${usageText(p.usage)} · ${preview(p.output, 40)}`
        : `${p.model ?? 'model'} failed: ${p.error?.message ?? 'unknown error'}`;
    case 'TOOL_CALL':
      return `${p.tool}(${preview(p.args, 56)})`;
    case 'TOOL_RESULT':
      return p.ok
        ? `${p.tool} → ${preview(p.result, 56)} · ${formatDuration(p.durationMs)}`
        : `${p.tool} failed: ${p.error?.message ?? 'unknown error'}`;
    case 'TOOL_DENIED':
      return `${p.tool} denied (${p.rule}): ${p.message}`;
    case 'APPROVAL_REQUESTED':
      return `${p.tool}(${preview(p.args, 48)}) waits for approval · call ${p.callId}`;
    case 'APPROVAL_GRANTED':
      return `${p.tool} call ${p.callId} approved${p.by ? ` by ${p.by}` : ''}${p.args === undefined ? '' : ` with ${preview(p.args, 40)}`}${p.reason ? `: ${p.reason}` : ''}`;
    case 'APPROVAL_DENIED':
      return `${p.tool} call ${p.callId} ${p.timedOut ? 'not approved in time' : `denied${p.by ? ` by ${p.by}` : ''}`}${p.reason ? `: ${p.reason}` : ''}`;
    case 'POLICY_VIOLATION':
      return `${p.rule}: ${p.message}`;
    case 'ERROR':
      return `${p.phase} failed: ${p.error?.code ?? ''} ${p.error?.message ?? ''}${p.willRetry ? ` · retry in ${formatDuration(p.retryInMs)}` : ''}`;
    case 'EXECUTION_TIMEOUT':
      return `timed out after ${formatDuration(p.timeoutMs)}`;
    case 'EXECUTION_CANCELLED':
      return `cancelled: ${p.reason}`;
    case 'EXECUTION_FAILED':
      return `failed: ${p.error?.code ?? ''} ${p.error?.message ?? ''}`;
    case 'EXECUTION_COMPLETE': {
      const report = p.report ?? {};
      const termination = report.termination ?? {};
      return `${report.status} · ${termination.reason}${termination.rule ? ` (${termination.rule})` : ''}`;
    }
    default:
      return preview(p, 80);
  }
}

/** The family an event type belongs to, for its colour. */
export function eventCategory(type) {
  if (type === 'STATE_ENTER' || type === 'STATE_EXIT') return 'state';
  if (type.startsWith('STEP_') || type === 'PLAN_COMPLETE' || type === 'REVIEW_DECISION') return 'step';
  if (type.startsWith('MODEL_') || type === 'TOKEN_USAGE') return 'model';
  if (type === 'TOOL_CALL' || type === 'TOOL_RESULT') return 'tool';
  if (type === 'TOOL_DENIED' || type === 'POLICY_VIOLATION' || type === 'ERROR' || type === 'EXECUTION_TIMEOUT' || type === 'EXECUTION_CANCELLED' || type === 'EXECUTION_FAILED') {
    return 'problem';
  }
  return 'run';
}

const LIMIT_LABELS = { maxSteps: 'steps', maxTokens: 'tokens', maxToolCalls: 'tool calls', timeoutMs: 'timeout' };

/** A policy limit's name as the page says it: "steps", "tool calls", "timeout". */
export function limitLabel(name) {
  return LIMIT_LABELS[name] ?? name;
}

/** A policy limit's value: a duration for the timeout, a number for the rest. */
export function formatLimit(name, value) {
  return name === 'timeoutMs' ? formatDuration(value) : formatNumber(value);
}
