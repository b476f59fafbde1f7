import type { ExecutionReport } from '../report/schema.js';
import type { Style } from './style.js';
import { table } from './style.js';

function formatMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function reason(report: ExecutionReport): string {
  const t = report.termination;
  return t.rule === undefined ? t.reason : `${t.reason} (${t.rule}${t.scope === 'shared' || t.scope === 'tenant' ? `, ${t.scope}` : ''})`;
}

function preview(value: unknown, max = 100): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A report for people: status, why it stopped, spend, and the output. */
export function formatReport(name: string, report: ExecutionReport, style: Style): string {
  const ok = report.status === 'SUCCESS';
  const mark = ok ? style.green('✔') : style.red('✖');
  const status = ok ? style.green(report.status) : style.red(report.status);
  const lines = [
    `${mark} ${style.bold(name)}  ${status}  ${reason(report)}`,
    style.dim(
      `  steps ${report.totalSteps} · tokens ${report.tokenUsage.total} (in ${report.tokenUsage.input} / out ${report.tokenUsage.output})${report.cost === undefined ? '' : ` · cost ${formatUsd(report.cost.micros)}`} · tool calls ${report.toolUsage.total} · ${formatMs(report.executionTimeMs)}`,
    ),
  ];
  if (!ok && report.termination.message !== undefined) lines.push(`  ${style.yellow(report.termination.message)}`);
  lines.push(`  output: ${preview(report.finalOutput)}`);
  lines.push(style.dim(`  states: ${report.stateHistory.map((s) => s.state).join(' → ')}`));
  lines.push(style.dim(`  id ${report.executionId} · hash ${report.executionHash.slice(0, 12)}`));
  return lines.join('\n');
}

/** Integer micro-dollars as dollars, to the micro-dollar, trailing zeros dropped past the cents: `$0.0175`, `$1.50`. */
export function formatUsd(micros: number): string {
  const whole = Math.floor(micros / 1_000_000);
  const fraction = String(micros % 1_000_000).padStart(6, '0').replace(/0{1,4}$/, '');
  return `$${whole}.${fraction}`;
}

/** One line per run, aligned. */
export function summaryTable(reports: readonly (readonly [string, ExecutionReport])[], style: Style): string {
  // A cost column only when some run is costed (its policy has prices or a cost limit).
  const costed = reports.some(([, r]) => r.cost !== undefined);
  const rows = [['agent', 'status', 'reason', 'steps', 'tokens', ...(costed ? ['cost'] : []), 'tools', 'time']];
  for (const [name, r] of reports) {
    rows.push([
      name,
      r.status === 'SUCCESS' ? style.green(r.status) : style.red(r.status),
      reason(r),
      String(r.totalSteps),
      String(r.tokenUsage.total),
      ...(costed ? [r.cost === undefined ? '-' : formatUsd(r.cost.micros)] : []),
      String(r.toolUsage.total),
      formatMs(r.executionTimeMs),
    ]);
  }
  return table(rows, style);
}
