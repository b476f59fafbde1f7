import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalJson, OaoError, Orchestrator, type WorkflowResult } from '../src/index.js';
import { createSqliteStore, type SqliteRunStore } from '../src/store/sqlite/index.js';
import { countedCalls, durableWorkflow } from './fixtures/durableWorkflow.js';

/**
 * A workflow whose process is killed with SIGKILL mid-workflow (its slow node in flight, with its
 * usage charged), resumed by another process from the SQLite file the dead one wrote.
 */

const dir = mkdtempSync(join(tmpdir(), 'oao-workflow-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the child, waits until `ready()` holds for the store it writes, then kills it with SIGKILL. */
async function crashChild(path: string, workflowRunId: string, countFile: string, store: SqliteRunStore, ready: () => boolean): Promise<void> {
  const child = spawn(process.execPath, ['--conditions=oao-source', '--import', 'tsx', 'test/fixtures/durableWorkflowChild.ts', path, workflowRunId, countFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let alive = true;
  void exited.then(() => (alive = false));
  try {
    for (;;) {
      if (!alive) throw new Error('the child exited before it reached the point to be killed at');
      if (ready()) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Resumes once the dead child's leases on its node runs have expired (their time to live is 300 ms). */
async function resumeWhenFree(orch: Orchestrator, workflowRunId: string, countFile: string): Promise<WorkflowResult> {
  for (;;) {
    try {
      return await orch.resumeWorkflow(workflowRunId, durableWorkflow(countFile));
    } catch (error) {
      if (!(OaoError.isInstance(error) && error.code === 'OAO_ERR_LEASE_HELD')) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const statuses = (result: WorkflowResult) => Object.fromEntries(Object.entries(result.nodes).map(([name, node]) => [name, node.status]));

describe('a workflow killed with SIGKILL is resumed by another process', () => {
  it('SQLite: completed nodes are not run again, the node in flight resumes, and the result is what an uninterrupted run gives', { timeout: 60_000 }, async () => {
    const path = join(dir, 'workflow.db');
    const countFile = join(dir, 'calls.txt');
    const store = createSqliteStore({ path });
    try {
      // Killed once the slow node's usage is durable in its own log.
      await crashChild(path, 'wf-killed', countFile, store, () =>
        store.events('wf-killed:slow').some((event) => event.type === 'TOKEN_USAGE'),
      );
      expect(countedCalls(countFile).sort()).toEqual(['fetch', 'side', 'slow']);
      const before = store.workflowEvents!('wf-killed');
      expect(before.at(-1)?.type).not.toBe('WORKFLOW_COMPLETE');
      expect(store.report('wf-killed:fetch')?.status).toBe('SUCCESS');
      expect(store.report('wf-killed:slow')).toBeUndefined();

      const orch = new Orchestrator({ store, owner: 'heir', leaseTtlMs: 5_000 });
      const resumed = await resumeWhenFree(orch, 'wf-killed', countFile);
      // Across both processes, fetch and side ran once; slow's step ran again after the kill; write ran once.
      expect(countedCalls(countFile).sort()).toEqual(['fetch', 'side', 'slow', 'slow', 'write']);
      expect(resumed.status).toBe('SUCCESS');
      expect(resumed.nodes.write?.report?.finalOutput).toBe('report: facts about tides, summarized');
      // Usage charged before the kill is counted once.
      expect(resumed.nodes.slow?.report?.tokenUsage.total).toBe(30);
      expect(store.events('wf-killed:slow').filter((event) => event.type === 'EXECUTION_RESUMED')).toHaveLength(1);

      // The stored log goes on from where the dead process left it.
      const after = store.workflowEvents!('wf-killed');
      expect(after.slice(0, before.length)).toEqual(before);
      expect(after[before.length]?.type).toBe('WORKFLOW_RESUMED');
      expect(canonicalJson((await orch.replayWorkflow('wf-killed')) as never)).toBe(canonicalJson(resumed as never));

      const straightCalls = join(dir, 'straight.txt');
      const straight = await new Orchestrator({ store: false }).runWorkflow(durableWorkflow(straightCalls), { topic: 'tides' }, { budget: { maxSteps: 20 } });
      expect(statuses(resumed)).toEqual(statuses(straight));
      expect(resumed.counts).toEqual(straight.counts);
      expect(resumed.tokenUsage).toEqual(straight.tokenUsage);
      expect(resumed.workflowHash).toBe(straight.workflowHash);
    } finally {
      store.close();
    }
  });
});
