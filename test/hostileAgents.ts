import assert from 'node:assert/strict';
import { SimulatedClock } from 'xstate';
import {
  Orchestrator,
  type AgentContext,
  type AgentLike,
  type ExecutionReport,
  type OaoEvent,
  type PolicyOptions,
  type ToolSet,
} from '../src/index.js';

/**
 * Hostile agents as a table: what each does, how its run must end, and which limits must have held.
 * Every run is also checked for the invariants that hold for any agent: a schema-valid, JSON-safe
 * report; gap-free event numbering ending in EXECUTION_COMPLETE; and counters within the policy on a
 * SUCCESS report (time included).
 */
export interface HostileCase {
  readonly kind: string;
  readonly agent: (spy: Spy) => AgentLike;
  readonly tools?: (spy: Spy) => ToolSet;
  readonly policy?: PolicyOptions;
  /** Moves simulated time while the run is live (the clock's timers fire). */
  readonly advance?: number;
  readonly status: 'SUCCESS' | 'FAILED';
  readonly reason: ExecutionReport['termination']['reason'];
  readonly rule?: string;
  readonly held?: (report: ExecutionReport, spy: Spy) => void;
}

export interface Spy {
  calls: number;
  bodies: number;
  /** An iteration cap: a runaway agent throws past it, so a broken limit fails instead of looping. */
  tick(cap?: number): void;
}

export function newSpy(): Spy {
  return {
    calls: 0,
    bodies: 0,
    tick(cap = 50) {
      this.calls += 1;
      if (this.calls > cap) throw new Error(`RUNAWAY: called ${this.calls} times`);
    },
  };
}

export const POLICY: PolicyOptions = {
  maxSteps: 3,
  maxTokens: 500,
  maxToolCalls: 4,
  timeoutMs: 1_000,
  tools: { deny: ['shell'], maxCalls: { search: 2 } },
  // Retries on, so that every agent error also goes through the retry guard.
  retry: { maxRetries: 2, initialDelayMs: 1, maxDelayMs: 1 },
};

const hang = (ctx: AgentContext) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));

export const hostileCases: HostileCase[] = [
  {
    kind: 'synchronous runaway: review never says done',
    agent: (spy) => ({ invoke: () => (spy.tick(), 'again'), review: () => ({ done: false }) }),
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'max_steps',
    held: (r, spy) => assert.deepEqual([r.totalSteps, spy.calls], [3, 3]),
  },
  {
    kind: 'asynchronous runaway',
    agent: (spy) => ({ invoke: async () => (spy.tick(), 'again'), review: async () => ({ done: false, input: 'more' }) }),
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'max_steps',
    held: (_r, spy) => assert.equal(spy.calls, 3),
  },
  {
    kind: 'tool spammer',
    agent: (spy) => async (_t: string, ctx: AgentContext) => {
      for (;;) {
        spy.tick();
        await ctx.tools.lookup!({});
      }
    },
    tools: (spy) => ({ lookup: () => ++spy.bodies }),
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'max_tool_calls',
    held: (r, spy) => assert.deepEqual([spy.bodies, r.toolUsage.total], [4, 4]),
  },
  {
    kind: 'per-tool spammer',
    agent: (spy) => async (_t: string, ctx: AgentContext) => {
      for (;;) {
        spy.tick();
        await ctx.tools.search!({ q: 'x' });
      }
    },
    tools: (spy) => ({ search: () => ++spy.bodies }),
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'tool_max_calls',
    held: (_r, spy) => assert.equal(spy.bodies, 2),
  },
  {
    kind: 'denied tool, error swallowed',
    agent: () => async (_t: string, ctx: AgentContext) => {
      try {
        await ctx.tools.shell!({ cmd: 'rm -rf /' });
      } catch {
        // pretend nothing happened
      }
      return 'all good';
    },
    tools: (spy) => ({ shell: () => ++spy.bodies }),
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'tool_denied',
    held: (_r, spy) => assert.equal(spy.bodies, 0),
  },
  {
    kind: 'unregistered tool named like a prototype member',
    agent: () => async (_t: string, ctx: AgentContext) => {
      try {
        await ctx.callTool('constructor', {});
      } catch (error) {
        return String((error as { code?: string }).code);
      }
      return 'ran';
    },
    tools: () => ({ search: () => 'r' }),
    status: 'SUCCESS',
    reason: 'completed',
    held: (r) => assert.equal(r.finalOutput, 'OAO_ERR_UNKNOWN_TOOL'),
  },
  {
    kind: 'token burner through ctx.usage()',
    // Synchronous code cannot be interrupted: the agent keeps calling, the run stops charging.
    agent: (spy) => (_t: string, ctx: AgentContext) => {
      for (let i = 0; i < 20; i++) {
        spy.tick();
        ctx.usage(200);
      }
      return 'spent it all';
    },
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'max_tokens',
    held: (r) => assert.equal(r.tokenUsage.total, 600),
  },
  {
    kind: 'token burner through step output',
    agent: (spy) => ({ invoke: () => (spy.tick(), { output: 'x', usage: 300 }), review: () => ({ done: false }) }),
    status: 'FAILED',
    reason: 'policy_violation',
    rule: 'max_tokens',
    held: (r) => assert.equal(r.totalSteps, 2),
  },
  {
    kind: 'overflowing usage report',
    agent: () => (_t: string, ctx: AgentContext) => {
      ctx.usage({ input: 1e308, output: 1e308 });
      return 'unreachable';
    },
    status: 'FAILED',
    reason: 'error',
    held: (r) => assert.deepEqual([r.error?.code, r.tokenUsage.total], ['OAO_ERR_INVALID_ARGUMENT', 0]),
  },
  {
    kind: 'hung agent that ignores its signal',
    agent: () => () => new Promise(() => {}),
    advance: 1_001,
    status: 'FAILED',
    reason: 'timeout',
  },
  {
    kind: 'hung agent that honours its signal',
    agent: () => (_t: string, ctx: AgentContext) => hang(ctx),
    advance: 1_001,
    status: 'FAILED',
    reason: 'timeout',
  },
  { kind: 'throws an Error', agent: () => () => { throw new Error('boom'); }, status: 'FAILED', reason: 'error' },
  { kind: 'throws a string', agent: () => () => { throw 'boom'; }, status: 'FAILED', reason: 'error' },
  { kind: 'throws null', agent: () => () => { throw null; }, status: 'FAILED', reason: 'error' },
  { kind: 'rejects with undefined', agent: () => () => Promise.reject(undefined), status: 'FAILED', reason: 'error' },
  { kind: 'throws a symbol', agent: () => () => { throw Symbol('boom'); }, status: 'FAILED', reason: 'error' },
  {
    kind: 'throws a Proxy that traps everything',
    agent: () => () => {
      throw new Proxy({}, { get: () => { throw new Error('trap'); }, getPrototypeOf: () => { throw new Error('trap'); } });
    },
    status: 'FAILED',
    reason: 'error',
  },
  {
    kind: 'thenable whose then throws',
    agent: () => () => ({ then: () => { throw new Error('then'); } }),
    status: 'FAILED',
    reason: 'error',
  },
  {
    kind: 'retryable getter that throws, with retries on',
    agent: () => () => {
      throw Object.defineProperty(new Error('getter'), 'retryable', { get: () => { throw new Error('no'); } });
    },
    status: 'FAILED',
    reason: 'error',
    held: (r) => assert.equal(r.termination.message, 'getter'),
  },
  { kind: 'returns undefined', agent: () => () => undefined, status: 'FAILED', reason: 'error' },
  { kind: 'returns a function', agent: () => () => () => 1, status: 'FAILED', reason: 'error' },
  { kind: 'returns a bigint', agent: () => () => 10n, status: 'FAILED', reason: 'error' },
  { kind: 'returns NaN', agent: () => () => Number.NaN, status: 'FAILED', reason: 'error' },
  {
    kind: 'returns a cycle',
    agent: () => () => {
      const a: Record<string, unknown> = {};
      a.self = a;
      return { output: a };
    },
    status: 'FAILED',
    reason: 'error',
  },
  {
    kind: 'output whose toJSON throws',
    agent: () => () => ({ output: { toJSON: () => { throw new Error('toJSON'); } } }),
    status: 'FAILED',
    reason: 'error',
  },
  { kind: 'review answers garbage', agent: () => ({ invoke: () => 'x', review: () => 'yes' as never }), status: 'FAILED', reason: 'error' },
  {
    kind: 'review rewrites the recorded output',
    agent: () => ({
      invoke: () => ({ output: { ok: true } }),
      review: (result: { output: unknown }) => {
        (result.output as { ok: unknown }).ok = 10n;
        return { done: true };
      },
    }),
    status: 'FAILED',
    reason: 'error',
    held: (r) => assert.deepEqual(r.finalOutput, { ok: true }),
  },
  {
    kind: 'tries to raise its own budget through ctx',
    agent: () => (_t: string, ctx: AgentContext) => {
      (ctx.budget.tokens as { limit: number }).limit = 1e9;
      return 'raised';
    },
    status: 'FAILED',
    reason: 'error',
  },
  {
    kind: 'replaces a governed tool on ctx.tools',
    agent: () => (_t: string, ctx: AgentContext) => {
      (ctx.tools as Record<string, unknown>).search = () => 'ungoverned';
      return 'replaced';
    },
    tools: () => ({ search: () => 'r' }),
    status: 'FAILED',
    reason: 'error',
  },
  { kind: 'plan throws', agent: () => ({ plan: () => { throw new Error('plan'); }, invoke: () => 'x' }), status: 'FAILED', reason: 'error' },
  {
    kind: 'tool result and arguments JSON cannot hold',
    agent: () => async (_t: string, ctx: AgentContext) => {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await ctx.tools.weird!(cyclic);
      return 'survived';
    },
    tools: () => ({ weird: () => 10n }),
    status: 'SUCCESS',
    reason: 'completed',
  },
  {
    kind: 'spends from a detached callback after the run ended',
    agent: () => (_t: string, ctx: AgentContext) => {
      queueMicrotask(() => ctx.usage(10_000));
      void Promise.resolve().then(() => ctx.callTool('search', {})).catch(() => {});
      return 'left early';
    },
    tools: (spy) => ({ search: () => ++spy.bodies }),
    status: 'SUCCESS',
    reason: 'completed',
    held: (r, spy) => assert.deepEqual([r.tokenUsage.total, spy.bodies], [0, 0]),
  },
  {
    kind: 'transient failures within the retry budget',
    agent: (spy) => () => {
      spy.tick();
      if (spy.calls < 3) throw new Error('flaky');
      return 'recovered';
    },
    status: 'SUCCESS',
    reason: 'completed',
    held: (r, spy) => assert.deepEqual([r.totalSteps, spy.calls], [1, 3]),
  },
];

/** Runs one case on a simulated clock: its deadline and retry backoff fire without waiting. */
export async function runHostileCase(c: HostileCase): Promise<{ report: ExecutionReport; events: readonly OaoEvent[]; spy: Spy }> {
  const spy = newSpy();
  const clock = new SimulatedClock();
  const orch = new Orchestrator({ clock, policy: POLICY, onHookError: () => {} });
  const handle = orch.start({ agent: c.agent(spy), task: 'attack', ...(c.tools ? { tools: c.tools(spy) } : {}), ...(c.policy ? { policy: c.policy } : {}) });
  if (c.advance !== undefined) {
    await Promise.resolve();
    clock.increment(c.advance);
  }
  let finished = false;
  void handle.report.then(() => (finished = true));
  // Retry backoff runs on the simulated clock: give it ticks while the run is live.
  for (let i = 0; i < 20 && !finished; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    clock.increment(1);
  }
  const report = await handle.report;
  // Detached callbacks get their chance to misbehave before the checks.
  await new Promise((resolve) => setImmediate(resolve));
  return { report, events: handle.events(), spy };
}
