// The pending approvals panel: every tool call that waits for a person (GET /approvals), oldest
// first, each with its run, tool, arguments and how long it has waited, an optional reason, and
// Approve and Deny buttons (POST /runs/:id/approvals/:callId). Rows are updated in place, so the
// list can refresh every second without losing what is typed into a reason or the focus.

import { h, setChildren, setMessage } from './dom.js';
import { formatDuration } from './format.js';

const rowsOf = new WeakMap();

/** The key of one waiting call: its run and its call id. */
export function approvalKey(approval) {
  return `${approval.executionId}\u0000${approval.callId}`;
}

/** The JSON of a call's arguments, pretty-printed and cut at `max` characters. */
export function argumentsText(args, max = 400) {
  let text;
  try {
    text = JSON.stringify(args, null, 1) ?? String(args);
  } catch {
    text = String(args);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Shows `approvals` in `list`. `now` is the server's time (for how long each call has waited);
 * `busy` maps a call's key to the decision being sent for it, and `errors` to the last error
 * about it; `onDecide(approval, decision, reason)` and `onSelect(executionId)` are called from the
 * buttons.
 */
export function renderApprovals(list, approvals, { now, busy, errors, onDecide, onSelect }) {
  let rows = rowsOf.get(list);
  if (rows === undefined) {
    rows = new Map();
    rowsOf.set(list, rows);
  }
  if (approvals.length === 0) {
    rows.clear();
    setChildren(list, h('li', { class: 'approval-empty muted', 'data-testid': 'approval-empty' }, 'No tool call is waiting for approval.'));
    return;
  }
  const items = approvals.map((approval) => {
    const key = approvalKey(approval);
    let row = rows.get(key);
    if (row === undefined) {
      row = createRow(approval, { onDecide, onSelect });
      rows.set(key, row);
    }
    updateRow(row, approval, { now, sending: busy.get(key) ?? null, error: errors.get(key) ?? null });
    return row.item;
  });
  const seen = new Set(approvals.map(approvalKey));
  for (const key of rows.keys()) if (!seen.has(key)) rows.delete(key);
  // Re-attach only when the order changed: moving a row would blur a focused input or button.
  const current = [...list.children];
  if (current.length !== items.length || current.some((item, index) => item !== items[index])) list.replaceChildren(...items);
}

function createRow(approval, { onDecide, onSelect }) {
  const label = `tool call ${approval.callId} (${approval.tool}) of run ${approval.executionId}`;
  const reason = h('input', {
    type: 'text',
    class: 'approval-reason',
    'data-testid': 'approval-reason',
    placeholder: 'Reason (optional)',
    maxlength: '1000',
    'aria-label': `Reason for the decision on ${label}`,
  });
  const decide = (decision) => onDecide(approval, decision, reason.value.trim());
  const approve = h('button', { type: 'button', class: 'button button-primary', 'data-testid': 'approve-button', 'aria-label': `Approve ${label}`, onclick: () => decide('approve') }, 'Approve');
  const deny = h('button', { type: 'button', class: 'button button-danger', 'data-testid': 'deny-button', 'aria-label': `Deny ${label}`, onclick: () => decide('deny') }, 'Deny');
  const run = h('button', { type: 'button', class: 'approval-run', 'data-testid': 'approval-run', title: `Show run ${approval.executionId}`, onclick: () => onSelect(approval.executionId) }, approval.executionId);
  const meta = h('span', { class: 'approval-meta', 'data-testid': 'approval-meta' });
  const args = h('pre', { class: 'approval-args', 'data-testid': 'approval-args' }, argumentsText(approval.args));
  const error = h('p', { class: 'form-error', 'data-testid': 'approval-item-error', role: 'alert', hidden: true });
  const item = h(
    'li',
    { class: 'approval-item', 'data-testid': 'approval-item', 'data-run-id': approval.executionId, 'data-call-id': approval.callId },
    h('div', { class: 'approval-line' }, h('span', { class: 'badge badge-waiting', 'data-testid': 'approval-tool' }, approval.tool), h('span', { class: 'approval-agent' }, approval.agentName)),
    h('div', { class: 'approval-line approval-line-meta' }, run, meta),
    args,
    reason,
    h('div', { class: 'approval-actions' }, approve, deny),
    error,
  );
  return { item, approve, deny, reason, meta, error };
}

function updateRow(row, approval, { now, sending, error }) {
  const waited = Math.max(0, now - Date.parse(approval.requestedAt));
  row.meta.textContent = `call ${approval.callId} · step ${approval.step} · waiting ${formatDuration(waited)}`;
  row.meta.title = `Requested at ${approval.requestedAt}`;
  row.approve.disabled = sending !== null;
  row.deny.disabled = sending !== null;
  row.reason.disabled = sending !== null;
  row.approve.textContent = sending === 'approve' ? 'Approving…' : 'Approve';
  row.deny.textContent = sending === 'deny' ? 'Denying…' : 'Deny';
  if (row.error.textContent !== (error ?? '') || row.error.hidden !== !error) setMessage(row.error, error);
  row.item.setAttribute('aria-busy', String(sending !== null));
}
