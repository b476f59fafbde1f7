import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Orchestrator, type AgentContext, type OaoEvent } from 'open-agent-orchestrator';
import { createSqliteStore, type SqliteRunStore } from 'open-agent-orchestrator/sqlite';
import { summarize, type BenchEnv, type BenchRatio, type BenchRow, type CustomCase } from '../harness.js';

/**
 * Suspend and resume, measured from a SQLite store (a temp file, WAL, synchronous NORMAL):
 *
 * - `resume.run100`: `orch.resume(id)` of a run whose log holds 100 events, cut short in the middle
 *   of a step (as a crash leaves it): lease, read and fold the log, re-enter the step with its
 *   recorded tool call served from the log, finish the run. Each sample is one resume, timed alone.
 * - `resume.fresh`: the same agent run from the start to its end in the same store: what the resume
 *   is compared with.
 * - `resume.reload`: a run waiting for approval is loaded back (`startResumed`, until it waits
 *   again) and unloaded (`handle.unload()`: actor stopped, log flushed, lease released).
 */

/** Steps of the recorded agent: enough for a log of more than 100 events. */
const STEPS = 12;

function stepper(options: { approveAt?: number } = {}) {
  return {
    name: 'stepper',
    async invoke(input: { n: number }, ctx: AgentContext) {
      const found = await ctx.callTool(ctx.step === options.approveAt ? 'send' : 'lookup', { n: input.n });
      ctx.usage({ input: 3, output: 2 });
      return { output: { n: input.n, found } };
    },
    review(result: { step: number }) {
      return result.step >= STEPS ? { done: true as const } : { done: false as const, input: { n: result.step + 1 } };
    },
  };
}

const toolset = { lookup: (args: unknown) => args, send: () => 'sent' };
const policy = { maxSteps: STEPS, maxToolCalls: STEPS, maxTokens: 1_000_000 };

function withId(events: readonly OaoEvent[], executionId: string): OaoEvent[] {
  return events.map((event) => ({ ...event, executionId, id: `${executionId}:${event.seq}` }));
}

function row(id: string, label: string, description: string, samples: readonly number[]): BenchRow {
  return { id, group: 'resume', label, description, kind: 'time', unit: 'ns/op', samples, size: 1, ...summarize(samples) };
}

export const resumeCase: CustomCase = {
  kind: 'custom',
  id: 'resume',
  group: 'resume',
  label: 'resume and reload from SQLite',
  async run(env: BenchEnv): Promise<readonly BenchRow[]> {
    const dir = mkdtempSync(join(tmpdir(), 'oao-bench-resume-'));
    const stores: SqliteRunStore[] = [];
    try {
      const count = env.quick ? 50 : 300;
      const store = createSqliteStore({ path: join(dir, 'resume.db') });
      stores.push(store);
      const orch = new Orchestrator({ store, policy, owner: 'bench' });

      // A complete run, cut at 100 events: the interrupted runs every resume starts from.
      const full = await orch.run({ agent: stepper(), task: { n: 1 }, tools: toolset, executionId: 'template' });
      if (full.status !== 'SUCCESS') throw new Error(`the recorded run failed: ${full.termination.message ?? ''}`);
      const template = store.events('template');
      if (template.length <= 100) throw new Error(`the recorded run has ${template.length} events; the case needs more than 100`);
      const cut = template.slice(0, 100);
      for (let i = 0; i < count; i++) store.append(`cut-${i}`, withId(cut, `cut-${i}`));

      const resumed: number[] = [];
      const fresh: number[] = [];
      for (let i = 0; i < count; i++) {
        let started = performance.now();
        const report = await orch.resume(`cut-${i}`, { agent: stepper(), tools: toolset });
        resumed.push((performance.now() - started) * 1e6);
        if (report.status !== 'SUCCESS' || report.totalSteps !== STEPS) throw new Error('a resumed run did not finish as recorded');
        started = performance.now();
        await orch.run({ agent: stepper(), task: { n: 1 }, tools: toolset });
        fresh.push((performance.now() - started) * 1e6);
      }

      // Waiting runs, unloaded: each sample loads one back until it waits again, and unloads it.
      const waiting = new Orchestrator({ store, policy: { ...policy, tools: { approve: ['send'] } }, owner: 'bench' });
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const handle = waiting.start({ agent: stepper({ approveAt: 1 }), task: { n: 1 }, tools: toolset, executionId: `wait-${i}` });
        while (handle.pendingApprovals().length === 0) await new Promise((resolve) => setImmediate(resolve));
        await handle.unload();
        ids.push(`wait-${i}`);
      }
      const reloads: number[] = [];
      for (const id of ids) {
        const started = performance.now();
        const handle = await waiting.startResumed(id, { agent: stepper({ approveAt: 1 }), tools: toolset });
        while (handle.pendingApprovals().length === 0) await new Promise((resolve) => setImmediate(resolve));
        await handle.unload();
        reloads.push((performance.now() - started) * 1e6);
      }
      env.log(`resume: ${count} resumes of a 100-event log, ${count} reloads of a waiting run`);
      return [
        row('resume.run100', 'resume(id): 100-event log, SQLite', 'orch.resume() of a run cut short at its 100th event (mid-step): lease, read and fold the log, finish the last steps', resumed),
        row('resume.fresh', 'the same run from its start, SQLite', `orch.run() of the same ${STEPS}-step agent from the start, in the same store`, fresh),
        row('resume.reload', 'reload + unload of a waiting run, SQLite', 'startResumed() of a run waiting for approval until it waits again, then handle.unload()', reloads),
      ];
    } finally {
      for (const store of stores) store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export const resumeRatios: readonly BenchRatio[] = [
  { id: 'resume run100/fresh', label: 'resume of a 100-event log / the whole run from its start', numerator: 'resume.run100', denominator: 'resume.fresh' },
];
