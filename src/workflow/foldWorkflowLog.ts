import { OaoError, type SerializedError } from '../errors.js';
import type { SkipReason, StoredWorkflowEvent, WorkflowEventOf, WorkflowHaltKind } from '../events/workflowSchema.js';

/** One node as a workflow log tells it. */
export interface FoldedNode {
  readonly name: string;
  readonly needs: readonly string[];
  readonly fanOut: boolean;
  /** `waiting` until NODE_READY, `running` until it settles. */
  status: 'waiting' | 'running' | 'SUCCESS' | 'FAILED' | 'SKIPPED';
  readyLogged: boolean;
  /** From NODE_START (its runs' ids), then NODE_COMPLETE. */
  executionIds: readonly string[] | undefined;
  error: SerializedError | undefined;
  reason: SkipReason | undefined;
  /** The seq of NODE_READY and of the event that settled it, in the log. */
  readySeq: number | undefined;
  settledSeq: number | undefined;
}

/** What a workflow run's stored log says, folded (pure). */
export interface FoldedWorkflow {
  readonly workflowRunId: string;
  readonly workflow: string;
  readonly start: WorkflowEventOf<'WORKFLOW_START'>;
  /** In the definition's topological order, as WORKFLOW_START lists them. */
  readonly nodes: Map<string, FoldedNode>;
  halted: { readonly kind: WorkflowHaltKind; readonly reason: string; readonly node: string | undefined } | undefined;
  complete: WorkflowEventOf<'WORKFLOW_COMPLETE'> | undefined;
  readonly lastTimestamp: number;
  readonly nextSeq: number;
}

/**
 * Folds a workflow run's stored log (its own events, `seq` from 0). A log that does not start with
 * WORKFLOW_START or names a node WORKFLOW_START does not list is `OAO_ERR_LOG_CORRUPT`.
 */
export function foldWorkflowLog(workflowRunId: string, events: readonly StoredWorkflowEvent[]): FoldedWorkflow {
  const first = events[0];
  if (first === undefined || first.type !== 'WORKFLOW_START') {
    throw new OaoError('OAO_ERR_LOG_CORRUPT', `The log of workflow run "${workflowRunId}" does not start with WORKFLOW_START`, { details: { workflowRunId, seq: 0 } });
  }
  const nodes = new Map<string, FoldedNode>();
  for (const node of first.payload.nodes) {
    nodes.set(node.name, {
      name: node.name,
      needs: node.needs,
      fanOut: node.fanOut,
      status: 'waiting',
      readyLogged: false,
      executionIds: undefined,
      error: undefined,
      reason: undefined,
      readySeq: undefined,
      settledSeq: undefined,
    });
  }
  const folded: FoldedWorkflow = {
    workflowRunId,
    workflow: first.workflow,
    start: first,
    nodes,
    halted: undefined,
    complete: undefined,
    lastTimestamp: events[events.length - 1]?.timestamp ?? first.timestamp,
    nextSeq: events.length,
  };
  const nodeOf = (name: string, seq: number): FoldedNode => {
    const node = nodes.get(name);
    if (node === undefined) {
      throw new OaoError('OAO_ERR_LOG_CORRUPT', `Event ${seq} of workflow run "${workflowRunId}" names node "${name}", which its WORKFLOW_START does not list`, {
        details: { workflowRunId, seq },
      });
    }
    return node;
  };
  for (const event of events) {
    switch (event.type) {
      case 'NODE_READY': {
        const node = nodeOf(event.payload.node, event.seq);
        node.status = 'running';
        node.readyLogged = true;
        node.readySeq = event.seq;
        break;
      }
      case 'NODE_START':
        nodeOf(event.payload.node, event.seq).executionIds = event.payload.executionIds;
        break;
      case 'NODE_COMPLETE': {
        const node = nodeOf(event.payload.node, event.seq);
        node.status = event.payload.status;
        node.executionIds = event.payload.executionIds;
        node.error = event.payload.error;
        node.settledSeq = event.seq;
        break;
      }
      case 'NODE_SKIPPED': {
        const node = nodeOf(event.payload.node, event.seq);
        node.status = 'SKIPPED';
        node.reason = event.payload.reason;
        node.settledSeq = event.seq;
        break;
      }
      case 'WORKFLOW_HALTED':
        folded.halted ??= { kind: event.payload.kind, reason: event.payload.reason, node: event.payload.node };
        break;
      case 'WORKFLOW_COMPLETE':
        folded.complete = event;
        break;
      default:
        break;
    }
  }
  return folded;
}
