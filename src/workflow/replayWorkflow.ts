import { OaoError } from '../errors.js';
import type { StoredWorkflowEvent } from '../events/workflowSchema.js';
import { replayLog } from '../log/replayLog.js';
import type { ExecutionReport } from '../report/schema.js';
import type { RunStore } from '../store/RunStore.js';
import { foldWorkflowLog, type FoldedWorkflow } from './foldWorkflowLog.js';
import { holdsWorkflowLogs, type WorkflowLogStore } from './WorkflowLog.js';
import type { WorkflowNodeResult, WorkflowResult } from './WorkflowRun.js';

/** The store's log of a workflow run; typed errors for a store without workflow logs and an unknown id. */
export async function readWorkflowLog(store: RunStore | undefined, workflowRunId: unknown): Promise<{ store: WorkflowLogStore; events: readonly StoredWorkflowEvent[] }> {
  if (typeof workflowRunId !== 'string' || workflowRunId.length === 0) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', 'Expected a workflow run id (a non-empty string)', { details: { field: 'workflowRunId' } });
  }
  if (!holdsWorkflowLogs(store)) {
    throw new OaoError(
      'OAO_ERR_INVALID_ARGUMENT',
      store === undefined
        ? 'Durable workflows need a store: this orchestrator was created with store: false'
        : 'This store keeps no workflow logs (it has no appendWorkflow/workflowEvents): use createMemoryStore, createSqliteStore or createPostgresStore',
      { details: { field: 'store' } },
    );
  }
  const events = await store.workflowEvents(workflowRunId);
  if (events.length === 0) throw new OaoError('OAO_ERR_RUN_NOT_FOUND', `The store has no workflow run "${workflowRunId}"`, { details: { workflowRunId } });
  return { store, events };
}

/**
 * Rebuilds a finished workflow run's result from the store alone, with zero agent, tool and model
 * calls: the workflow's log gives each node's status, skip reason and error, and each node run's
 * report is rebuilt from the run's own log (`replayLog`). The result equals the one the run
 * returned (same canonical JSON). A workflow whose log has not reached WORKFLOW_COMPLETE is
 * `OAO_ERR_INVALID_ARGUMENT` (resume it instead); damaged logs are `OAO_ERR_LOG_CORRUPT`.
 */
export async function replayWorkflow(store: RunStore | undefined, workflowRunId: string): Promise<WorkflowResult> {
  const read = await readWorkflowLog(store, workflowRunId);
  const folded = foldWorkflowLog(workflowRunId, read.events);
  if (folded.complete === undefined) {
    const last = read.events[read.events.length - 1] as StoredWorkflowEvent;
    throw new OaoError(
      'OAO_ERR_INVALID_ARGUMENT',
      `The log of workflow run "${workflowRunId}" ends at seq ${last.seq} (${last.type}), before WORKFLOW_COMPLETE: the workflow has not finished (resume it with orch.resumeWorkflow())`,
      { details: { field: 'workflowRunId', workflowRunId, seq: last.seq } },
    );
  }
  const reports = new Map<string, ExecutionReport>();
  for (const node of folded.nodes.values()) {
    for (const id of node.executionIds ?? []) reports.set(id, replayLog(await read.store.events(id)));
  }
  return workflowResultOf(folded, reports);
}

/** The result a finished workflow run returned, from its folded log and its node runs' reports (pure). */
export function workflowResultOf(folded: FoldedWorkflow, reports: ReadonlyMap<string, ExecutionReport>): WorkflowResult {
  const complete = folded.complete;
  if (complete === undefined) throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Workflow run "${folded.workflowRunId}" has not finished`, { details: { field: 'workflowRunId' } });
  const nodes: Record<string, WorkflowNodeResult> = {};
  const byTool: Record<string, number> = {};
  let toolTotal = 0;
  for (const node of folded.nodes.values()) {
    const status = node.status === 'SUCCESS' || node.status === 'FAILED' || node.status === 'SKIPPED' ? node.status : 'SKIPPED';
    const nodeReports: ExecutionReport[] = [];
    for (const id of node.executionIds ?? []) {
      const report = reports.get(id);
      if (report === undefined) continue;
      nodeReports.push(report);
      toolTotal += report.toolUsage.total;
      for (const [tool, calls] of Object.entries(report.toolUsage.byTool)) byTool[tool] = (byTool[tool] ?? 0) + calls;
    }
    const reason = status === 'SKIPPED' ? (node.reason ?? { kind: 'cancelled' as const, message: 'The workflow ended before the node could run' }) : undefined;
    nodes[node.name] = {
      status,
      ...(node.fanOut ? (status === 'SKIPPED' ? {} : { reports: nodeReports }) : nodeReports[0] === undefined ? {} : { report: nodeReports[0] }),
      ...(reason === undefined ? {} : { reason }),
      ...(node.error === undefined ? {} : { error: node.error }),
    };
  }
  return {
    workflow: folded.workflow,
    workflowRunId: folded.workflowRunId,
    workflowHash: folded.start.payload.workflowHash,
    status: complete.payload.status,
    nodes,
    halted: folded.halted === undefined ? null : { kind: folded.halted.kind, reason: folded.halted.reason },
    counts: complete.payload.counts,
    tokenUsage: complete.payload.tokenUsage,
    toolUsage: { total: toolTotal, byTool },
    executionTimeMs: complete.payload.executionTimeMs,
    startedAt: new Date(folded.start.timestamp).toISOString(),
    finishedAt: new Date(complete.timestamp).toISOString(),
  };
}
