import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { canonicalJson, MultiAgentOrchestrator, Orchestrator, type AgentContext, type OaoEvent } from '../src/index.js';
import { applyEvent, foldRun, type RunFold } from '../src/log/foldRun.js';
import { createMemoryStore } from '../src/store/createMemoryStore.js';
import { waitFor } from './helpers.js';

/**
 * The report is a pure fold over the run's events: for any run, folding its log gives exactly
 * (canonical JSON) the report the live run returned.
 */

type Action =
  | { kind: 'tool'; name: 'search' | 'shell' | 'missing'; fails: boolean; async: boolean }
  | { kind: 'usage'; tokens: number }
  | { kind: 'model'; tokens: number; fails: boolean }
  | { kind: 'throw'; retryable: boolean }
  | { kind: 'hang' }
  | { kind: 'tick'; ms: number };

interface Script {
  readonly plan: boolean;
  readonly steps: readonly (readonly Action[])[];
  readonly outputUsage: number;
  readonly policy: { maxSteps: number; maxTokens: number; maxToolCalls: number; timeoutMs: number; retries: number };
  readonly cancelAfterMicrotasks: number | null;
  readonly advanceMs: number;
}

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('tool' as const), name: fc.constantFrom('search' as const, 'search' as const, 'shell' as const, 'missing' as const), fails: fc.boolean(), async: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('usage' as const), tokens: fc.integer({ min: 0, max: 400 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('model' as const), tokens: fc.integer({ min: 0, max: 400 }), fails: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('throw' as const), retryable: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 300 }) }) },
);

const script: fc.Arbitrary<Script> = fc.record({
  plan: fc.boolean(),
  steps: fc.array(fc.array(action, { maxLength: 5 }), { minLength: 1, maxLength: 5 }),
  outputUsage: fc.integer({ min: 0, max: 300 }),
  policy: fc.record({
    maxSteps: fc.integer({ min: 1, max: 5 }),
    maxTokens: fc.integer({ min: 0, max: 1_500 }),
    maxToolCalls: fc.integer({ min: 0, max: 6 }),
    timeoutMs: fc.integer({ min: 50, max: 1_000 }),
    retries: fc.integer({ min: 0, max: 2 }),
  }),
  cancelAfterMicrotasks: fc.option(fc.integer({ min: 0, max: 30 }), { nil: null }),
  advanceMs: fc.integer({ min: 0, max: 1_200 }),
});

function agentFor(s: Script, clock: SimulatedClock) {
  const attempts = new Map<number, number>();
  const runStep = async (stepIndex: number, ctx: AgentContext): Promise<unknown> => {
    const actions = s.steps[Math.min(stepIndex, s.steps.length - 1)] ?? [];
    const attempt = (attempts.get(stepIndex) ?? 0) + 1;
    attempts.set(stepIndex, attempt);
    for (const a of actions) {
      switch (a.kind) {
        case 'tool':
          try {
            await ctx.callTool(a.name, { q: stepIndex, fails: a.fails, async: a.async });
          } catch {
            // the agent carries on; violations still end the run
          }
          break;
        case 'usage':
          ctx.usage(a.tokens);
          break;
        case 'model': {
          let call;
          try {
            call = ctx.beginModelCall({ model: 'fake', input: `prompt ${stepIndex}` });
          } catch {
            break;
          }
          await Promise.resolve();
          if (a.fails) call.fail(new Error('model down'), { input: a.tokens, output: 0 });
          else call.end({ text: 'answer' }, { input: a.tokens, output: 1 });
          break;
        }
        case 'throw':
          // Only the first attempt fails, so a retried step can succeed.
          if (attempt === 1) throw Object.assign(new Error(`step ${stepIndex} failed`), { retryable: a.retryable });
          break;
        case 'hang':
          await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
          break;
        case 'tick':
          clock.increment(a.ms);
          break;
      }
    }
    return { output: { step: stepIndex, text: `out ${stepIndex}` }, usage: s.outputUsage };
  };
  return {
    name: 'scripted',
    ...(s.plan ? { plan: (task: string) => `plan for ${task}` } : {}),
    invoke: (_input: unknown, ctx: AgentContext) => runStep(ctx.step - 1, ctx),
    review: (result: { step: number }) => ({ done: result.step >= s.steps.length, input: `next ${result.step}` }),
  };
}

const tools = {
  search: async (args: { q: number; fails: boolean; async: boolean }) => {
    if (args.async) await Promise.resolve();
    if (args.fails) throw new Error('search failed');
    return { hits: [args.q] };
  },
  shell: () => 'should never run',
};

async function runScript(s: Script): Promise<{ live: unknown; events: readonly OaoEvent[] }> {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const orch = new Orchestrator({
    clock,
    policy: {
      maxSteps: s.policy.maxSteps,
      maxTokens: s.policy.maxTokens,
      maxToolCalls: s.policy.maxToolCalls,
      timeoutMs: s.policy.timeoutMs,
      tools: { deny: ['shell'], maxCalls: { search: 3 } },
      retry: { maxRetries: s.policy.retries, initialDelayMs: 5, maxDelayMs: 5 },
    },
  });
  const handle = orch.start({ agent: agentFor(s, clock), task: 'fold me', tools });
  let done = false;
  void handle.report.then(() => (done = true));
  for (let i = 0; i < 40 && !done; i++) {
    await Promise.resolve();
    if (s.cancelAfterMicrotasks !== null && i === s.cancelAfterMicrotasks) handle.cancel('changed my mind');
    if (i % 8 === 7) clock.increment(Math.ceil(s.advanceMs / 4));
  }
  // Whatever is still waiting (a hung step, a retry backoff) ends at the deadline.
  if (!done) clock.increment(s.policy.timeoutMs + 10);
  const live = await handle.report;
  return { live, events: handle.events() };
}

describe('the report is a fold over the log', () => {
  it('equals the live report for 1,000 random runs', { timeout: 120_000 }, async () => {
    const endings = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(script, async (s) => {
        const { live, events } = await runScript(s);
        const ending = `${(live as { termination: { reason: string } }).termination.reason}`;
        endings.set(ending, (endings.get(ending) ?? 0) + 1);
        const folded = foldRun(events);
        expect(folded?.report).toBeDefined();
        expect(canonicalJson(folded?.report)).toBe(canonicalJson(live));
        // The same code re-run against the log (tool and model results served from it) agrees.
        const verified = await new Orchestrator().replay(events, { verify: true, agent: agentFor(s, new SimulatedClock()) });
        expect(canonicalJson(verified)).toBe(canonicalJson(live));
        // The counters every event carries are the fold's counters before it.
        let state = undefined as ReturnType<typeof foldRun>;
        for (const event of events) {
          if (state !== undefined && event.type !== 'EXECUTION_COMPLETE') {
            expect(event.counters.toolCalls).toBeGreaterThanOrEqual(state.toolCalls);
          }
          state = applyEvent(state, event);
        }
      }),
      { numRuns: 1_000 },
    );
    // The generator reaches every way a run can end.
    expect([...endings.keys()].sort()).toEqual(['cancelled', 'completed', 'error', 'policy_violation', 'timeout']);
  });

  it('equals the live report with the system clock (one clock reading per recorded time)', async () => {
    const orch = new Orchestrator();
    for (let i = 0; i < 50; i++) {
      const handle = orch.start({
        agent: {
          invoke: async (task: string, ctx: AgentContext) => {
            await ctx.tools.search!({ q: i, fails: false, async: true });
            ctx.usage(3);
            return task;
          },
          review: (r: { step: number }) => ({ done: r.step >= 2 }),
        },
        task: `t${i}`,
        tools,
      });
      const live = await handle.report;
      expect(canonicalJson(foldRun(handle.events())?.report)).toBe(canonicalJson(live));
    }
  });

  it('holds for runs a batch stops from outside (shared budget, fail-fast, never started)', async () => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 2, budget: { maxSteps: 3, maxToolCalls: 2 }, failFast: false });
    const logs = new Map<string, OaoEvent[]>();
    multi.events$.subscribe((event) => {
      if (event.type !== 'RUN_EVENT') return;
      const e = event.payload.event;
      const log = logs.get(e.executionId) ?? [];
      log.push(e);
      logs.set(e.executionId, log);
    });
    const agent = async (task: string, ctx: AgentContext) => {
      await ctx.callTool('search', { q: 1, fails: false, async: true }).catch(() => {});
      return task;
    };
    const reports = await multi.map(agent, ['a', 'b', 'c', 'd', 'e'], { tools });
    for (const report of reports) {
      const log = logs.get(report.executionId) ?? [];
      expect(canonicalJson(foldRun(log)?.report)).toBe(canonicalJson(report));
    }
  });

  it('a log cut short folds to where the run stood, without a report', async () => {
    const handle = new Orchestrator().start({
      agent: async (task: string, ctx: AgentContext) => {
        ctx.usage(7);
        await ctx.tools.search!({ q: 1, fails: false, async: false });
        return task;
      },
      task: 'x',
      tools,
    });
    await handle.report;
    const events = handle.events();
    const cut = events.slice(0, events.findIndex((e) => e.type === 'TOOL_CALL') + 1);
    const state = foldRun(cut);
    expect(state?.report).toBeUndefined();
    expect(state?.state).toBe('EXECUTE');
    expect([state?.steps, state?.tokens.total, state?.toolCalls, state?.seq]).toEqual([1, 7, 1, cut.length]);
  });

  it('refuses a log out of order', () => {
    const events = new Orchestrator().start({ agent: () => 'x', task: 'x' }).events();
    expect(() => foldRun([events[0]!, events[2]!])).toThrow(/Expected event 1/);
    expect(() => foldRun(events.slice(1))).toThrow(/starts with EXECUTION_START/);
  });
});

/** Folds `events` one applyEvent at a time, checking that each call leaves the fold it was given as it was. */
function foldStepByStep(events: readonly OaoEvent[]): RunFold | undefined {
  let state: RunFold | undefined;
  for (const event of events) {
    const before = structuredClone(state);
    const next = applyEvent(state, event);
    expect(state).toEqual(before);
    state = next;
  }
  return state;
}

describe('foldRun and applyEvent are one fold', () => {
  it('folding a whole log gives what folding it event by event gives, for 200 random runs', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(script, async (s) => {
        const { events } = await runScript(s);
        const whole = foldRun(events);
        expect(whole).toEqual(foldStepByStep(events));
        // Every prefix too (a log cut short, as resume and what-if read it).
        const cut = Math.floor(events.length / 2);
        expect(foldRun(events.slice(0, cut))).toEqual(foldStepByStep(events.slice(0, cut)));
      }),
      { numRuns: 200 },
    );
  });

  it('agrees on every prefix of logs with approvals, an unload and resume, a denial and a budget raise', async () => {
    const store = createMemoryStore();
    const sent: unknown[] = [];
    const mailTools = { sendEmail: (args: unknown) => (sent.push(args), 'sent'), search: () => 'found' };
    const orch = new Orchestrator({
      store,
      owner: 'host',
      policy: { maxSteps: 10, tools: { approve: ['sendEmail'] }, onLimit: { maxSteps: 'pause' } },
    });
    const mailer = () => ({
      name: 'mailer',
      async invoke(_task: unknown, ctx: AgentContext) {
        await ctx.callTool('search', { q: 'x' });
        await ctx.callTool('sendEmail', { to: 'a@example.com' });
        await ctx.callTool('sendEmail', { to: 'b@example.com' });
        return 'done';
      },
    });

    // The first call waits while the run leaves the process and comes back (still waiting), then
    // one decision is recorded while nobody holds the run, and the last call is denied live.
    const handle = orch.start({ agent: mailer(), task: 't', tools: mailTools, executionId: 'mail' });
    await waitFor(() => handle.pendingApprovals().length === 1);
    await handle.unload();
    await handle.report.catch(() => undefined);
    const back = await orch.startResumed('mail', { agent: mailer(), tools: mailTools });
    await waitFor(() => back.pendingApprovals().length === 1);
    back.approve('t2', { by: 'erin', args: { to: 'c@example.com' } });
    await waitFor(() => back.pendingApprovals().length === 1 && back.pendingApprovals()[0]!.callId !== 't2');
    await back.unload();
    await back.report.catch(() => undefined);
    await orch.deny('mail', 't3', { by: 'bob', reason: 'no' });
    expect((await orch.resume('mail', { agent: mailer(), tools: mailTools })).termination).toMatchObject({ rule: 'approval_denied' });

    // A step budget that pauses, raised once.
    const paused = orch.start({
      agent: { invoke: (task: string) => task, review: (r: { step: number }) => ({ done: r.step >= 3 }) },
      task: 'p',
      policy: { maxSteps: 2 },
      executionId: 'paused',
    });
    await waitFor(() => paused.actor.getSnapshot().matches({ REVIEW: 'AWAITING_BUDGET' }));
    paused.raise({ maxSteps: 3 }, { by: 'ops' });
    expect((await paused.report).status).toBe('SUCCESS');

    for (const id of ['mail', 'paused']) {
      const events = store.events(id);
      const types = new Set(events.map((e) => e.type));
      for (const type of id === 'mail' ? ['APPROVAL_GRANTED', 'APPROVAL_DENIED', 'EXECUTION_RESUMED'] : ['BUDGET_EXHAUSTED', 'BUDGET_RAISED']) {
        expect(types.has(type as OaoEvent['type'])).toBe(true);
      }
      for (let length = 1; length <= events.length; length++) {
        expect(foldRun(events.slice(0, length))).toEqual(foldStepByStep(events.slice(0, length)));
      }
    }
  });
});
