import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Orchestrator, defineWorkflow } from 'open-agent-orchestrator';
import { createSqliteStore } from 'open-agent-orchestrator/sqlite';
import { DummyAgent, TASK } from '../baselines.js';
import { summarize, type BenchRatio, type BenchRow, type CustomCase } from '../harness.js';

/**
 * Durable workflows on SQLite (a temp file, WAL, synchronous NORMAL): what the workflow's own log
 * adds to its node runs' logs, and what rebuilding a result from the store costs.
 *
 * - `workflowDurable.run`: a four-node pipeline (a -> b -> c -> d) of no-op nodes through
 *   `runWorkflow`, recorded in the store (four run logs and the workflow log).
 * - `workflowDurable.byhand`: the same four runs through `orch.run`, one after another, recorded in
 *   the same store: the baseline.
 * - `workflowDurable.replay`: `replayWorkflow` of one of those workflow runs (read the workflow log,
 *   replay the four run logs), against `workflowDurable.replayRuns`, `orch.replay` of four runs.
 */

const agent = new DummyAgent();
const pipeline = defineWorkflow({
  id: 'pipeline',
  nodes: {
    a: { agent, task: () => TASK },
    b: { agent, needs: ['a'], task: () => TASK },
    c: { agent, needs: ['b'], task: () => TASK },
    d: { agent, needs: ['c'], task: () => TASK },
  },
});

function row(id: string, label: string, description: string, samples: readonly number[]): BenchRow {
  return { id, group: 'workflowDurable', label, description, kind: 'time', unit: 'ns/op', samples, size: 1, ...summarize(samples) };
}

export const workflowDurableCase: CustomCase = {
  kind: 'custom',
  id: 'workflowDurable',
  group: 'workflowDurable',
  label: 'durable workflows on SQLite',
  async run(env) {
    const dir = mkdtempSync(join(tmpdir(), 'oao-bench-workflow-'));
    const store = createSqliteStore({ path: join(dir, 'workflows.db') });
    try {
      const orch = new Orchestrator({ store });
      const count = env.quick ? 100 : 400;
      const run: number[] = [];
      const byHand: number[] = [];
      const replay: number[] = [];
      const replayRuns: number[] = [];
      const workflowIds: string[] = [];
      const runIds: string[][] = [];
      for (let i = 0; i < 20; i++) await orch.runWorkflow(pipeline, null, { workflowRunId: `warm-${i}` });
      for (let i = 0; i < count; i++) {
        // Interleaved, so that load on the machine falls on both alike.
        let started = performance.now();
        const result = await orch.runWorkflow(pipeline, null, { workflowRunId: `wf-${i}` });
        run.push((performance.now() - started) * 1e6);
        if (result.status !== 'SUCCESS') throw new Error('bench: the durable workflow failed');
        workflowIds.push(result.workflowRunId);
        started = performance.now();
        const ids: string[] = [];
        for (let n = 0; n < 4; n++) ids.push((await orch.run({ agent, task: TASK })).executionId);
        byHand.push((performance.now() - started) * 1e6);
        runIds.push(ids);
      }
      for (let i = 0; i < count; i++) {
        let started = performance.now();
        await orch.replayWorkflow(workflowIds[i] as string);
        replay.push((performance.now() - started) * 1e6);
        started = performance.now();
        for (const id of runIds[i] as string[]) await orch.replay(id);
        replayRuns.push((performance.now() - started) * 1e6);
      }
      env.log(`workflowDurable: ${count} workflows of four nodes`);
      return [
        row('workflowDurable.run', 'durable workflow, 4 nodes in a chain (SQLite)', 'runWorkflow of a -> b -> c -> d no-op nodes, every log in a SQLite store.', run),
        row('workflowDurable.byhand', 'reference: 4 orch.run one after another (SQLite)', 'The same four runs through orch.run, recorded in the same store.', byHand),
        row('workflowDurable.replay', 'replayWorkflow of a 4-node workflow (SQLite)', 'The result rebuilt from the workflow log and the four run logs.', replay),
        row('workflowDurable.replayRuns', 'reference: orch.replay of 4 runs (SQLite)', 'The four reports rebuilt from their logs.', replayRuns),
      ];
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** What the workflow (its log, its node actors and scheduling) adds to four durable runs. */
export const workflowDurableRatios: readonly BenchRatio[] = [
  { id: 'workflowDurable/byhand', label: 'durable 4-node workflow / 4 durable runs by hand', numerator: 'workflowDurable.run', denominator: 'workflowDurable.byhand', target: 1.5 },
  { id: 'workflowDurable/replay', label: 'replayWorkflow / replay of its 4 runs', numerator: 'workflowDurable.replay', denominator: 'workflowDurable.replayRuns', target: 1.6 },
];
