// Budget gauges: steps, tokens and tool calls from the events' counters, cost (for a run whose
// policy has prices or a cost limit) beside tokens, and live time (time waiting for a person's
// decision is not charged to timeoutMs), each against the run's effective limit
// (EXECUTION_START's policy). They turn amber near the limit and red at it.

import { h } from './dom.js';
import { formatDuration, formatNumber, formatUsd } from './format.js';
import { gaugeLevel } from './runModel.js';

const GAUGES = [
  { id: 'steps', label: 'Steps', used: (view) => view.counters.steps, limit: (limits) => limits.maxSteps, format: formatNumber },
  { id: 'tokens', label: 'Tokens', used: (view) => view.counters.tokens, limit: (limits) => limits.maxTokens, format: formatNumber },
  {
    id: 'cost',
    label: 'Cost',
    optional: true,
    used: (view) => view.cost ?? 0,
    // The limit in integer micro-dollars, as the runtime counts it.
    limit: (limits) => (typeof limits.maxCostUsd === 'number' ? Math.round(limits.maxCostUsd * 1_000_000) : null),
    format: formatUsd,
  },
  { id: 'toolCalls', label: 'Tool calls', used: (view) => view.counters.toolCalls, limit: (limits) => limits.maxToolCalls, format: formatNumber },
  { id: 'time', label: 'Time', used: (view) => view.liveTime ?? view.elapsed, limit: (limits) => limits.timeoutMs, format: formatDuration },
];

const LEVEL_TEXT = { ok: '', near: 'near the limit', limit: 'at the limit', over: 'over the limit', unknown: 'limit unknown' };

const built = new WeakMap();

function build(container, withCost) {
  const parts = GAUGES.filter((gauge) => !gauge.optional || withCost).map((gauge) => {
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
  built.set(container, { withCost, parts });
  return parts;
}

/** Updates the gauges in `container` (built on first use) to `view`. */
export function renderGauges(container, view) {
  // The cost gauge is there only for a costed run: rebuilt when the run shown changes kind.
  const withCost = view !== null && view.cost !== null && view.cost !== undefined;
  const known = built.get(container);
  const parts = known !== undefined && known.withCost === withCost ? known.parts : build(container, withCost);
  for (const { gauge, element, value, note, fill, track } of parts) {
    const used = view === null ? 0 : gauge.used(view);
    const limit = view?.limits ? gauge.limit(view.limits) : null;
    // Time runs past its limit by the few milliseconds a timeout takes to land: that is the limit.
    // Cost without a cost limit is shown, not graded.
    let level = view === null || (gauge.id === 'cost' && limit === null) ? 'ok' : gaugeLevel(used, limit);
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
