import { OaoError } from '../errors.js';
import { positiveIntegerOption, typeOf } from '../options.js';
import { resumePoint } from '../log/resumePoint.js';
import { StrictPolicy } from '../policy/StrictPolicy.js';
import type { OrchestratorInternals } from '../runtime/orchestratorInternals.js';
import type { Lease } from '../store/RunStore.js';
import { isWorkflow, type Workflow } from './defineWorkflow.js';
import { foldWorkflowLog, type FoldedNode } from './foldWorkflowLog.js';
import { readWorkflowLog, replayWorkflow } from './replayWorkflow.js';
import { launchWorkflow, workflowHash, type WorkflowHandle } from './startWorkflow.js';
import { nodeRunId, WorkflowRun, type RecoveredNode, type RecoveredRun, type RecoveredWorkflow, type WorkflowResult } from './WorkflowRun.js';
import type { WorkflowLogStore } from './WorkflowLog.js';

/** Options of `orch.resumeWorkflow()`. */
export interface ResumeWorkflowOptions {
  /** @default the recorded `maxConcurrency` */
  readonly maxConcurrency?: number;
  /** Aborting it cancels the resumed workflow. */
  readonly signal?: AbortSignal;
}

/** What a resume found: the workflow had finished (its result, from the store), or the handle of the run going on. */
export type ResumedWorkflow = { readonly finished: WorkflowResult } | { readonly handle: WorkflowHandle; readonly start: () => void };

/**
 * Continues a workflow run cut short (its process died) from the store: the definition supplies
 * the agents and tools, the log everything else (input, policy, shared budget, what each node did).
 * Nodes the log had settled are not run again (their reports come from their runs' logs); node
 * runs cut short go on from their own logs as `orch.resume()` continues a run (leased first:
 * `OAO_ERR_LEASE_HELD` while another owner's lease on one is live); nodes never started are
 * scheduled as usual. The shared budget goes on from what the node runs had spent.
 *
 * Typed errors: `OAO_ERR_RUN_NOT_FOUND` (no such workflow run), `OAO_ERR_WORKFLOW_MISMATCH` (the
 * definition's shape or the recorded policy give another workflow hash than the log recorded),
 * `OAO_ERR_INVALID_ARGUMENT` (no store, bad options), `OAO_ERR_LEASE_HELD`.
 */
export async function resumeWorkflow(
  internals: OrchestratorInternals,
  workflowRunId: string,
  workflow: Workflow,
  options: ResumeWorkflowOptions = {},
): Promise<ResumedWorkflow> {
  if (!isWorkflow(workflow)) {
    throw new OaoError('OAO_ERR_INVALID_WORKFLOW', `Expected a workflow made by defineWorkflow(), got ${typeOf(workflow)}`, {
      details: { problem: 'invalid_definition', field: 'workflow' },
    });
  }
  if (typeof options !== 'object' || options === null) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `Expected the resume options to be an object, got ${typeOf(options)}`, { details: { field: 'options' } });
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new OaoError('OAO_ERR_INVALID_ARGUMENT', `"signal" must be an AbortSignal, got ${typeOf(options.signal)}`, { details: { field: 'signal' } });
  }
  const { store, events } = await readWorkflowLog(internals.store, workflowRunId);
  const folded = foldWorkflowLog(workflowRunId, events);
  const start = folded.start.payload;
  const policy = StrictPolicy.fromLimits(start.policy, internals.policy.approvalPredicate);
  const budget = start.budget ?? undefined;
  const hash = workflowHash(workflow, policy, budget, start.onFailure);
  if (folded.workflow !== workflow.id || hash !== start.workflowHash) {
    throw new OaoError(
      'OAO_ERR_WORKFLOW_MISMATCH',
      `Workflow run "${workflowRunId}" was recorded for ${folded.workflow === workflow.id ? 'another shape of' : `workflow "${folded.workflow}", not`} workflow "${workflow.id}": resume it with the definition it ran with`,
      { details: { workflowRunId, recorded: start.workflowHash, given: hash, workflow: folded.workflow } },
    );
  }
  if (folded.complete !== undefined) return { finished: await replayWorkflow(store, workflowRunId) };
  const maxConcurrency = positiveIntegerOption(options.maxConcurrency ?? start.maxConcurrency, 'maxConcurrency');
  const owner = internals.ownership?.owner ?? null;
  const leases: Lease[] = [];
  let recovered: RecoveredWorkflow;
  try {
    const nodes = new Map<string, RecoveredNode>();
    const runs = new Map<string, RecoveredRun>();
    for (const node of folded.nodes.values()) {
      if (node.status === 'SKIPPED') {
        nodes.set(node.name, { status: 'SKIPPED', reason: node.reason as NonNullable<FoldedNode['reason']> });
        continue;
      }
      if (node.status === 'SUCCESS' || node.status === 'FAILED') {
        const ids = node.executionIds ?? [];
        let complete = true;
        for (const id of ids) {
          const report = await store.report(id);
          if (report === undefined) complete = false;
          else runs.set(id, { report });
        }
        if (complete) {
          nodes.set(node.name, { status: node.status, error: node.error, executionIds: ids });
          continue;
        }
        // The node's settling was logged before one of its runs' last events was durable: that
        // run goes on from its log, and the node settles again.
      }
      const found = await recoverRuns(store, workflowRunId, node, owner ?? '', internals.ownership?.ttlMs ?? 10_000, runs, leases);
      if (node.status !== 'waiting' || found) nodes.set(node.name, { status: 'running', readyLogged: node.readyLogged, announced: node.executionIds !== undefined });
    }
    recovered = { nextSeq: folded.nextSeq, startedAt: folded.start.timestamp, lastTimestamp: folded.lastTimestamp, owner, halted: folded.halted, nodes, runs };
  } catch (error) {
    await releaseAll(store, leases);
    throw error;
  }
  const run = new WorkflowRun({
    workflow,
    workflowRunId,
    workflowHash: start.workflowHash,
    input: start.input === undefined ? null : start.input,
    internals,
    policy,
    maxConcurrency,
    onFailure: start.onFailure,
    budget,
    recovered,
  });
  const { handle, start: startRun } = launchWorkflow(internals, workflow, run, options.signal);
  return { handle, start: startRun };
}

/**
 * Finds the node's runs in the store (the ids NODE_START logged, else the derived ones, probed in
 * order: runs start in index order) and records each: finished (its report) or cut short (leased,
 * with where it goes on). Returns whether any was found.
 */
async function recoverRuns(
  store: WorkflowLogStore,
  workflowRunId: string,
  node: FoldedNode,
  owner: string,
  ttlMs: number,
  runs: Map<string, RecoveredRun>,
  leases: Lease[],
): Promise<boolean> {
  const logged = node.executionIds;
  let found = false;
  for (let index = 0; ; index++) {
    let id: string;
    if (logged !== undefined) {
      if (index >= logged.length) break;
      id = logged[index] as string;
    } else {
      if (!node.fanOut && index > 0) break;
      id = nodeRunId(workflowRunId, node.name, node.fanOut ? index : null);
    }
    if (runs.has(id)) {
      found = true;
      continue;
    }
    const stored = await store.get(id);
    if (stored === undefined) {
      if (logged === undefined) break;
      continue;
    }
    found = true;
    const report = await store.report(id);
    if (report !== undefined) {
      runs.set(id, { report });
      continue;
    }
    const lease = await store.acquireLease(id, owner, ttlMs);
    if (lease === undefined) {
      throw new OaoError('OAO_ERR_LEASE_HELD', `Run "${id}" of workflow run "${workflowRunId}" is held by another owner whose lease is still live`, {
        details: { executionId: id, workflowRunId },
      });
    }
    leases.push(lease);
    const events = await store.events(id);
    const last = events[events.length - 1];
    if (last?.type === 'EXECUTION_COMPLETE') {
      runs.set(id, { report: last.payload.report });
      await store.releaseLease(lease);
      continue;
    }
    runs.set(id, { point: resumePoint(events), lease });
  }
  return found;
}

async function releaseAll(store: WorkflowLogStore, leases: readonly Lease[]): Promise<void> {
  for (const lease of leases) await Promise.resolve(store.releaseLease(lease)).catch(() => {});
}
