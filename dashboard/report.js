// The report of a finished run: how it ended and why, what it spent, and its output.

import { h, setChildren } from './dom.js';
import { formatDuration, formatNumber, prettyJson } from './format.js';

function row(term, ...value) {
  return [h('dt', {}, term), h('dd', {}, ...value)];
}

function statusBadge(status) {
  return h('span', { class: `badge badge-${String(status).toLowerCase()}`, 'data-testid': 'report-status' }, status);
}

/** Shows `view`'s report in `container`, or says when it will appear. */
export function renderReport(container, view) {
  const report = view?.report ?? null;
  if (report === null) {
    setChildren(container, h('p', { class: 'muted empty-note' }, view === null ? '' : 'The report appears when the run ends.'));
    return;
  }
  const { termination } = report;
  const byTool = Object.entries(report.toolUsage.byTool ?? {});
  // A text output reads better as text than as a JSON string literal.
  const output = typeof report.finalOutput === 'string' ? report.finalOutput : prettyJson(report.finalOutput);
  setChildren(
    container,
    h(
      'dl',
      { class: 'report-grid' },
      row('Status', statusBadge(report.status)),
      row('Reason', h('span', { 'data-testid': 'report-reason', class: `reason reason-${termination.reason}` }, termination.reason)),
      termination.rule ? row('Rule', h('code', { 'data-testid': 'report-rule' }, termination.rule)) : [],
      termination.message ? row('Message', h('span', { 'data-testid': 'report-message' }, termination.message)) : [],
      report.error ? row('Error', h('code', {}, report.error.code), ' ', report.error.message) : [],
      row('Steps', formatNumber(report.totalSteps)),
      row(
        'Tokens',
        `${formatNumber(report.tokenUsage.total)} `,
        h('span', { class: 'muted' }, `(${formatNumber(report.tokenUsage.input)} in, ${formatNumber(report.tokenUsage.output)} out)`),
      ),
      row(
        'Tool calls',
        `${formatNumber(report.toolUsage.total)} `,
        byTool.length > 0 ? h('span', { class: 'muted' }, `(${byTool.map(([tool, count]) => `${tool} ×${count}`).join(', ')})`) : [],
      ),
      row('Time', formatDuration(report.executionTimeMs)),
      row('Hash', h('code', { class: 'hash', title: report.executionHash }, `${report.executionHash.slice(0, 16)}…`)),
    ),
    h(
      'details',
      { class: 'report-output', open: output.length <= 400 },
      h('summary', {}, 'Final output'),
      h('pre', { 'data-testid': 'report-output' }, output.length > 20_000 ? `${output.slice(0, 20_000)}\n…` : output),
    ),
  );
}
