import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import {
  createMemoryStore,
  MultiAgentOrchestrator,
  OaoError,
  Orchestrator,
  StrictPolicy,
  whatIf,
  type AgentContext,
  type OaoEvent,
  type PolicyLimits,
  type PolicyOptions,
  type RunRequest,
  type WhatIfRun,
} from '../src/index.js';
import { foldRun } from '../src/log/foldRun.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';

/**
 * What-if evaluates a policy against recorded runs from their logs alone. Every log here is
 * recorded by a real run (`Orchestrator.start` + `handle.events()`), on a simulated clock.
 */

const EPOCH = 1_700_000_000_000;

function simulatedClock(): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(EPOCH);
  return clock;
}

async function record(request: RunRequest, policy?: StrictPolicy | PolicyOptions, clock: SimulatedClock = simulatedClock()): Promise<readonly OaoEvent[]> {
  const handle = new Orchestrator({ clock, ...(policy === undefined ? {} : { policy }) }).start(request);
  await handle.report;
  return handle.events();
}

async function one(events: readonly OaoEvent[], policy: StrictPolicy | PolicyOptions): Promise<WhatIfRun> {
  const result = await whatIf({ runs: [events], policy });
  expect(result.runs).toHaveLength(1);
  return result.runs[0] as WhatIfRun;
}

/** The `seq` of the first event that satisfies `test`. */
function seqOf(events: readonly OaoEvent[], test: (event: OaoEvent) => boolean): number {
  const found = events.find(test);
  if (found === undefined) throw new Error('no such event in the log');
  return found.seq;
}

/** The run's own recorded policy, as a StrictPolicy. */
function recordedPolicy(events: readonly OaoEvent[]): StrictPolicy {
  const start = events[0];
  if (start?.type !== 'EXECUTION_START') throw new Error('not a log');
  return StrictPolicy.fromLimits(start.payload.policy);
}

/** The same limits as options (`tools.allow: null` means "left out"). */
function asOptions(limits: PolicyLimits, override: PolicyOptions = {}): PolicyOptions {
  const tools = { ...(limits.tools.allow === null ? {} : { allow: limits.tools.allow }), deny: limits.tools.deny, maxCalls: limits.tools.maxCalls };
  return { maxSteps: limits.maxSteps, maxTokens: limits.maxTokens, maxToolCalls: limits.maxToolCalls, timeoutMs: limits.timeoutMs, tools, retry: limits.retry, ...override };
}

/** An agent that runs `steps` steps; each calls `search` `calls` times and reports `tokens`. */
function stepper(steps: number, perStep: { tokens?: number; calls?: number; tool?: string; tickMs?: number } = {}, clock?: SimulatedClock) {
  return {
    name: 'stepper',
    async invoke(task: string, ctx: AgentContext) {
      for (let i = 0; i < (perStep.calls ?? 0); i++) await ctx.callTool(perStep.tool ?? 'search', { i });
      if ((perStep.tokens ?? 0) > 0) ctx.usage(perStep.tokens ?? 0);
      if (perStep.tickMs !== undefined) clock?.increment(perStep.tickMs);
      return task;
    },
    review: (result: { step: number }) => ({ done: result.step >= steps }),
  };
}

const tools = { search: (args: unknown) => ({ hit: args }), fetch: () => 'page' };
const ZERO = { steps: 0, tokens: 0, toolCalls: 0 };

describe('whatIf on runs that hit no limit', () => {
  it('says same for the recorded policy and for a wider one, with nothing saved', async () => {
    const events = await record({ agent: stepper(3, { tokens: 100, calls: 1 }), task: 't', tools });
    for (const policy of [recordedPolicy(events), {}, { maxSteps: 50, maxTokens: 100_000, maxToolCalls: 50, timeoutMs: 60_000 }]) {
      const run = await one(events, policy);
      expect(run).toMatchObject({ same: true, wouldStop: null, saved: ZERO });
      expect(run.reason).toBeUndefined();
      expect(run.recorded).toEqual({ steps: 3, tokens: 300, toolCalls: 3, termination: { reason: 'completed' } });
      expect(run.agentName).toBe('stepper');
      expect(run.executionId).toBe(events[0]?.executionId);
    }
  });

  it('stops a step start beyond a narrower maxSteps, and saves the steps after it', async () => {
    const events = await record({ agent: stepper(4, { tokens: 100, calls: 1 }), task: 't', tools });
    const run = await one(events, { maxSteps: 2 });
    expect(run.same).toBe(false);
    expect(run.wouldStop).toEqual({
      seq: seqOf(events, (e) => e.type === 'STEP_START' && e.payload.step === 3),
      rule: 'max_steps',
      message: 'Step 3 would exceed maxSteps (2)',
    });
    expect(run.saved).toEqual({ steps: 2, tokens: 200, toolCalls: 2 });
  });

  it('stops a tool call over maxToolCalls, over a per-tool limit, denied, or not allowed', async () => {
    const events = await record({
      agent: {
        name: 'browser',
        async invoke(_task: string, ctx: AgentContext) {
          await ctx.callTool('search', {});
          await ctx.callTool('fetch', {});
          ctx.usage(10);
          await ctx.callTool('fetch', {});
          ctx.usage(10);
          return 'done';
        },
      },
      task: 't',
      tools,
    });
    const calls = events.filter((e) => e.type === 'TOOL_CALL').map((e) => e.seq);
    expect(calls).toHaveLength(3);
    const cases: [PolicyOptions, number, string, string][] = [
      [{ maxToolCalls: 2 }, calls[2]!, 'max_tool_calls', 'Tool call 3 would exceed maxToolCalls (2)'],
      [{ tools: { maxCalls: { fetch: 1 } } }, calls[2]!, 'tool_max_calls', 'Call 2 of tool "fetch" would exceed its limit (1)'],
      [{ tools: { deny: ['fetch'] } }, calls[1]!, 'tool_denied', 'Tool "fetch" is on the policy\'s deny list'],
      [{ tools: { allow: ['fetch'] } }, calls[0]!, 'tool_not_allowed', 'Tool "search" is not on the policy\'s allow list'],
    ];
    for (const [policy, seq, rule, message] of cases) {
      const run = await one(events, policy);
      expect(run.same).toBe(false);
      expect(run.wouldStop).toEqual({ seq, rule, message });
    }
    expect((await one(events, { tools: { deny: ['fetch'] } })).saved).toEqual({ steps: 0, tokens: 20, toolCalls: 2 });
    expect((await one(events, { maxToolCalls: 2 })).saved).toEqual({ steps: 0, tokens: 10, toolCalls: 1 });
  });

  it('stops at the usage report that crosses a narrower maxTokens, counting that spend as made', async () => {
    const events = await record({ agent: stepper(3, { tokens: 300 }), task: 't' });
    const run = await one(events, { maxTokens: 500 });
    const usages = events.filter((e) => e.type === 'TOKEN_USAGE').map((e) => e.seq);
    expect(run.wouldStop).toEqual({ seq: usages[1], rule: 'max_tokens', message: 'Token usage 600 exceeds maxTokens (500)' });
    expect(run.saved).toEqual({ steps: 1, tokens: 300, toolCalls: 0 });
    expect(run.same).toBe(false);
    // Reaching the budget exactly is allowed.
    expect((await one(events, { maxTokens: 900 })).wouldStop).toBeNull();
  });

  it('refuses a model call once a narrower budget is spent', async () => {
    const events = await record({
      agent: async (_task: string, ctx: AgentContext) => {
        ctx.usage(100);
        const call = ctx.beginModelCall({ model: 'fake', input: 'hi' });
        await call.ready;
        call.end('answer', { input: 40, output: 10 });
        return 'done';
      },
      task: 't',
    });
    const run = await one(events, { maxTokens: 100 });
    expect(run.wouldStop).toEqual({
      seq: seqOf(events, (e) => e.type === 'MODEL_CALL'),
      rule: 'max_tokens',
      message: 'Model call refused: the token budget (100) is spent',
    });
    expect(run.saved).toEqual({ steps: 0, tokens: 50, toolCalls: 0 });
  });

  it('stops at the first event after a narrower deadline (from EXECUTION_START timestamps)', async () => {
    const clock = simulatedClock();
    const events = await record({ agent: stepper(4, { tokens: 10, tickMs: 100 }, clock), task: 't' }, {}, clock);
    // Step 2 completes at 200 ms: with 150 ms, that completion comes after the deadline.
    const run = await one(events, { timeoutMs: 150 });
    expect(run.wouldStop).toEqual({
      seq: seqOf(events, (e) => e.type === 'STEP_COMPLETE' && e.payload.step === 2),
      rule: 'timeout',
      message: 'The run would have passed its time limit of 150 ms (this event came 200 ms after the start)',
    });
    expect(run.saved).toEqual({ steps: 2, tokens: 20, toolCalls: 0 });
    expect(run.same).toBe(false);
    // Reaching the limit exactly is allowed: 400 ms is the last event's time.
    expect((await one(events, { timeoutMs: 400 })).wouldStop).toBeNull();
  });
});

describe('whatIf on runs that a limit stopped', () => {
  it('with the recorded policy: same, stopping where the run stopped, nothing saved', async () => {
    const clock = simulatedClock();
    const logs = [
      await record({ agent: stepper(5, { tokens: 10 }), task: 'steps' }, { maxSteps: 2 }),
      await record({ agent: stepper(5, { tokens: 300 }), task: 'tokens' }, { maxTokens: 500 }),
      await record({ agent: stepper(5, { calls: 2 }), task: 'calls', tools }, { maxToolCalls: 3 }),
      await record({ agent: stepper(1, { calls: 1, tool: 'fetch' }), task: 'deny', tools }, { tools: { deny: ['fetch'] } }),
      await record({ agent: stepper(5, { tickMs: 100 }, clock), task: 'time' }, { timeoutMs: 250 }, clock),
    ];
    const rules = ['max_steps', 'max_tokens', 'max_tool_calls', 'tool_denied', 'timeout'];
    for (const [index, events] of logs.entries()) {
      const run = await one(events, recordedPolicy(events));
      expect(run.same).toBe(true);
      expect(run.saved).toEqual(ZERO);
      expect(run.wouldStop?.rule).toBe(rules[index]);
      // The stop is the recorded refusal (or the spend that crossed the limit, just before it).
      const recordedEnd = seqOf(events, (e) => e.type === 'POLICY_VIOLATION' || e.type === 'EXECUTION_TIMEOUT');
      expect(run.wouldStop?.seq).toBeGreaterThanOrEqual(recordedEnd - 1);
    }
  });

  it('a run that timed out with a model call still running: its own policy ends it the same way, the call charged as recorded', async () => {
    const clock = simulatedClock();
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 50, maxTokens: 5_000 } });
    let opened = false;
    const handle = orch.start({
      agent: {
        async invoke(_task: unknown, ctx: AgentContext) {
          const call = ctx.beginModelCall({ model: 'm', input: 'q', inputTokens: 10, maxOutputTokens: 90 });
          await call.ready;
          opened = true;
          return new Promise(() => {});
        },
      },
      task: 't',
    });
    while (!opened) await new Promise((resolve) => setImmediate(resolve));
    clock.increment(100);
    const report = await handle.report;
    expect(report.termination.reason).toBe('timeout');
    // The call was charged its reservation after the timeout, as the run ended.
    expect(report.tokenUsage.total).toBe(100);
    const events = handle.events();
    const run = await one(events, recordedPolicy(events));
    expect(run).toMatchObject({ same: true, saved: ZERO, wouldStop: { rule: 'timeout', seq: seqOf(events, (e) => e.type === 'EXECUTION_TIMEOUT') } });
  });

  it('a step that blocked the event loop past the deadline: its late events stand under the recorded deadline', async () => {
    // A clock whose timers cannot fire while the agent's code runs, as when a step blocks the loop.
    let now = EPOCH;
    const timers = new Map<number, () => void>();
    let nextTimer = 0;
    const blocked = {
      now: () => now,
      setTimeout: (fn: () => void) => {
        timers.set(++nextTimer, fn);
        return nextTimer;
      },
      clearTimeout: (id: number) => timers.delete(id),
    };
    const handle = new Orchestrator({ clock: blocked, policy: { timeoutMs: 250 } }).start({
      agent: (task: string, ctx: AgentContext) => {
        now += 300;
        ctx.usage(10);
        return task;
      },
      task: 't',
    });
    const report = await handle.report;
    expect(report.termination.reason).toBe('timeout');
    const events = handle.events();
    const usage = events.find((e) => e.type === 'TOKEN_USAGE');
    expect(usage !== undefined && usage.timestamp - EPOCH).toBe(300);
    expect(await one(events, { timeoutMs: 250 })).toMatchObject({ same: true, saved: ZERO, wouldStop: { rule: 'timeout' } });
    // A tighter deadline does stop the usage report that came after it.
    expect(await one(events, { timeoutMs: 200 })).toMatchObject({ same: false, wouldStop: { seq: usage?.seq, rule: 'timeout' }, saved: { tokens: 10 } });
  });

  it('with a policy narrower on the same limit at the same point: same', async () => {
    const events = await record({ agent: stepper(5, { tokens: 300 }), task: 't' }, { maxTokens: 500 });
    const run = await one(events, { maxTokens: 550 });
    expect(run).toMatchObject({ same: true, saved: ZERO, wouldStop: { rule: 'max_tokens', message: 'Token usage 600 exceeds maxTokens (550)' } });
  });

  it('with a policy that stops earlier or by another rule: changed', async () => {
    const events = await record({ agent: stepper(5, { tokens: 100, calls: 1 }), task: 't', tools }, { maxSteps: 3 });
    const earlier = await one(events, { maxSteps: 2 });
    expect(earlier).toMatchObject({ same: false, wouldStop: { rule: 'max_steps' }, saved: { steps: 1, tokens: 100, toolCalls: 1 } });
    // Same point, another rule: the report would name another rule.
    const byTokens = await one(events, { maxSteps: 3, maxTokens: 250 });
    expect(byTokens).toMatchObject({ same: false, wouldStop: { rule: 'max_tokens' }, saved: ZERO });
  });

  it('with a policy wider on the limit that stopped the run: cannot tell (same: null, with the reason)', async () => {
    const clock = simulatedClock();
    const stopped: [readonly OaoEvent[], PolicyOptions, RegExp][] = [
      [await record({ agent: stepper(5), task: 's' }, { maxSteps: 2 }), { maxSteps: 3 }, /stopped by max_steps at seq \d+ \(Step 3 would exceed maxSteps \(2\)\)/],
      [await record({ agent: stepper(5, { tokens: 300 }), task: 't' }, { maxTokens: 500 }), { maxTokens: 5000 }, /stopped by max_tokens/],
      [await record({ agent: stepper(1, { calls: 1, tool: 'fetch' }), task: 'd', tools }, { tools: { deny: ['fetch'] } }), {}, /stopped by tool_denied/],
      [await record({ agent: stepper(5, { calls: 2 }), task: 'c', tools }, { maxToolCalls: 3 }), { maxToolCalls: 4 }, /stopped by max_tool_calls/],
      [await record({ agent: stepper(5, { tickMs: 100 }, clock), task: 'time' }, { timeoutMs: 250 }, clock), { timeoutMs: 1000 }, /timed out after 250 ms; the new policy would have given it 1000 ms/],
    ];
    for (const [events, policy, reason] of stopped) {
      const run = await one(events, policy);
      expect(run.same).toBeNull();
      expect(run.wouldStop).toBeNull();
      expect(run.saved).toEqual(ZERO);
      expect(run.reason).toMatch(reason);
    }
  });

  it('a model call refused by the recorded budget: same when the new budget is spent too, unknown when it is not', async () => {
    const events = await record(
      {
        agent: async (_task: string, ctx: AgentContext) => {
          ctx.usage(100);
          ctx.beginModelCall({ model: 'fake' });
          return 'unreachable';
        },
        task: 't',
      },
      { maxTokens: 100 },
    );
    expect(foldRun(events)?.report?.termination.rule).toBe('max_tokens');
    const refused = seqOf(events, (e) => e.type === 'POLICY_VIOLATION');
    // A smaller budget is crossed by the usage before the call: the same ending, nothing spent after it.
    const smaller = await one(events, { maxTokens: 80 });
    expect(smaller).toMatchObject({ same: true, saved: ZERO, wouldStop: { seq: seqOf(events, (e) => e.type === 'TOKEN_USAGE'), rule: 'max_tokens' } });
    expect(await one(events, { maxTokens: 100 })).toMatchObject({ same: true, wouldStop: { seq: refused, message: 'Model call refused: the token budget (100) is spent' } });
    expect(await one(events, { maxTokens: 101 })).toMatchObject({ same: null, wouldStop: null });
  });
});

describe('whatIf and retries', () => {
  function flaky(failures: number) {
    let calls = 0;
    return {
      name: 'flaky',
      invoke(task: string, ctx: AgentContext) {
        ctx.usage(10);
        if (++calls <= failures) throw new Error(`flaky ${calls}`);
        return task;
      },
    };
  }

  async function recordAdvancing(request: RunRequest, policy: PolicyOptions): Promise<readonly OaoEvent[]> {
    const clock = simulatedClock();
    const handle = new Orchestrator({ clock, policy }).start(request);
    let done = false;
    void handle.report.then(() => (done = true));
    for (let i = 0; i < 20 && !done; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      clock.increment(10);
    }
    await handle.report;
    return handle.events();
  }

  it('stops at a failure the recorded run retried when the new maxRetries allows no retry', async () => {
    const events = await recordAdvancing({ agent: flaky(2), task: 't' }, { retry: { maxRetries: 2, initialDelayMs: 10, maxDelayMs: 10 } });
    expect(foldRun(events)?.report?.status).toBe('SUCCESS');
    const errors = events.filter((e) => e.type === 'ERROR').map((e) => e.seq);
    const run = await one(events, { retry: { maxRetries: 1, initialDelayMs: 10, maxDelayMs: 10 } });
    expect(run.wouldStop).toEqual({ seq: errors[1], rule: 'max_retries', message: 'Attempt 2 of step 1 failed, and maxRetries (1) allows no retry of it' });
    expect(run.saved).toEqual({ steps: 0, tokens: 10, toolCalls: 0 });
    expect(run.same).toBe(false);
    expect((await one(events, recordedPolicy(events))).same).toBe(true);
  });

  it('cannot tell how a run that ran out of retries would have gone with more', async () => {
    const events = await recordAdvancing({ agent: flaky(5), task: 't' }, { retry: { maxRetries: 1, initialDelayMs: 10 } });
    expect(foldRun(events)?.report?.termination.reason).toBe('error');
    expect((await one(events, { retry: { maxRetries: 1, initialDelayMs: 10 } })).same).toBe(true);
    const run = await one(events, { retry: { maxRetries: 3, initialDelayMs: 10 } });
    expect(run.same).toBeNull();
    expect(run.reason).toMatch(/no retry left \(maxRetries 1\); the new policy allows 3 retries/);
  });

  it('moves later events by the new backoff: a longer delay can pass the deadline', async () => {
    const events = await recordAdvancing({ agent: flaky(1), task: 't' }, { timeoutMs: 500, retry: { maxRetries: 1, initialDelayMs: 10 } });
    expect(foldRun(events)?.report?.status).toBe('SUCCESS');
    const retried = seqOf(events, (e) => e.type === 'STEP_START' && e.payload.attempt === 2);
    const run = await one(events, { timeoutMs: 500, retry: { maxRetries: 1, initialDelayMs: 600 } });
    expect(run.wouldStop).toMatchObject({ seq: retried, rule: 'timeout' });
    expect(run.saved).toEqual({ steps: 0, tokens: 10, toolCalls: 0 });
    expect((await one(events, { timeoutMs: 500, retry: { maxRetries: 1, initialDelayMs: 400 } })).wouldStop).toBeNull();
  });
});

describe('whatIf on runs ended from outside the policy', () => {
  it('a cancelled run stands unless the new policy stops it before the cancel', async () => {
    const clock = simulatedClock();
    const handle = new Orchestrator({ clock }).start({
      agent: {
        name: 'slow',
        async invoke(task: string, ctx: AgentContext) {
          ctx.usage(100);
          if (ctx.step === 2) await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
          return task;
        },
        review: () => ({ done: false }),
      },
      task: 't',
    });
    await new Promise((resolve) => setImmediate(resolve));
    handle.cancel('enough');
    const report = await handle.report;
    expect(report.termination.reason).toBe('cancelled');
    const events = handle.events();
    expect(await one(events, {})).toMatchObject({ same: true, wouldStop: null, saved: ZERO });
    expect(await one(events, { maxSteps: 1 })).toMatchObject({ same: false, wouldStop: { rule: 'max_steps' }, saved: { steps: 1, tokens: 100 } });
  });

  it("a batch's shared budget stands under any policy of the run's own", async () => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxToolCalls: 2 }, failFast: false });
    const logs = new Map<string, OaoEvent[]>();
    multi.events$.subscribe((event) => {
      if (event.type !== 'RUN_EVENT') return;
      const log = logs.get(event.payload.event.executionId) ?? [];
      log.push(event.payload.event);
      logs.set(event.payload.event.executionId, log);
    });
    const agent = async (task: string, ctx: AgentContext) => {
      await ctx.callTool('search', {}).catch(() => {});
      return task;
    };
    const reports = await multi.map(agent, ['a', 'b', 'c'], { tools });
    const shared = reports.filter((r) => r.termination.scope === 'shared');
    expect(shared.length).toBeGreaterThan(0);
    for (const report of shared) {
      const run = await one(logs.get(report.executionId) ?? [], { maxToolCalls: 50 });
      expect(run).toMatchObject({ same: true, wouldStop: null, saved: ZERO });
    }
  });
});

describe('whatIf on a log that has not ended', () => {
  it('cannot tell how the run ends, but says where the new policy would stop it', async () => {
    const events = await record({ agent: stepper(3, { tokens: 100, calls: 1 }), task: 't', tools });
    const cut = events.slice(0, seqOf(events, (e) => e.type === 'STEP_START' && e.payload.step === 3) + 2);
    const open = await one(cut, {});
    expect(open).toMatchObject({ same: null, wouldStop: null, saved: ZERO, recorded: { termination: null, steps: 3 } });
    expect(open.reason).toMatch(/has not finished \(its log ends at seq \d+\)/);
    const stopped = await one(cut, { maxSteps: 2 });
    expect(stopped).toMatchObject({ same: null, wouldStop: { rule: 'max_steps' }, saved: { steps: 1, tokens: 0, toolCalls: 1 } });
  });
});

describe('whatIf over a store', () => {
  async function fill(store: ReturnType<typeof createMemoryStore> | ReturnType<typeof createSqliteStore>) {
    const clock = simulatedClock();
    const orch = new Orchestrator({ store, clock });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      clock.increment(1_000);
      const report = await orch.run({
        agent: { ...stepper(i % 3 === 0 ? 3 : 1, { tokens: 200, calls: 1 }), name: i % 2 === 0 ? 'writer' : 'reader' },
        task: `t${i}`,
        tools,
      });
      ids.push(report.executionId);
    }
    return ids;
  }

  async function checkStore(store: ReturnType<typeof createMemoryStore> | ReturnType<typeof createSqliteStore>): Promise<void> {
    const ids = await fill(store);
    const all = await whatIf({ store, policy: { maxTokens: 300 } });
    expect(all.runs.map((r) => r.executionId)).toEqual([...ids].reverse());
    // Runs 0 and 3 took 3 steps and 600 tokens: stopped at step 2's usage. The others used 200.
    for (const run of all.runs) {
      const index = ids.indexOf(run.executionId);
      if (index % 3 === 0) expect(run).toMatchObject({ same: false, wouldStop: { rule: 'max_tokens' }, saved: { steps: 1, tokens: 200, toolCalls: 1 } });
      else expect(run).toMatchObject({ same: true, wouldStop: null });
    }
    expect(all.totals).toEqual({ runs: 6, same: 4, changed: 2, unknown: 0, saved: { steps: 2, tokens: 400, toolCalls: 2 } });

    const writers = await whatIf({ store, policy: { maxTokens: 300 }, filter: { agentName: 'writer' } });
    expect(writers.runs.map((r) => r.agentName)).toEqual(['writer', 'writer', 'writer']);
    // Run i started at EPOCH + (i + 1) s.
    const window = await whatIf({ store, policy: {}, filter: { since: EPOCH + 2_000, until: EPOCH + 4_000 } });
    expect(window.runs.map((r) => r.executionId)).toEqual([ids[2], ids[1]]);
    const picked = await whatIf({ store, runs: [ids[3]!, ids[1]!], policy: { maxTokens: 300 } });
    expect(picked.runs.map((r) => [r.executionId, r.same])).toEqual([[ids[3], false], [ids[1], true]]);
    await expect(whatIf({ store, runs: ['no-such-run'], policy: {} })).rejects.toMatchObject({ code: 'OAO_ERR_RUN_NOT_FOUND', details: { executionId: 'no-such-run' } });
  }

  it('reads every run of a memory store (newest first), by filter, or by id', async () => {
    await checkStore(createMemoryStore());
  });

  it('reads every page of a store', async () => {
    const store = createMemoryStore();
    const orch = new Orchestrator({ store });
    for (let i = 0; i < 230; i++) orch.runSync({ agent: (t: string) => t, task: `t${i}` });
    const result = await whatIf({ store, policy: {} });
    expect(result.totals).toMatchObject({ runs: 230, same: 230 });
    expect(new Set(result.runs.map((r) => r.executionId)).size).toBe(230);
  });

  describe('SQLite', () => {
    let dir: string | undefined;
    afterEach(() => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it('reads runs from a SQLite file, also from a second connection', async () => {
      dir = mkdtempSync(join(tmpdir(), 'oao-whatif-'));
      const path = join(dir, 'runs.db');
      const store = createSqliteStore({ path });
      try {
        await checkStore(store);
      } finally {
        store.close();
      }
      const reader = createSqliteStore({ path, readonly: true });
      try {
        expect((await whatIf({ store: reader, policy: { maxTokens: 300 } })).totals.changed).toBe(2);
      } finally {
        reader.close();
      }
    });
  });
});

describe('whatIf input checks', () => {
  it('answers bad options with typed errors', async () => {
    const events = await record({ agent: (t: string) => t, task: 't' });
    const attempts: [unknown, string, string?][] = [
      [undefined, 'OAO_ERR_INVALID_ARGUMENT', 'options'],
      [{ runs: [events] }, 'OAO_ERR_INVALID_ARGUMENT', 'policy'],
      [{ runs: [events], policy: { maxSteps: 0 } }, 'OAO_ERR_INVALID_POLICY', 'maxSteps'],
      [{ runs: [events], policy: { maxStep: 3 } }, 'OAO_ERR_INVALID_POLICY', 'maxStep'],
      [{ runs: [events], policy: null }, 'OAO_ERR_INVALID_POLICY'],
      [{ policy: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'runs'],
      [{ runs: 'x', policy: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'runs'],
      [{ runs: ['some-id'], policy: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'runs.0'],
      [{ runs: [[]], policy: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'runs.0'],
      [{ runs: [42], policy: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'runs.0'],
      [{ store: {}, policy: {} }, 'OAO_ERR_INVALID_ARGUMENT', 'store'],
      [{ runs: [events], policy: {}, filter: { status: 'FAILED' } }, 'OAO_ERR_INVALID_ARGUMENT', 'filter.status'],
      [{ runs: [events], policy: {}, filter: { since: '7d' } }, 'OAO_ERR_INVALID_ARGUMENT', 'filter.since'],
      [{ runs: [events], policy: {}, filter: { agentName: 3 } }, 'OAO_ERR_INVALID_ARGUMENT', 'filter.agentName'],
    ];
    for (const [options, code, field] of attempts) {
      const error = await whatIf(options as never).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(OaoError.isInstance(error), JSON.stringify(options)?.slice(0, 80)).toBe(true);
      expect((error as OaoError).code).toBe(code);
      if (field !== undefined) expect((error as OaoError).details?.field).toBe(field);
    }
  });

  it('refuses a damaged log with OAO_ERR_LOG_CORRUPT naming the run and seq', async () => {
    const events = await record({ agent: (t: string) => t, task: 't' });
    const id = events[0]?.executionId;
    const gap = [...events.slice(0, 3), ...events.slice(4)];
    await expect(whatIf({ runs: [gap], policy: {} })).rejects.toMatchObject({ code: 'OAO_ERR_LOG_CORRUPT', details: { executionId: id, seq: 3 } });
    const damaged = events.map((e) => (e.seq === 2 ? { ...e, type: 'NOT_AN_EVENT' } : e)) as unknown as OaoEvent[];
    await expect(whatIf({ runs: [damaged], policy: {} })).rejects.toMatchObject({ code: 'OAO_ERR_LOG_CORRUPT', details: { executionId: id, seq: 2, field: 'runs.0.2' } });
    await expect(whatIf({ runs: [events.slice(1)], policy: {} })).rejects.toMatchObject({ code: 'OAO_ERR_LOG_CORRUPT' });
  });

  it('filters logs passed in like stored runs, and answers JSON-safe results', async () => {
    const a = await record({ agent: { name: 'a', invoke: (t: string) => t }, task: 't' });
    const b = await record({ agent: { name: 'b', invoke: (t: string) => t }, task: 't' });
    const result = await whatIf({ runs: [a, b], policy: { maxSteps: 1 }, filter: { agentName: 'b' } });
    expect(result.runs.map((r) => r.agentName)).toEqual(['b']);
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
    // A JSON round trip of the logs (a file, a request body) evaluates the same.
    expect(await whatIf({ runs: JSON.parse(JSON.stringify([a, b])) as OaoEvent[][], policy: {} })).toMatchObject({ totals: { runs: 2, same: 2 } });
  });

  it('runs the example of its documentation', async () => {
    const store = createMemoryStore();
    await new Orchestrator({ store }).run({
      agent: {
        invoke: (task: string, ctx: AgentContext) => {
          ctx.usage(300);
          return task;
        },
        review: (result: { step: number }) => ({ done: result.step === 3 }),
      },
      task: 'summarize',
    });
    const { runs, totals } = await whatIf({ store, policy: { maxTokens: 500 } });
    expect(runs[0]?.same).toBe(false);
    expect(runs[0]?.wouldStop?.rule).toBe('max_tokens');
    expect(totals.saved).toEqual({ steps: 1, tokens: 300, toolCalls: 0 });
  });
});

describe('whatIf on random runs (property)', () => {
  type Action =
    | { kind: 'tool'; name: 'search' | 'fetch' }
    | { kind: 'usage'; tokens: number }
    | { kind: 'model'; tokens: number }
    | { kind: 'tick'; ms: number }
    | { kind: 'flaky' };

  interface Script {
    readonly steps: readonly (readonly Action[])[];
    readonly policy: { maxSteps: number; maxTokens: number; maxToolCalls: number; timeoutMs: number; retries: number; fetchCalls: number | null; denyFetch: boolean };
  }

  const action: fc.Arbitrary<Action> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('tool' as const), name: fc.constantFrom('search' as const, 'search' as const, 'fetch' as const) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('usage' as const), tokens: fc.integer({ min: 0, max: 300 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('model' as const), tokens: fc.integer({ min: 0, max: 300 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 200 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'flaky' as const }) },
  );

  const script: fc.Arbitrary<Script> = fc.record({
    steps: fc.array(fc.array(action, { maxLength: 5 }), { minLength: 1, maxLength: 5 }),
    policy: fc.record({
      maxSteps: fc.integer({ min: 1, max: 6 }),
      maxTokens: fc.integer({ min: 0, max: 1_500 }),
      maxToolCalls: fc.integer({ min: 0, max: 8 }),
      timeoutMs: fc.integer({ min: 50, max: 1_000 }),
      retries: fc.integer({ min: 0, max: 2 }),
      fetchCalls: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
      denyFetch: fc.boolean(),
    }),
  });

  async function runScript(s: Script): Promise<readonly OaoEvent[]> {
    const clock = simulatedClock();
    const attempts = new Map<number, number>();
    const agent = {
      name: 'scripted',
      async invoke(_input: unknown, ctx: AgentContext) {
        const index = ctx.step - 1;
        const attempt = (attempts.get(index) ?? 0) + 1;
        attempts.set(index, attempt);
        for (const a of s.steps[Math.min(index, s.steps.length - 1)] ?? []) {
          if (a.kind === 'tool') await ctx.callTool(a.name, { index }).catch(() => undefined);
          else if (a.kind === 'usage') ctx.usage(a.tokens);
          else if (a.kind === 'tick') clock.increment(a.ms);
          else if (a.kind === 'flaky' && attempt === 1) throw new Error(`step ${ctx.step} failed once`);
          else if (a.kind === 'model') {
            let call;
            try {
              call = ctx.beginModelCall({ model: 'fake', input: index });
            } catch {
              continue;
            }
            await Promise.resolve();
            call.end('answer', { input: a.tokens, output: 1 });
          }
        }
        return { output: `out ${index}` };
      },
      review: (result: { step: number }) => ({ done: result.step >= s.steps.length }),
    };
    const p = s.policy;
    const handle = new Orchestrator({
      clock,
      policy: {
        maxSteps: p.maxSteps,
        maxTokens: p.maxTokens,
        maxToolCalls: p.maxToolCalls,
        timeoutMs: p.timeoutMs,
        tools: { deny: p.denyFetch ? ['fetch'] : [], maxCalls: p.fetchCalls === null ? {} : { fetch: p.fetchCalls } },
        retry: { maxRetries: p.retries, initialDelayMs: 20, maxDelayMs: 40 },
      },
    }).start({ agent, task: 'go', tools });
    let done = false;
    void handle.report.then(() => (done = true));
    for (let i = 0; i < 30 && !done; i++) {
      await Promise.resolve();
      if (i % 6 === 5) clock.increment(15);
    }
    if (!done) clock.increment(p.timeoutMs + 100);
    await handle.report;
    return handle.events();
  }

  /** The counters once the log is folded up to (and, for a usage report, including) the stop. */
  function countsAtStop(events: readonly OaoEvent[], seq: number) {
    const includes = events[seq]?.type === 'TOKEN_USAGE';
    // A stop where the recording ended counts what the ending charged after it (calls it left running).
    const ending = ['POLICY_VIOLATION', 'EXECUTION_TIMEOUT', 'EXECUTION_CANCELLED', 'EXECUTION_FAILED'].includes(events[seq]?.type ?? '');
    const state = foldRun(ending ? events : events.slice(0, includes ? seq + 1 : seq));
    return { steps: state?.steps ?? 0, tokens: state?.tokens.total ?? 0, toolCalls: state?.toolCalls ?? 0 };
  }

  it('says same for every run under its own policy; below a run\'s usage, where it stops and what that saves', { timeout: 120_000 }, async () => {
    const endings = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(script, fc.double({ min: 0, max: 0.999, noNaN: true }), async (s, fraction) => {
        const events = await runScript(s);
        const final = foldRun(events);
        const report = final?.report;
        expect(report).toBeDefined();
        if (report === undefined || final === undefined) return;
        const ending = `${report.termination.reason}${report.termination.rule === undefined ? '' : `:${report.termination.rule}`}`;
        endings.set(ending, (endings.get(ending) ?? 0) + 1);

        const own = recordedPolicy(events);
        for (const policy of [own, asOptions(own.limits)]) {
          const run = await one(events, policy);
          expect(run.same, `${ending}: ${run.reason ?? ''}`).toBe(true);
          expect(run.saved).toEqual(ZERO);
        }

        const recorded = { steps: final.steps, tokens: final.tokens.total, toolCalls: final.toolCalls };
        const narrower: PolicyOptions[] = [];
        if (recorded.tokens > 0) narrower.push({ maxTokens: Math.floor(recorded.tokens * fraction) });
        if (recorded.steps > 1) narrower.push({ maxSteps: 1 + Math.floor((recorded.steps - 1) * fraction) });
        if (recorded.toolCalls > 0) narrower.push({ maxToolCalls: Math.floor(recorded.toolCalls * fraction) });
        const verdicts: WhatIfRun[] = [];
        for (const override of narrower) {
          const run = await one(events, asOptions(own.limits, override));
          verdicts.push(run);
          expect(run.wouldStop, JSON.stringify(override)).not.toBeNull();
          const stop = run.wouldStop!;
          expect(stop.seq).toBeLessThan(events.length);
          const at = countsAtStop(events, stop.seq);
          expect({
            steps: at.steps + run.saved.steps,
            tokens: at.tokens + run.saved.tokens,
            toolCalls: at.toolCalls + run.saved.toolCalls,
          }).toEqual(recorded);
          // The stop is within the new limit: what was spent up to it does not exceed it (a
          // crossing usage report counts, as it was spent before it was reported).
          if ('maxSteps' in override) expect(at.steps).toBeLessThanOrEqual(override.maxSteps!);
          if ('maxToolCalls' in override) expect(at.toolCalls).toBeLessThanOrEqual(override.maxToolCalls!);
          expect(run.same).toBe(run.saved.steps === 0 && run.saved.tokens === 0 && run.saved.toolCalls === 0 ? run.same : false);
        }
        const all = await whatIf({ runs: narrower.map(() => events), policy: asOptions(own.limits) });
        expect(all.totals.runs).toBe(narrower.length);
        const sum = verdicts.reduce((acc, v) => ({ steps: acc.steps + v.saved.steps, tokens: acc.tokens + v.saved.tokens, toolCalls: acc.toolCalls + v.saved.toolCalls }), ZERO);
        const summed = await Promise.all(narrower.map((override) => whatIf({ runs: [events], policy: asOptions(own.limits, override) })));
        expect(summed.reduce((acc, r) => ({ steps: acc.steps + r.totals.saved.steps, tokens: acc.tokens + r.totals.saved.tokens, toolCalls: acc.toolCalls + r.totals.saved.toolCalls }), ZERO)).toEqual(sum);
      }),
      { numRuns: 300 },
    );
    // The generator reaches the ways a policy can end a run, and the others.
    for (const ending of ['completed', 'timeout', 'error', 'policy_violation:max_steps', 'policy_violation:max_tokens', 'policy_violation:max_tool_calls']) {
      expect(endings.get(ending) ?? 0, `${ending} in ${JSON.stringify([...endings])}`).toBeGreaterThan(0);
    }
  });
});
