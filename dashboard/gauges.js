// Budget gauges: steps, tokens and tool calls from the events' counters, and live time (time
// waiting for a person's decision is not charged to timeoutMs), each against the run's effective
// limit (EXECUTION_START's policy). They turn amber near the limit and red at it.

import { h } from './dom.js';
import { formatDuration, formatNumber } from './format.js';
import { gaugeLevel } from './runModel.js';

const GAUGES = [
  { id: 'steps', label: 'Steps', used: (view) => view.counters.steps, limit: (limits) => limits.maxSteps, format: formatNumber },
  { id: 'tokens', label: 'Tokens', used: (view) => view.counters.tokens, limit: (limits) => limits.maxTokens, format: formatNumber },
  { id: 'toolCalls', label: 'Tool calls', used: (view) => view.counters.toolCalls, limit: (limits) => limits.maxToolCalls, format: formatNumber },
  { id: 'time', label: 'Time', used: (view) => view.liveTime ?? view.elapsed, limit: (limits) => limits.timeoutMs, format: formatDuration },
];

const LEVEL_TEXT = { ok: '', near: 'near the limit', limit: 'at the limit', over: 'over the limit', unknown: 'limit unknown' };

const built = new WeakMap();

function build(container) {
  const parts = GAUGES.map((gauge) => {
    const value = h('span', { class: 'gauge-value', 'data-testid': 'gauge-value' });
    const note = h('span', { class: 'gauge-note' });
    const fill = h('div', { class: 'gauge-fill' });
    const track = h('div', { class: 'gauge-track', role: 'meter', 'aria-label': gauge.label, 'aria-valuemin': 0 }, fill);
    const element = h(
      'div',
      { class: 'gauge', 'data-testid': 'gauge', 'data-gauge': gauge.id, 'data-level': 'ok' },
      h('div', { class: 'gauge-head' }, h('span', { class: 'gauge-label' }, gauge.label), value),
      track,
      note,
    );
    return { gauge, element, value, note, fill, track };
  });
  container.replaceChildren(...parts.map((part) => part.element));
  built.set(container, parts);
  return parts;
}

/** Updates the gauges in `container` (built on first use) to `view`. */
export function renderGauges(container, view) {
  const parts = built.get(container) ?? build(container);
  for (const { gauge, element, value, note, fill, track } of parts) {
    const used = view === null ? 0 : gauge.used(view);
    const limit = view?.limits ? gauge.limit(view.limits) : null;
    // Time runs past its limit by the few milliseconds a timeout takes to land: that is the limit.
    let level = view === null ? 'ok' : gaugeLevel(used, limit);
    if (gauge.id === 'time' && level === 'over') level = 'limit';
    const ratio = limit === null ? 0 : limit === 0 ? (used > 0 ? 1 : 0) : Math.min(1, used / limit);
    element.setAttribute('data-level', level);
    value.textContent = limit === null ? gauge.format(used) : `${gauge.format(used)} / ${gauge.format(limit)}`;
    fill.style.width = `${(ratio * 100).toFixed(1)}%`;
    track.setAttribute('aria-valuenow', String(Math.round(used)));
    if (limit !== null) track.setAttribute('aria-valuemax', String(limit));
    track.setAttribute('aria-valuetext', value.textContent);
    const remaining = limit === null ? null : Math.max(0, limit - used);
    note.textContent =
      LEVEL_TEXT[level] || (remaining === null ? '' : `${gauge.format(remaining)} left`);
  }
}
