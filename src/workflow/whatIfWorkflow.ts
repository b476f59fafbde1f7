import type { StrictPolicy } from '../policy/StrictPolicy.js';
import type { PolicyOptions } from '../policy/schema.js';
import { whatIf, type WhatIfRun } from '../log/whatIf.js';
import type { RunStore } from '../store/RunStore.js';
import { foldWorkflowLog, type FoldedNode } from './foldWorkflowLog.js';
import { readWorkflowLog } from './replayWorkflow.js';
import type { WorkflowNodeStatus } from './WorkflowRun.js';

/** The verdict of a policy on one node of a recorded workflow run. */
export interface WorkflowWhatIfNode {
  /** How the node ended in the recorded run (`running`/`waiting` for a run that has not finished). */
  readonly recorded: WorkflowNodeStatus | 'running' | 'waiting';
  /**
   * How it would have ended under the new policy: FAILED when one of its runs would have been
   * stopped, SKIPPED when a node it needs (directly or through others) would have failed (or,
   * under fail-fast, when it became ready after the first such failure), else as recorded.
   */
  readonly wouldEnd: WorkflowNodeStatus | 'running' | 'waiting';
  /** Its runs' verdicts (see `whatIf`), in run order. */
  readonly runs: readonly WhatIfRun[];
  /** For a node that would have been skipped: the node whose stop caused it. */
  readonly skippedBecause?: string;
}

/** What a policy would have changed in a recorded workflow run. */
export interface WorkflowWhatIfResult {
  readonly workflowRunId: string;
  readonly workflow: string;
  /** By node name, in the definition's order. */
  readonly nodes: Readonly<Record<string, WorkflowWhatIfNode>>;
  /** Nodes a run of which the new policy would have stopped (and that did not fail anyway). */
  readonly stopped: readonly string[];
  /** Nodes that ran in the recording and would then have been skipped. */
  readonly skipped: readonly string[];
  /** Whether the workflow would have ended the same way (no node's ending changes). */
  readonly same: boolean;
}

/**
 * Evaluates a policy against a recorded workflow run from the store alone (zero agent, tool and
 * model calls): each node run's log is judged as `whatIf` judges a run, a node with a run that
 * would have been stopped would have FAILED, and the nodes that need it (with the workflow's
 * `onFailure`) would then have been skipped. Typed errors as `orch.replayWorkflow()`.
 */
export async function whatIfWorkflow(store: RunStore | undefined, workflowRunId: string, policy: StrictPolicy | PolicyOptions): Promise<WorkflowWhatIfResult> {
  const read = await readWorkflowLog(store, workflowRunId);
  const folded = foldWorkflowLog(workflowRunId, read.events);
  const ids: string[] = [];
  for (const node of folded.nodes.values()) ids.push(...(node.executionIds ?? []));
  const verdicts = new Map<string, WhatIfRun>();
  if (ids.length > 0) {
    const result = await whatIf({ policy, store: read.store, runs: ids });
    result.runs.forEach((run) => verdicts.set(run.executionId, run));
  }
  const failFast = folded.start.payload.onFailure === 'fail-fast';
  const wouldFail = new Set<string>();
  const stopped: string[] = [];
  // The seq at which the first newly failing node would have failed, for fail-fast.
  let firstStopSeq = Number.POSITIVE_INFINITY;
  let firstStopNode: string | undefined;
  for (const node of folded.nodes.values()) {
    const runs = (node.executionIds ?? []).map((id) => verdicts.get(id)).filter((run): run is WhatIfRun => run !== undefined);
    if (node.status === 'FAILED') wouldFail.add(node.name);
    else if (runs.some((run) => run.wouldStop !== null)) {
      wouldFail.add(node.name);
      stopped.push(node.name);
      const seq = node.settledSeq ?? Number.POSITIVE_INFINITY;
      if (seq < firstStopSeq) {
        firstStopSeq = seq;
        firstStopNode = node.name;
      }
    }
  }
  const nodes: Record<string, WorkflowWhatIfNode> = {};
  const skipped: string[] = [];
  const blockedBy = new Map<string, string>();
  // Nodes come in topological order: a node's needs are judged before it.
  for (const node of folded.nodes.values()) {
    const runs = (node.executionIds ?? []).map((id) => verdicts.get(id)).filter((run): run is WhatIfRun => run !== undefined);
    const cause = causeOfSkip(node, wouldFail, blockedBy, failFast, firstStopSeq, firstStopNode);
    let wouldEnd: WorkflowWhatIfNode['wouldEnd'] = node.status;
    if (cause !== undefined && node.status !== 'SKIPPED') {
      wouldEnd = 'SKIPPED';
      blockedBy.set(node.name, cause);
      if (node.executionIds !== undefined) skipped.push(node.name);
    } else if (stopped.includes(node.name)) {
      wouldEnd = 'FAILED';
    }
    nodes[node.name] = { recorded: node.status, wouldEnd, runs, ...(wouldEnd === 'SKIPPED' && cause !== undefined ? { skippedBecause: cause } : {}) };
  }
  const same = Object.values(nodes).every((node) => node.recorded === node.wouldEnd);
  return { workflowRunId, workflow: folded.workflow, nodes, stopped, skipped, same };
}

function causeOfSkip(
  node: FoldedNode,
  wouldFail: ReadonlySet<string>,
  blockedBy: ReadonlyMap<string, string>,
  failFast: boolean,
  firstStopSeq: number,
  firstStopNode: string | undefined,
): string | undefined {
  for (const need of node.needs) {
    if (blockedBy.has(need)) return blockedBy.get(need);
    if (wouldFail.has(need)) return need;
  }
  if (failFast && firstStopNode !== undefined && node.name !== firstStopNode && (node.readySeq ?? Number.POSITIVE_INFINITY) > firstStopSeq) return firstStopNode;
  return undefined;
}
