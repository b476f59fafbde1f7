import { Orchestrator } from 'open-agent-orchestrator';
import { createActor, toPromise } from 'xstate';
import { bareLifecycleMachine, TASK, type TrivialAgent } from '../baselines.js';
import { createGate, heapUsed, nextTurn, summarize, type BenchEnv, type BenchRatio, type BenchRow, type CustomCase, type Gate } from '../harness.js';

/**
 * Heap per live run: a population of runs is started and left waiting inside its agent call, then
 * the heap is compared, after full GCs, with the heap before they started. The governed runs and
 * the bare XState actors wait the same way: their agent returns a promise of one shared gate that
 * the bench opens once the heap is measured.
 */

/** An agent that answers once the gate opens, like a model call still in flight. */
export class WaitingAgent implements TrivialAgent {
  readonly #gate: Gate;

  constructor(gate: Gate) {
    this.#gate = gate;
  }

  invoke(task: string): Promise<{ output: string }> {
    return this.#gate.promise.then(() => ({ output: 'Processed: ' + task }));
  }
}

export interface Population {
  readonly id: string;
  readonly label: string;
  readonly description: string;
  /** Starts one run waiting on `agent`; the promise settles with its result when the gate opens. */
  readonly start: (agent: WaitingAgent) => Promise<unknown>;
  readonly check: (result: unknown) => boolean;
}

function governedPopulation(): Population {
  const orch = new Orchestrator();
  orch.events$.subscribe(() => {});
  return {
    id: 'heap.governed',
    label: 'heap / live governed run',
    description:
      'orch.run() with the default policy, events on and one events$ subscriber, waiting in EXECUTE on its agent ' +
      '(ledger, recorded events, deadline timer, call scope and both actors included).',
    start: (agent) => orch.run({ agent, task: TASK }),
    check: (result) => (result as { status?: string }).status === 'SUCCESS',
  };
}

export function barePopulation(): Population {
  return {
    id: 'heap.bare',
    label: 'heap / live bare XState actor',
    description: 'The bare 5-state machine started with createActor().start() and held by toPromise(), waiting in execute.',
    start: (agent) => toPromise(createActor(bareLifecycleMachine, { input: { agent, task: TASK } }).start()),
    check: (result) => result === `Processed: ${TASK}`,
  };
}

/** Bytes of heap per live run of one population of `count` runs. */
export async function bytesPerLiveRun(population: Population, count: number, env: BenchEnv): Promise<number> {
  const gate = createGate();
  const agent = new WaitingAgent(gate);
  // Allocated before the baseline, so the array itself is not counted.
  const live = new Array<Promise<unknown>>(count);
  env.gc();
  await nextTurn();
  env.gc();
  const before = heapUsed();
  for (let i = 0; i < count; i++) live[i] = population.start(agent);
  await nextTurn();
  env.gc();
  const after = heapUsed();
  gate.open();
  const results = await Promise.all(live);
  const failed = results.filter((result) => !population.check(result)).length;
  if (failed > 0) throw new Error(`bench: ${failed} of ${count} runs of ${population.id} did not succeed`);
  return (after - before) / count;
}

/**
 * Bytes per live run of each population: a warm-up, then `repetitions` rounds in rotating order
 * (so no population always runs first), one heap row each.
 */
export async function measureHeapPopulations(
  populations: readonly Population[],
  options: { readonly count: number; readonly repetitions: number; readonly group: string; readonly label: string },
  env: BenchEnv,
): Promise<BenchRow[]> {
  const { count, repetitions, group, label } = options;
  for (const population of populations) {
    env.log(`warming up ${population.id}`);
    await bytesPerLiveRun(population, 1_000, env);
  }
  const samples = new Map<string, number[]>(populations.map((p) => [p.id, []]));
  for (let rep = 0; rep < repetitions; rep++) {
    env.log(`${label} repetition ${rep + 1}/${repetitions} (${count} live runs each)`);
    for (let k = 0; k < populations.length; k++) {
      const population = populations[(k + rep) % populations.length] as Population;
      samples.get(population.id)?.push(await bytesPerLiveRun(population, count, env));
    }
  }
  return populations.map((population): BenchRow => {
    const values = samples.get(population.id) ?? [];
    return {
      id: population.id,
      group,
      label: population.label,
      description: population.description,
      kind: 'heap',
      unit: 'bytes/run',
      ...summarize(values),
      samples: values,
      size: count,
    };
  });
}

export const heapCase: CustomCase = {
  kind: 'custom',
  id: 'heap',
  group: 'heap',
  label: 'heap per live run',
  async run(env) {
    const count = env.quick ? 2_000 : 10_000;
    const repetitions = env.quick ? 1 : 3;
    const populations = [governedPopulation(), barePopulation()];
    return measureHeapPopulations(populations, { count, repetitions, group: 'heap', label: 'heap' }, env);
  },
};

export const heapRatios: readonly BenchRatio[] = [
  { id: 'heap governed/bare', label: 'heap: live governed run / live bare actor', numerator: 'heap.governed', denominator: 'heap.bare', target: 1.5 },
];
