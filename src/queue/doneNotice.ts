import { executionReportSchema, type ExecutionReport } from '../report/schema.js';

/** The largest report a worker's notice carries; a larger one is read from the store. */
export const MAX_NOTICE_REPORT_CHARS = 32_768;

/**
 * What a worker publishes on a queue's done channel once a run's report is stored: the report
 * itself as JSON (`{ executionId, report }`), so a waiting caller need not read it back from the
 * store, or the bare execution id when the report is large (or the run ended without one in hand).
 */
export function doneNotice(executionId: string, report?: ExecutionReport): string {
  if (report === undefined) return executionId;
  const text = JSON.stringify({ executionId, report });
  return text.length <= MAX_NOTICE_REPORT_CHARS ? text : executionId;
}

/**
 * Reads a done notice: the run's id, and its report when the notice carries one that is a valid
 * report of that run (anything else is treated as a bare id: the waiter reads the store).
 */
export function readDoneNotice(message: string): { readonly executionId: string; readonly report?: ExecutionReport } {
  if (!message.startsWith('{')) return { executionId: message };
  let parsed: { executionId?: unknown; report?: unknown };
  try {
    parsed = JSON.parse(message) as typeof parsed;
  } catch {
    return { executionId: message };
  }
  if (typeof parsed.executionId !== 'string') return { executionId: message };
  const report = executionReportSchema.safeParse(parsed.report);
  return report.success && report.data.executionId === parsed.executionId ? { executionId: parsed.executionId, report: report.data } : { executionId: parsed.executionId };
}
