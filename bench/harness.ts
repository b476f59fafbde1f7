import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The measuring side of `npm run bench`: the case and row types every group shares, warm-up with
 * batch calibration, interleaved repetitions, medians and a forced full GC. Everything here runs in
 * the one bench process: rows are compared with each other, never with numbers from elsewhere.
 */

/** How an operation is driven: called back to back, or awaited one after another. */
export type OpMode = 'sync' | 'async';

/** One unit of work: one run, one agent call. Async operations are awaited before the next starts. */
export type Op = () => unknown;

/** What a case may use from the runner. */
export interface BenchEnv {
  /** A full, synchronous garbage collection (available whether or not node got `--expose-gc`). */
  readonly gc: () => void;
  /** `--quick`: fewer repetitions and smaller populations, for a smoke run. */
  readonly quick: boolean;
  /** Progress lines (stderr), so the table on stdout stays clean. */
  readonly log: (message: string) => void;
}

/** Time per operation, sampled in batches interleaved with the other time cases. */
export interface TimeCase {
  readonly kind: 'time';
  /** Stable id, used by ratios and in results.json, e.g. `core.governed`. */
  readonly id: string;
  readonly group: string;
  readonly label: string;
  readonly description: string;
  readonly mode: OpMode;
  /** Builds the operation once (orchestrator, agent, subscriber) and should check that it works. */
  setup(env: BenchEnv): Op | Promise<Op>;
}

/** A case that measures something else (heap, throughput) and returns its own rows. */
export interface CustomCase {
  readonly kind: 'custom';
  readonly id: string;
  readonly group: string;
  readonly label: string;
  run(env: BenchEnv): Promise<readonly BenchRow[]>;
}

export type BenchCase = TimeCase | CustomCase;

export type RowKind = 'time' | 'heap' | 'throughput';

/** One line of the table and of results.json. */
export interface BenchRow extends Summary {
  readonly id: string;
  readonly group: string;
  readonly label: string;
  readonly description: string;
  readonly kind: RowKind;
  /** `ns/op` for time, `bytes/run` for heap, `events/s` for throughput. */
  readonly unit: string;
  /** Every repetition's value, in the order measured. */
  readonly samples: readonly number[];
  /** Operations per batch (time rows) or live population (heap rows). */
  readonly size?: number;
  /**
   * Why the row could not be measured (a service that is not reachable): the row is printed as
   * skipped with this reason, has no samples, and ratios and targets naming it are left out.
   */
  readonly skipped?: string;
}

/** A ratio of two rows' medians; with a target, the runner prints whether it is met. */
export interface BenchRatio {
  readonly id: string;
  readonly label: string;
  readonly numerator: string;
  readonly denominator: string;
  /** The ratio must be at most this. */
  readonly target?: number;
}

/**
 * The difference of two time rows (`minuend - subtrahend`), for what an aim states as time added:
 * "at most 100 µs over a governed trivial run". With a limit, the runner prints whether it is met.
 */
export interface BenchDifference {
  readonly id: string;
  readonly label: string;
  readonly minuend: string;
  readonly subtrahend: string;
  /** The difference must be at most this many nanoseconds. */
  readonly atMostNs?: number;
}

export interface DifferenceResult extends BenchDifference {
  /** Median of the minuend minus median of the subtrahend, in nanoseconds. */
  readonly value: number;
  /** The per-repetition differences (sample i minus sample i), when both rows have as many samples. */
  readonly paired: Summary | undefined;
  /** Undefined when the difference has no limit. */
  readonly met: boolean | undefined;
}

/**
 * A rate one row must reach on its own, for the figures the requirements state in operations per
 * second. Unlike a ratio it depends on the machine: read it with the load average printed above it.
 */
export interface BenchTarget {
  readonly id: string;
  readonly label: string;
  readonly row: string;
  /** Operations per second the row must reach: `1e9 / median` for time rows, the median for throughput rows. */
  readonly atLeastPerSecond: number;
}

export interface TargetResult extends BenchTarget {
  /** The row's operations per second. */
  readonly perSecond: number;
  readonly met: boolean;
}

export interface RatioResult extends BenchRatio {
  /** Median of the numerator over median of the denominator. */
  readonly value: number;
  /**
   * The per-repetition ratios (sample i over sample i, measured in the same repetition) when both
   * rows have as many samples: their median is robust to slow phases of a shared machine, which
   * hit both sides of a pair alike; min and max show how far the ratio moved.
   */
  readonly paired: Summary | undefined;
  /** Undefined when the ratio has no target. */
  readonly met: boolean | undefined;
}

export interface TimingOptions {
  /** Minimum time each case is run before it is measured (JIT tier-up, inline caches, pools). */
  readonly warmupMs: number;
  /** The length one measured batch should have; the batch size is calibrated to it. */
  readonly batchMs: number;
  readonly repetitions: number;
}

/** The q-quantile (0..1) of a set of samples, interpolated between the two nearest ranks. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const lower = sorted[below] as number;
  const upper = sorted[Math.min(below + 1, sorted.length - 1)] as number;
  return lower + (upper - lower) * (position - below);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** First and third quartile: half of the samples lie between them. */
  readonly p25: number;
  readonly p75: number;
}

export function summarize(samples: readonly number[]): Summary {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    p25: quantile(samples, 0.25),
    p75: quantile(samples, 0.75),
  };
}

/**
 * A full GC. Uses `global.gc` when node runs with `--expose-gc`; otherwise turns the flag on at
 * run time and takes `gc` from a fresh context, which V8 supports for this flag.
 */
export function exposeGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return () => exposed();
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => gc();
}

/** Runs `count` operations back to back and returns the elapsed nanoseconds. */
export async function runBatch(op: Op, mode: OpMode, count: number): Promise<number> {
  let last: unknown;
  const started = process.hrtime.bigint();
  if (mode === 'sync') {
    for (let i = 0; i < count; i++) last = op();
  } else {
    for (let i = 0; i < count; i++) last = await op();
  }
  const elapsed = Number(process.hrtime.bigint() - started);
  // Reading the last result keeps the optimizer from dropping the work that made it.
  if (last === NOTHING) throw new Error('unreachable');
  return elapsed;
}

const NOTHING = Symbol('nothing');

/**
 * Warms an operation up for at least `warmupMs` while growing the batch, and returns the batch size
 * that takes about `batchMs`.
 */
export async function warmUpAndCalibrate(op: Op, mode: OpMode, options: TimingOptions): Promise<number> {
  let size = 8;
  let nsPerOp = Number.POSITIVE_INFINITY;
  const deadline = performance.now() + options.warmupMs;
  for (;;) {
    const elapsed = await runBatch(op, mode, size);
    nsPerOp = elapsed / size;
    if (performance.now() >= deadline && elapsed >= 0.5e6 * options.batchMs) break;
    if (elapsed < 0.5e6 * options.batchMs) size *= 2;
  }
  return Math.max(1, Math.round((options.batchMs * 1e6) / nsPerOp));
}

/**
 * Measures time cases against each other: each is warmed up and calibrated, then every repetition
 * runs one batch of each case in a freshly shuffled order (seeded, so runs are comparable).
 * Interleaving spreads the slow phases of a shared machine over all cases instead of penalising
 * whichever ran then; shuffling keeps one case from always paying the GC debt of the same
 * predecessor. No GC is forced between batches: tried here, it made every case 2 to 3 times slower
 * and no less noisy (a forced full GC shrinks the young generation and ages the code of the cases
 * that did not run since), which is not the steady state a server runs in.
 */
export async function measureInterleaved(cases: readonly TimeCase[], env: BenchEnv, options: TimingOptions): Promise<BenchRow[]> {
  const prepared: { readonly spec: TimeCase; readonly op: Op; readonly size: number; readonly samples: number[] }[] = [];
  for (const spec of cases) {
    const op = await spec.setup(env);
    env.log(`warming up ${spec.id}`);
    const size = await warmUpAndCalibrate(op, spec.mode, options);
    prepared.push({ spec, op, size, samples: [] });
  }
  const random = seededRandom(0x0a0);
  for (let rep = 0; rep < options.repetitions; rep++) {
    env.log(`repetition ${rep + 1}/${options.repetitions}`);
    for (const entry of shuffled(prepared, random)) {
      const elapsed = await runBatch(entry.op, entry.spec.mode, entry.size);
      entry.samples.push(elapsed / entry.size);
    }
  }
  return prepared.map(({ spec, size, samples }) => ({
    id: spec.id,
    group: spec.group,
    label: spec.label,
    description: spec.description,
    kind: 'time',
    unit: 'ns/op',
    ...summarize(samples),
    samples,
    size,
  }));
}

/** mulberry32: a tiny deterministic PRNG, enough to shuffle the order of batches. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Fisher-Yates shuffled copy. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

/** Computes ratios of row medians; a ratio naming a row that did not run (or was skipped) is left out. */
export function computeRatios(ratios: readonly BenchRatio[], rows: readonly BenchRow[]): RatioResult[] {
  const byId = new Map(rows.filter((row) => row.skipped === undefined).map((row) => [row.id, row]));
  const results: RatioResult[] = [];
  for (const ratio of ratios) {
    const numerator = byId.get(ratio.numerator);
    const denominator = byId.get(ratio.denominator);
    if (numerator === undefined || denominator === undefined) continue;
    const value = numerator.median / denominator.median;
    const paired =
      numerator.samples.length === denominator.samples.length
        ? numerator.samples.map((sample, i) => sample / (denominator.samples[i] as number))
        : [];
    results.push({ ...ratio, value, paired: paired.length > 0 ? summarize(paired) : undefined, met: ratio.target === undefined ? undefined : value <= ratio.target });
  }
  return results;
}

/**
 * Computes differences of time rows' medians; a difference naming a row that did not run, was
 * skipped or is not a time row is left out (time rows are the only ones measured per operation).
 */
export function computeDifferences(differences: readonly BenchDifference[], rows: readonly BenchRow[]): DifferenceResult[] {
  const byId = new Map(rows.filter((row) => row.skipped === undefined && row.kind === 'time').map((row) => [row.id, row]));
  const results: DifferenceResult[] = [];
  for (const difference of differences) {
    const minuend = byId.get(difference.minuend);
    const subtrahend = byId.get(difference.subtrahend);
    if (minuend === undefined || subtrahend === undefined) continue;
    const value = minuend.median - subtrahend.median;
    const paired =
      minuend.samples.length === subtrahend.samples.length ? minuend.samples.map((sample, i) => sample - (subtrahend.samples[i] as number)) : [];
    results.push({
      ...difference,
      value,
      paired: paired.length > 0 ? summarize(paired) : undefined,
      met: difference.atMostNs === undefined ? undefined : value <= difference.atMostNs,
    });
  }
  return results;
}

/** Checks rows against their rate targets; a target naming a row that did not run (or was skipped) is left out. */
export function computeTargets(targets: readonly BenchTarget[], rows: readonly BenchRow[]): TargetResult[] {
  const byId = new Map(rows.filter((row) => row.skipped === undefined).map((row) => [row.id, row]));
  const results: TargetResult[] = [];
  for (const target of targets) {
    const row = byId.get(target.row);
    if (row === undefined || (row.kind !== 'time' && row.kind !== 'throughput')) continue;
    const perSecond = row.kind === 'time' ? 1e9 / row.median : row.median;
    results.push({ ...target, perSecond, met: perSecond >= target.atLeastPerSecond });
  }
  return results;
}

/** Heap in use right now, in bytes (after the caller's GC). */
export function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

/** Resolves on the next turn of the event loop, after pending I/O and timers callbacks. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A promise with its resolve function outside, for agents that wait until the bench releases them. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function createGate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
