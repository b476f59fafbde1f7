import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RUNTIME_VERSION } from 'open-agent-orchestrator';
import { benchCases, benchDifferences, benchRatios, benchTargets } from './cases/index.js';
import {
  computeDifferences,
  computeRatios,
  computeTargets,
  exposeGc,
  measureInterleaved,
  type BenchEnv,
  type BenchRow,
  type DifferenceResult,
  type RatioResult,
  type TargetResult,
  type TimeCase,
  type TimingOptions,
} from './harness.js';

/**
 * `npm run bench [-- --quick] [-- --filter <text>]`: every case in one process, after warm-up,
 * medians of repetitions; prints a table and the targets, writes bench/results.json. A missed
 * target is printed, never turned into a failing exit code: timings on shared machines are noise
 * for a CI gate, ratios are for people to read.
 */

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    filter: { type: 'string' },
    out: { type: 'string' },
  },
});

const quick = args.quick === true;
const filter = args.filter;
const resultsPath = args.out ?? fileURLToPath(new URL('./results.json', import.meta.url));

const timing: TimingOptions = quick
  ? { warmupMs: 150, batchMs: 30, repetitions: 5 }
  : { warmupMs: 500, batchMs: 50, repetitions: 25 };

const env: BenchEnv = {
  gc: exposeGc(),
  quick,
  log: (message) => process.stderr.write(`  .. ${message}\n`),
};

function selected(id: string, group: string): boolean {
  return filter === undefined || id.includes(filter) || group.includes(filter);
}

const startedAt = new Date();
const wallStart = performance.now();
const cases = benchCases.filter((c) => selected(c.id, c.group));
const timeCases = cases.filter((c): c is TimeCase => c.kind === 'time');
const rows: BenchRow[] = [];
if (timeCases.length > 0) rows.push(...(await measureInterleaved(timeCases, env, timing)));
for (const custom of cases) {
  if (custom.kind === 'custom') rows.push(...(await custom.run(env)));
}
const ratios = computeRatios(benchRatios, rows);
const differences = computeDifferences(benchDifferences, rows);
const targets = computeTargets(benchTargets, rows);
const wallSeconds = (performance.now() - wallStart) / 1000;

// ---- report -------------------------------------------------------------------------------

function packageVersion(name: string): string {
  try {
    const url = new URL(`../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/**
 * Which code the bench measures: the built package (`dist/`, what an installed package runs) unless
 * it runs with `--conditions=oao-source`, which loads the TypeScript sources through tsx instead.
 */
const measured = import.meta.resolve('open-agent-orchestrator').endsWith('.ts') ? 'sources (tsx, --conditions=oao-source)' : 'built package (dist/)';

const machine = {
  node: process.version,
  v8: process.versions.v8,
  platform: `${process.platform} ${process.arch}`,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
  loadavg: loadavg().map((n) => Number(n.toFixed(2))),
};

function formatNs(ns: number): string {
  if (ns < 1_000) return `${ns.toFixed(1)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(2)} µs`;
  return `${(ns / 1_000_000).toFixed(2)} ms`;
}

/** A time difference, with its sign. */
function formatDelta(ns: number): string {
  return `${ns < 0 ? '-' : '+'}${formatNs(Math.abs(ns))}`;
}

function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function formatValue(row: BenchRow, value: number): string {
  if (row.skipped !== undefined) return 'skipped';
  switch (row.kind) {
    case 'time':
      return `${formatNs(value)}/op`;
    case 'heap':
      return `${(value / 1024).toFixed(2)} KiB/run`;
    case 'throughput':
      return `${formatCount(value)} ${row.unit === 'events/s' ? 'ev/s' : row.unit}`;
  }
}

/** The column that reads the median the other way round: ops/s for time, ns per event for throughput. */
function formatDerived(row: BenchRow): string {
  if (row.skipped !== undefined) return '';
  switch (row.kind) {
    case 'time':
      return `${formatCount(1e9 / row.median)} ops/s`;
    case 'heap':
      return `${row.size ?? 0} live runs`;
    case 'throughput':
      return `${formatNs(1e9 / row.median)}/${row.unit === 'events/s' ? 'event' : 'run'}`;
  }
}

/** Half the interquartile range, relative to the median: how much a typical repetition strayed. */
function spread(row: BenchRow): string {
  if (row.skipped !== undefined) return '';
  return `±${(((row.p75 - row.p25) / 2 / row.median) * 100).toFixed(1)}%`;
}

function table(header: readonly string[], body: readonly (readonly string[])[], alignRight: readonly boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => (alignRight[i] === true ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function formatRatio(value: number): string {
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(2)}x`;
}

function formatRate(perSecond: number): string {
  return `${formatCount(perSecond)}/s`;
}

function ratioStatus(ratio: RatioResult): string {
  if (ratio.met === undefined) return '';
  return ratio.met ? 'met' : 'MISSED';
}

const out: string[] = [];
out.push('');
out.push(`open-agent-orchestrator ${RUNTIME_VERSION} bench, ${startedAt.toISOString()}`);
out.push(
  `${machine.node} (V8 ${machine.v8}), ${machine.platform}, ${machine.cpus} x ${machine.cpuModel}, load ${machine.loadavg.join(' ')}; ` +
    `xstate ${packageVersion('xstate')}, rxjs ${packageVersion('rxjs')}; measuring the ${measured}`,
);
out.push(
  `time rows: medians of ${timing.repetitions} batches of ~${timing.batchMs} ms per case, interleaved in shuffled order, after ${timing.warmupMs} ms warm-up each` +
    `${quick ? ' (--quick: smoke run, not for comparison)' : ''}`,
);
out.push('');
out.push(
  table(
    ['group', 'case', 'median', 'IQR/2', 'reads as'],
    rows.map((row) => [row.group, row.label, formatValue(row, row.median), spread(row), formatDerived(row)]),
    [false, false, true, true, true],
  ),
);
for (const row of rows) {
  if (row.skipped !== undefined) out.push(`skipped: ${row.group} / ${row.label}: ${row.skipped}`);
}
out.push('');
out.push(
  table(
    ['ratio', 'of medians', 'paired: median (min .. max)', 'target', 'status'],
    ratios.map((r) => [
      r.label,
      formatRatio(r.value),
      r.paired === undefined ? '' : `${formatRatio(r.paired.median)} (${formatRatio(r.paired.min)} .. ${formatRatio(r.paired.max)})`,
      r.target === undefined ? '' : `<= ${r.target}x`,
      ratioStatus(r),
    ]),
    [false, true, true, true, false],
  ),
);
if (differences.length > 0) {
  out.push('');
  out.push(
    table(
      ['difference', 'of medians', 'paired: median (min .. max)', 'aim', 'status'],
      differences.map((d: DifferenceResult) => [
        d.label,
        formatDelta(d.value),
        d.paired === undefined ? '' : `${formatDelta(d.paired.median)} (${formatDelta(d.paired.min)} .. ${formatDelta(d.paired.max)})`,
        d.atMostNs === undefined ? '' : `<= ${formatDelta(d.atMostNs)}`,
        d.met === undefined ? '' : d.met ? 'met' : 'MISSED',
      ]),
      [false, true, true, true, false],
    ),
  );
}
if (targets.length > 0) {
  out.push('');
  out.push(
    table(
      ['rate on this machine', 'measured', 'target', 'status'],
      targets.map((t: TargetResult) => [t.label, formatRate(t.perSecond), `>= ${formatRate(t.atLeastPerSecond)}`, t.met ? 'met' : 'MISSED']),
      [false, true, true, false],
    ),
  );
}
const targeted = ratios.filter((r) => r.met !== undefined);
const limitedDifferences = differences.filter((d) => d.met !== undefined);
const missed = [
  ...targeted.filter((r) => r.met === false).map((r) => `${r.label} ${r.value.toFixed(2)}x > ${r.target}x`),
  ...limitedDifferences.filter((d) => d.met === false).map((d) => `${d.label} ${formatDelta(d.value)} > ${formatDelta(d.atMostNs as number)}`),
  ...targets.filter((t) => !t.met).map((t) => `${t.label} ${formatRate(t.perSecond)} < ${formatRate(t.atLeastPerSecond)}`),
];
const targetCount = targeted.length + limitedDifferences.length + targets.length;
out.push('');
out.push(
  missed.length === 0
    ? `All ${targetCount} targets met.`
    : `TARGETS MISSED: ${missed.length} of ${targetCount} (${missed.join('; ')}). Reported only; the exit code stays 0.`,
);
out.push(`Total ${wallSeconds.toFixed(1)} s. Results written to ${resultsPath}.`);
out.push('');
process.stdout.write(out.join('\n'));

const results = {
  generatedAt: startedAt.toISOString(),
  runtimeVersion: RUNTIME_VERSION,
  commit: gitCommit(),
  machine,
  measured,
  versions: { xstate: packageVersion('xstate'), rxjs: packageVersion('rxjs') },
  options: { quick, filter: filter ?? null, timing },
  wallSeconds: Number(wallSeconds.toFixed(1)),
  rows,
  ratios,
  differences,
  targets,
};
writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
