import { MultiAgentOrchestrator, Orchestrator } from 'open-agent-orchestrator';
import { DummyAgent, TASK } from '../baselines.js';
import { createGate, heapUsed, nextTurn, summarize, type BenchEnv, type BenchRatio, type BenchRow, type CustomCase } from '../harness.js';

/**
 * The supervisor: throughput of many trivial jobs at several concurrency limits, against the same
 * runs awaited one by one through Orchestrator.run (the reference), and the heap of one live run
 * when 10,000 of them are live under one supervisor.
 */

const agent = new DummyAgent();

interface Variant {
  readonly id: string;
  readonly label: string;
  readonly description: string;
  run(tasks: readonly string[]): Promise<number>;
}

function supervised(maxConcurrency: number): Variant {
  const multi = new MultiAgentOrchestrator({ maxConcurrency });
  return {
    id: `supervisor.c${maxConcurrency}`,
    label: `supervisor, maxConcurrency ${maxConcurrency}`,
    description: `multi.map(agent, tasks) with maxConcurrency ${maxConcurrency}: every job a run actor under the supervisor.`,
    run: async (tasks) => (await multi.map(agent, tasks)).filter((r) => r.status === 'SUCCESS').length,
  };
}

const sequential: Variant = {
  id: 'supervisor.sequential',
  label: 'reference: orch.run() one by one',
  description: 'The same jobs awaited one after the other through one Orchestrator.',
  run: async (tasks) => {
    const orch = new Orchestrator();
    let ok = 0;
    for (const task of tasks) if ((await orch.run({ agent, task })).status === 'SUCCESS') ok += 1;
    return ok;
  },
};

async function liveHeapPerRun(count: number, env: BenchEnv): Promise<number> {
  const gate = createGate();
  const waiting = { invoke: (task: string) => gate.promise.then(() => ({ output: task })) };
  const multi = new MultiAgentOrchestrator({ maxConcurrency: count });
  const tasks = Array.from({ length: count }, (_, i) => `${TASK} ${i}`);
  env.gc();
  await nextTurn();
  env.gc();
  const before = heapUsed();
  const handle = multi.submit(tasks.map((task) => ({ agent: waiting, task })));
  await nextTurn();
  await nextTurn();
  env.gc();
  const after = heapUsed();
  const live = handle.progress().running;
  gate.open();
  const reports = await handle.reports;
  if (live !== count || reports.some((r) => r.status !== 'SUCCESS')) {
    throw new Error(`bench: expected ${count} live runs that all succeed, saw ${live} live`);
  }
  return (after - before) / count;
}

export const supervisorCase: CustomCase = {
  kind: 'custom',
  id: 'supervisor',
  group: 'supervisor',
  label: 'supervisor throughput and heap',
  async run(env) {
    const jobs = env.quick ? 2_000 : 10_000;
    const repetitions = env.quick ? 1 : 3;
    const tasks = Array.from({ length: jobs }, (_, i) => `${TASK} ${i}`);
    const variants = [sequential, supervised(1), supervised(100), supervised(1000)];
    for (const variant of variants) await variant.run(tasks.slice(0, 500));
    const samples = new Map<string, number[]>(variants.map((v) => [v.id, []]));
    for (let rep = 0; rep < repetitions; rep++) {
      env.log(`supervisor repetition ${rep + 1}/${repetitions} (${jobs} jobs per variant)`);
      for (let k = 0; k < variants.length; k++) {
        const variant = variants[(k + rep) % variants.length] as Variant;
        const started = performance.now();
        const ok = await variant.run(tasks);
        const seconds = (performance.now() - started) / 1000;
        if (ok !== jobs) throw new Error(`bench: ${variant.id} finished ${ok} of ${jobs} jobs`);
        samples.get(variant.id)?.push(jobs / seconds);
      }
    }
    const rows: BenchRow[] = variants.map((variant) => {
      const values = samples.get(variant.id) ?? [];
      return {
        id: variant.id,
        group: 'supervisor',
        label: variant.label,
        description: variant.description,
        kind: 'throughput',
        unit: 'runs/s',
        ...summarize(values),
        samples: values,
        size: jobs,
      };
    });
    const live = env.quick ? 2_000 : 10_000;
    env.log(`supervisor heap: ${live} live runs`);
    const heap: number[] = [];
    for (let rep = 0; rep < repetitions; rep++) heap.push(await liveHeapPerRun(live, env));
    rows.push({
      id: 'supervisor.heap',
      group: 'supervisor',
      label: 'heap / live supervised run',
      description: `${live} runs live at once under one supervisor (maxConcurrency ${live}), waiting in EXECUTE.`,
      kind: 'heap',
      unit: 'bytes/run',
      ...summarize(heap),
      samples: heap,
      size: live,
    });
    return rows;
  },
};

/** Throughput ratios: above 1 means faster than awaiting the runs one by one. */
export const supervisorRatios: readonly BenchRatio[] = [
  { id: 'supervisor c1/sequential', label: 'supervisor c=1 / one by one (runs/s)', numerator: 'supervisor.c1', denominator: 'supervisor.sequential' },
  { id: 'supervisor c100/sequential', label: 'supervisor c=100 / one by one (runs/s)', numerator: 'supervisor.c100', denominator: 'supervisor.sequential' },
  { id: 'supervisor c1000/sequential', label: 'supervisor c=1000 / one by one (runs/s)', numerator: 'supervisor.c1000', denominator: 'supervisor.sequential' },
  { id: 'supervisor heap/governed', label: 'heap: live supervised run / live governed run', numerator: 'supervisor.heap', denominator: 'heap.governed' },
];
