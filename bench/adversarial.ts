import { getHeapStatistics } from 'node:v8';
import { parseArgs } from 'node:util';
import {
  executionReportSchema,
  MultiAgentOrchestrator,
  Orchestrator,
  type AgentContext,
  type ExecutionReport,
} from 'open-agent-orchestrator';
import { hostileCases, runHostileCase } from '../test/hostileAgents.js';

/**
 * `npm run bench:adversarial [-- --scale 0.1]`: the adversarial pass at full size, outside the test
 * suite (which runs the same categories at sizes that take seconds). Prints one line per category
 * with what was run and what held; exits 1 if any invariant broke. Run with --expose-gc for heap
 * figures after collection.
 */

const { values: args } = parseArgs({ options: { scale: { type: 'string', default: '1' } } });
const scale = Number(args.scale);
if (!Number.isFinite(scale) || scale <= 0) throw new Error(`--scale must be a positive number, got ${args.scale}`);
const size = (n: number): number => Math.max(1, Math.round(n * scale));

const gc = (globalThis as { gc?: () => void }).gc;
let broken = 0;

function heapMb(): number {
  gc?.();
  gc?.();
  return getHeapStatistics().used_heap_size / 1_048_576;
}

function handles(): number {
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
}

function check(category: string, ok: boolean, detail: string): void {
  if (!ok) broken += 1;
  console.log(`${ok ? 'held ' : 'BROKE'}  ${category.padEnd(34)} ${detail}`);
}

function valid(report: ExecutionReport): boolean {
  return executionReportSchema.safeParse(JSON.parse(JSON.stringify(report))).success;
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

// 1. Every hostile agent of the table, under the simulated clock.
{
  let failures = 0;
  for (const c of hostileCases) {
    const { report, spy } = await runHostileCase(c);
    let held = report.status === c.status && report.termination.reason === c.reason && valid(report);
    try {
      c.held?.(report, spy);
    } catch {
      held = false;
    }
    if (!held) {
      failures += 1;
      console.log(`       ${c.kind}: ${report.status} ${JSON.stringify(report.termination)}`);
    }
  }
  check('hostile agents', failures === 0, `${hostileCases.length} kinds, ${failures} ended other than expected`);
}

// 2. Sequential runs: heap and handles stay flat.
{
  const n = size(100_000);
  const orch = new Orchestrator();
  const agent = { invoke: (task: string, ctx: AgentContext) => (ctx.usage(1), { output: task }) };
  for (let i = 0; i < 1_000; i++) await orch.run({ agent, task: 'warm' });
  const heapBefore = heapMb();
  const handlesBefore = handles();
  let invalid = 0;
  for (let i = 0; i < n; i++) {
    const report = await orch.run({ agent, task: `t${i}` });
    if (report.status !== 'SUCCESS' || (i % 1_000 === 0 && !valid(report))) invalid += 1;
  }
  await flush();
  const heapAfter = heapMb();
  const handlesAfter = handles();
  check(
    'sequential runs',
    invalid === 0 && handlesAfter <= handlesBefore && heapAfter - heapBefore < 8,
    `${n} runs, heap ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB, handles ${handlesBefore} -> ${handlesAfter}, ${invalid} bad reports`,
  );
}

// 3. Cancelled runs: every one ends cancelled, nothing leaks.
{
  const n = size(20_000);
  const orch = new Orchestrator();
  const hung = (_task: string, ctx: AgentContext) =>
    new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  const heapBefore = heapMb();
  const handlesBefore = handles();
  let wrong = 0;
  for (let i = 0; i < n; i++) {
    const handle = orch.start({ agent: hung, task: 'wait' });
    handle.cancel(`stop ${i}`);
    const report = await handle.report;
    if (report.termination.reason !== 'cancelled') wrong += 1;
  }
  await flush();
  const heapAfter = heapMb();
  const handlesAfter = handles();
  check(
    'cancelled runs',
    wrong === 0 && handlesAfter <= handlesBefore && heapAfter - heapBefore < 8,
    `${n} runs, heap ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB, handles ${handlesBefore} -> ${handlesAfter}, ${wrong} not cancelled`,
  );
}

// 4. A supervised batch with failures and a shared step budget.
{
  const n = size(10_000);
  const maxSteps = size(500);
  let bodies = 0;
  let running = 0;
  let peak = 0;
  const agent = {
    invoke: async (task: number) => {
      bodies += 1;
      running += 1;
      peak = Math.max(peak, running);
      await Promise.resolve();
      running -= 1;
      if (task % 7 === 0) throw new Error('flaky');
      if (task % 11 === 0) return undefined;
      return { output: task, usage: 3 };
    },
  };
  const multi = new MultiAgentOrchestrator({ maxConcurrency: 100, budget: { maxSteps } });
  const reports = await multi.map(agent, Array.from({ length: n }, (_, i) => i));
  const complete = reports.length === n && reports.every((r) => r !== undefined);
  check(
    'supervised jobs, shared maxSteps',
    complete && bodies === maxSteps && peak <= 100,
    `${n} jobs, ${reports.length} reports, ${bodies} step bodies for maxSteps ${maxSteps}, peak ${peak} running (limit 100)`,
  );
}

// 5. Cancel races: cancel at every point of a run's life; every report is consistent.
{
  const n = size(5_300);
  const orch = new Orchestrator();
  let inconsistent = 0;
  const counts = { cancelled: 0, completed: 0 };
  for (let i = 0; i < n; i++) {
    const delay = i % 6;
    const agent = {
      invoke: async (task: string, ctx: AgentContext) => {
        for (let k = 0; k < delay; k++) await Promise.resolve();
        await ctx.tools.echo!({ k: delay });
        ctx.usage(1);
        return task;
      },
    };
    const handle = orch.start({ agent, task: 'race', tools: { echo: (a: unknown) => a } });
    const at = i % 13;
    for (let k = 0; k < at; k++) await Promise.resolve();
    handle.cancel('race');
    const report = await handle.report;
    const events = handle.events();
    const completes = events.filter((e) => e.type === 'EXECUTION_COMPLETE').length;
    const gapless = events.every((e, index) => e.seq === index);
    const okStatus =
      (report.status === 'SUCCESS' && report.termination.reason === 'completed') ||
      (report.status === 'FAILED' && report.termination.reason === 'cancelled');
    if (!okStatus || completes !== 1 || !gapless || !valid(report)) inconsistent += 1;
    if (report.termination.reason === 'cancelled') counts.cancelled += 1;
    else counts.completed += 1;
  }
  check('cancel races', inconsistent === 0, `${n} races (${counts.cancelled} cancelled, ${counts.completed} completed first), ${inconsistent} inconsistent`);
}

console.log(broken === 0 ? '\nevery invariant held' : `\n${broken} categor${broken === 1 ? 'y' : 'ies'} broke`);
process.exitCode = broken === 0 ? 0 : 1;
