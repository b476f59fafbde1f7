import { MultiAgentOrchestrator, Orchestrator, defineWorkflow, type AgentLike } from 'open-agent-orchestrator';
import { DummyAgent, TASK } from '../baselines.js';
import { summarize, type BenchRatio, type BenchRow, type CustomCase } from '../harness.js';

/**
 * Workflows: the scheduling cost per node of a workflow (independent no-op nodes through the
 * workflow machine, its node actors and the ready queue) against the same runs started by hand
 * under the same concurrency (a supervisor batch, and a plain loop of orch.run with at most that
 * many in flight); and the time to validate and run a random 1,000-node DAG of no-op nodes.
 */

const agent = new DummyAgent();
const CONCURRENCY = 16;

/** Random DAG: each node needs up to three earlier nodes (a fixed seed, so every run is the same). */
function randomDag(size: number, agentLike: AgentLike) {
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const nodes: Record<string, { agent: AgentLike; needs: string[]; task: () => string }> = {};
  for (let i = 0; i < size; i++) {
    const needs = new Set<string>();
    for (let k = 0; k < 3 && i > 0; k++) if (random() < 0.7) needs.add(`n${Math.floor(random() * i)}`);
    nodes[`n${i}`] = { agent: agentLike, needs: [...needs], task: () => TASK };
  }
  return nodes;
}

interface Variant {
  readonly id: string;
  readonly label: string;
  readonly description: string;
  /** Runs `size` no-op runs; resolves with how many succeeded. */
  run(size: number): Promise<number>;
}

// No store: the rows compare scheduling, not event logging (the default memory store records every run).
const orch = new Orchestrator({ store: false });

const workflowVariant: Variant = {
  id: 'workflow.nodes',
  label: `workflow: independent nodes, c=${CONCURRENCY}`,
  description: `defineWorkflow of N independent no-op nodes, run with maxConcurrency ${CONCURRENCY} (definition included).`,
  run: async (size) => {
    const nodes: Record<string, { agent: AgentLike; task: () => string }> = {};
    for (let i = 0; i < size; i++) nodes[`n${i}`] = { agent, task: () => TASK };
    const result = await orch.runWorkflow(defineWorkflow({ id: 'flat', nodes }), null, { maxConcurrency: CONCURRENCY });
    return result.counts.succeeded;
  },
};

const supervisedVariant: Variant = {
  id: 'workflow.supervised',
  label: `reference: supervisor batch, c=${CONCURRENCY}`,
  description: `The same N runs through MultiAgentOrchestrator.map with maxConcurrency ${CONCURRENCY}.`,
  run: async (size) => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: CONCURRENCY });
    const reports = await multi.map(agent, Array.from({ length: size }, () => TASK));
    return reports.filter((r) => r.status === 'SUCCESS').length;
  },
};

const byHandVariant: Variant = {
  id: 'workflow.byhand',
  label: `reference: orch.run by hand, c=${CONCURRENCY}`,
  description: `The same N runs through orch.run, at most ${CONCURRENCY} in flight (a hand-written pool).`,
  run: async (size) => {
    let next = 0;
    let ok = 0;
    const worker = async () => {
      while (next < size) {
        next += 1;
        if ((await orch.run({ agent, task: TASK })).status === 'SUCCESS') ok += 1;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return ok;
  },
};

export const workflowCase: CustomCase = {
  kind: 'custom',
  id: 'workflow',
  group: 'workflow',
  label: 'workflow scheduling overhead and a 1,000-node DAG',
  async run(env) {
    const size = env.quick ? 1_000 : 5_000;
    const repetitions = env.quick ? 3 : 7;
    const variants = [workflowVariant, supervisedVariant, byHandVariant];
    for (const variant of variants) await variant.run(500);
    const samples = new Map<string, number[]>(variants.map((v) => [v.id, []]));
    for (let rep = 0; rep < repetitions; rep++) {
      env.log(`workflow repetition ${rep + 1}/${repetitions} (${size} runs per variant)`);
      for (let k = 0; k < variants.length; k++) {
        const variant = variants[(k + rep) % variants.length] as Variant;
        const started = performance.now();
        const ok = await variant.run(size);
        const elapsed = performance.now() - started;
        if (ok !== size) throw new Error(`bench: ${variant.id} finished ${ok} of ${size} runs`);
        samples.get(variant.id)?.push((elapsed * 1e6) / size);
      }
    }
    const rows: BenchRow[] = variants.map((variant) => {
      const values = samples.get(variant.id) ?? [];
      return { id: variant.id, group: 'workflow', label: variant.label, description: variant.description, kind: 'time', unit: 'ns/op', ...summarize(values), samples: values, size };
    });
    const dag: number[] = [];
    const validate: number[] = [];
    for (let rep = 0; rep < repetitions; rep++) {
      const nodes = randomDag(1_000, agent);
      const started = performance.now();
      const wf = defineWorkflow({ id: 'dag', nodes });
      const defined = performance.now();
      const result = await orch.runWorkflow(wf, null, { maxConcurrency: CONCURRENCY });
      const finished = performance.now();
      if (result.counts.succeeded !== 1_000) throw new Error(`bench: the DAG finished ${result.counts.succeeded} of 1000 nodes`);
      validate.push((defined - started) * 1e6);
      dag.push((finished - started) * 1e6);
    }
    rows.push(
      {
        id: 'workflow.dag1000.validate',
        group: 'workflow',
        label: 'validate a random 1,000-node DAG',
        description: 'defineWorkflow of 1,000 nodes, each needing up to three earlier ones.',
        kind: 'time',
        unit: 'ns/op',
        ...summarize(validate),
        samples: validate,
        size: 1,
      },
      {
        id: 'workflow.dag1000',
        group: 'workflow',
        label: 'validate + schedule a random 1,000-node DAG',
        description: `defineWorkflow and runWorkflow (maxConcurrency ${CONCURRENCY}) of 1,000 no-op nodes, each needing up to three earlier ones. Goal: under 1 s.`,
        kind: 'time',
        unit: 'ns/op',
        ...summarize(dag),
        samples: dag,
        size: 1,
      },
    );
    return rows;
  },
};

/** Per-node cost: workflow over supervised runs (goal: at most 1.3) and over runs started by hand. */
export const workflowRatios: readonly BenchRatio[] = [
  { id: 'workflow/supervised', label: 'workflow node / supervised run (ns per run)', numerator: 'workflow.nodes', denominator: 'workflow.supervised', target: 1.3 },
  { id: 'workflow/byhand', label: 'workflow node / orch.run by hand (ns per run)', numerator: 'workflow.nodes', denominator: 'workflow.byhand' },
];
