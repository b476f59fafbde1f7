import { appendFileSync } from 'node:fs';
import { OaoError } from '../errors.js';
import type { OaoEvent } from '../events/schema.js';
import { typeOf } from '../options.js';
import { definePlugin, type Plugin } from './definePlugin.js';

export interface AuditSinkOptions {
  /** The JSON Lines file every decision is appended to (created when missing). */
  readonly path: string;
  /** @default 'audit-sink' */
  readonly name?: string;
}

/** One line of the audit file. */
export interface AuditRecord {
  readonly at: string;
  readonly executionId: string;
  readonly seq: number;
  readonly decision: 'run_started' | 'tool_allowed' | 'tool_denied' | 'model_call_allowed' | 'violation' | 'approval_requested' | 'approval_granted' | 'approval_denied' | 'budget_exhausted' | 'budget_raised' | 'run_finished';
  readonly tool?: string;
  readonly model?: string | null;
  readonly rule?: string;
  readonly message?: string;
  readonly by?: string | null;
  readonly status?: string;
  readonly reason?: string;
  readonly agentName?: string;
}

/** The governance decision an event records, if it records one. */
export function auditRecordOf(event: OaoEvent): AuditRecord | null {
  const base = { at: new Date(event.timestamp).toISOString(), executionId: event.executionId, seq: event.seq };
  switch (event.type) {
    case 'EXECUTION_START':
      return { ...base, decision: 'run_started', agentName: event.payload.agentName };
    case 'TOOL_CALL':
      return { ...base, decision: 'tool_allowed', tool: event.payload.tool };
    case 'TOOL_DENIED':
      return { ...base, decision: 'tool_denied', tool: event.payload.tool, rule: event.payload.rule, message: event.payload.message };
    case 'MODEL_CALL':
      return { ...base, decision: 'model_call_allowed', model: event.payload.model };
    case 'POLICY_VIOLATION':
      return { ...base, decision: 'violation', rule: event.payload.rule, message: event.payload.message };
    case 'APPROVAL_REQUESTED':
      return { ...base, decision: 'approval_requested', tool: event.payload.tool };
    case 'APPROVAL_GRANTED':
      return { ...base, decision: 'approval_granted', tool: event.payload.tool, by: event.payload.by };
    case 'APPROVAL_DENIED':
      return { ...base, decision: 'approval_denied', tool: event.payload.tool, by: event.payload.by };
    case 'BUDGET_EXHAUSTED':
      return { ...base, decision: 'budget_exhausted', rule: event.payload.rule };
    case 'BUDGET_RAISED':
      return { ...base, decision: 'budget_raised', by: event.payload.by };
    case 'EXECUTION_COMPLETE':
      return { ...base, decision: 'run_finished', status: event.payload.report.status, reason: event.payload.report.termination.reason };
    default:
      return null;
  }
}

/**
 * A plugin that appends every governance decision (a run started, a tool call allowed or denied,
 * a model call allowed, a violation, an approval asked for and given, a budget spent and raised,
 * a run's end) to a JSON Lines file, one line per decision, written before the event reaches
 * later hooks. A write that fails is reported like any failing hook (`onHookError`); the run goes on.
 *
 * @example
 * ```ts
 * import { Orchestrator } from 'open-agent-orchestrator';
 * import { auditSink } from 'open-agent-orchestrator/plugins';
 * const orch = new Orchestrator({ plugins: [auditSink({ path: 'audit.jsonl' })] });
 * ```
 */
export function auditSink(options: AuditSinkOptions): Plugin {
  const path = (options as Partial<AuditSinkOptions> | undefined)?.path;
  if (typeof path !== 'string' || path.length === 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected "path" to be a file path, got ${typeOf(path)}`, { details: { field: 'path' } });
  }
  return definePlugin({
    name: options.name ?? 'audit-sink',
    version: '1.0.0',
    onEvent: (event) => {
      const record = auditRecordOf(event);
      if (record !== null) appendFileSync(path, `${JSON.stringify(record)}\n`);
    },
  });
}
