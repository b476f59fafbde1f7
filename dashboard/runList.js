// The run list: newest first, each run a button showing its status (with the termination
// reason when it failed), agent, id, start time and duration. Rows are updated in place so the
// list can refresh every second without losing focus or scroll position.

import { h, setChildren } from './dom.js';
import { formatClock, formatDuration } from './format.js';

const rowsOf = new WeakMap();

/** "SUCCESS", "running", or "FAILED · cancelled": a failed run says why. */
export function badgeText(status, reason) {
  return status === 'FAILED' && reason ? `FAILED · ${reason}` : String(status);
}

function statusBadge(status, reason, testId) {
  return h('span', { class: `badge badge-${String(status).toLowerCase()}`, 'data-testid': testId, 'data-status': status }, badgeText(status, reason));
}

function durationOf(run, now) {
  const started = Date.parse(run.startedAt);
  const ended = run.finishedAt === null ? now : Date.parse(run.finishedAt);
  return Number.isFinite(started) && Number.isFinite(ended) ? Math.max(0, ended - started) : NaN;
}

/**
 * Shows `runs` in `list`. `selectedId` is marked (aria-current); `now` is the server's time, for
 * the duration of running runs; `onSelect(id)` is called when a run is picked.
 */
export function renderRunList(list, runs, { selectedId, now, onSelect }) {
  let rows = rowsOf.get(list);
  if (rows === undefined) {
    rows = new Map();
    rowsOf.set(list, rows);
  }
  if (runs.length === 0) {
    rows.clear();
    setChildren(list, h('li', { class: 'run-empty muted' }, 'No runs yet. Start one above.'));
    return;
  }
  const items = runs.map((run) => {
    let row = rows.get(run.executionId);
    if (row === undefined) {
      const button = h('button', { type: 'button', class: 'run-item', 'data-testid': 'run-item', 'data-run-id': run.executionId });
      button.addEventListener('click', () => onSelect(run.executionId));
      row = { item: h('li', {}, button), button };
      rows.set(run.executionId, row);
    }
    const { button } = row;
    const reason = run.termination?.reason ?? null;
    button.setAttribute('data-status', run.status);
    button.setAttribute('aria-current', String(run.executionId === selectedId));
    button.setAttribute('aria-label', `Run ${run.executionId} of ${run.agent}: ${run.status}${reason ? `, ${reason}` : ''}`);
    setChildren(
      button,
      h(
        'span',
        { class: 'run-line' },
        statusBadge(run.status, reason, 'run-status'),
        h('span', { class: 'run-agent' }, run.agent),
      ),
      h(
        'span',
        { class: 'run-line run-line-meta' },
        h('span', { class: 'run-id', title: run.executionId }, run.executionId),
        h('span', { class: 'run-time' }, `${formatClock(run.startedAt)} · ${formatDuration(durationOf(run, now))}`),
      ),
    );
    return row.item;
  });
  const seen = new Set(runs.map((run) => run.executionId));
  for (const id of rows.keys()) if (!seen.has(id)) rows.delete(id);
  // Re-attach only when the order changed: moving a focused button would blur it.
  const current = [...list.children];
  if (current.length !== items.length || current.some((item, index) => item !== items[index])) list.replaceChildren(...items);
}
