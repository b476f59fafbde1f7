import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MultiAgentOrchestrator,
  OaoError,
  Orchestrator,
  StrictPolicy,
  type AgentContext,
  type ExecutionReport,
  type OaoEvent,
  type StepResult,
} from '../src/index.js';
import { expectValidEvents, expectValidReport } from './helpers.js';

/** A clock whose time moves only when told, and whose timers never fire on their own. */
function manualClock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    setTimeout: () => ({}),
    clearTimeout: () => {},
    /** Time passes while the event loop is blocked: no timer gets a chance to fire. */
    block(ms: number) {
      now += ms;
    },
  };
}

describe('a shared step budget gates every step, the first one too', () => {
  it('fails the second job of a batch with maxSteps 1 before its body runs', async () => {
    let bodies = 0;
    const agent = {
      invoke: (task: string) => {
        bodies += 1;
        return task;
      },
    };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxSteps: 1 } });
    const reports = await multi.map(agent, ['a', 'b', 'c']);
    expect(bodies).toBe(1);
    expect(reports.map((r) => r.status)).toEqual(['SUCCESS', 'FAILED', 'FAILED']);
    expect(reports[1]?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps', scope: 'shared' });
    expect(reports[1]?.totalSteps).toBe(0);
    expect(reports[2]?.termination).toMatchObject({ reason: 'policy_violation', scope: 'shared' });
    for (const report of reports) expectValidReport(report);
  });

  it('also gates the step after a plan', async () => {
    let bodies = 0;
    const agent = {
      plan: (task: string) => `planned ${task}`,
      invoke: (input: string) => {
        bodies += 1;
        return input;
      },
    };
    const reports = await new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxSteps: 1 } }).map(agent, ['a', 'b']);
    expect(bodies).toBe(1);
    expect(reports[1]?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps', scope: 'shared' });
  });

  it('runs exactly maxSteps step bodies across many concurrent jobs', async () => {
    let bodies = 0;
    const agent = {
      invoke: async (task: number) => {
        bodies += 1;
        await Promise.resolve();
        return task;
      },
    };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 8, budget: { maxSteps: 50 } });
    const reports = await multi.map(agent, Array.from({ length: 400 }, (_, i) => i));
    expect(bodies).toBe(50);
    expect(reports).toHaveLength(400);
    // Runs still in flight when the budget tripped are stopped with the batch (scope 'shared').
    expect(reports.filter((r) => r.status === 'SUCCESS').length).toBeLessThanOrEqual(50);
    expect(reports.filter((r) => r.status === 'FAILED').every((r) => r.termination.scope === 'shared')).toBe(true);
  });
});

describe('a shared token budget counts usage carried in a step output', () => {
  it('fails the run whose output crosses the batch total, and halts the rest', async () => {
    const agent = { invoke: (task: string) => ({ output: task, usage: 100 }) };
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1, budget: { maxTokens: 250 } });
    const reports = await multi.map(agent, ['t1', 't2', 't3', 't4', 't5']);
    expect(reports.map((r) => r.status)).toEqual(['SUCCESS', 'SUCCESS', 'FAILED', 'FAILED', 'FAILED']);
    expect(reports[2]?.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens', scope: 'shared' });
    const spent = reports.reduce((sum, r) => sum + r.tokenUsage.total, 0);
    expect(spent).toBe(300);
  });
});

describe('what leaves a run cannot be changed by others', () => {
  it('gives review a frozen step result: rewriting the output throws into review, the report stays intact', async () => {
    const orch = new Orchestrator();
    const report = await orch.run({
      agent: {
        invoke: () => ({ output: { answer: 42, nested: { list: [1, 2] } } }),
        review: (result: StepResult) => {
          (result.output as { answer: unknown }).answer = 10n;
          return { done: true };
        },
      },
      task: 'x',
    });
    // The reviewer's write fails (frozen), so the run ends in error with the agent's message...
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('error');
    // ...and the recorded output is what the step returned, still serializable.
    expect(report.finalOutput).toEqual({ answer: 42, nested: { list: [1, 2] } });
    expectValidReport(report);
  });

  it('a reviewer that only reads gets the same values', async () => {
    const seen: StepResult[] = [];
    const report = await new Orchestrator().run({
      agent: {
        invoke: () => ({ output: { a: 1 }, usage: 3 }),
        review: (result: StepResult) => {
          seen.push(result);
          return { done: true };
        },
      },
      task: 'x',
    });
    expect(report.status).toBe('SUCCESS');
    expect(seen[0]).toMatchObject({ step: 1, output: { a: 1 }, usage: { input: 0, output: 3, total: 3 } });
    expect(Object.isFrozen(seen[0])).toBe(true);
    expect(Object.isFrozen(seen[0]?.output)).toBe(true);
  });

  it('a hook cannot rewrite the report the caller receives', async () => {
    const orch = new Orchestrator();
    const hookErrors: unknown[] = [];
    const guarded = new Orchestrator({ onHookError: (error) => hookErrors.push(error) });
    for (const o of [orch, guarded]) {
      o.on('EXECUTION_COMPLETE', (event) => {
        const report = event.payload.report as { status: string; termination: unknown };
        report.status = 'SUCCESS';
        report.termination = { reason: 'completed' };
      });
    }
    const failing = { invoke: () => Promise.reject(new Error('boom')) };
    const report = await guarded.run({ agent: failing, task: 'x' });
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'error', message: 'boom' });
    expect(hookErrors).toHaveLength(1);
  });

  it('a subscriber cannot change the events another one sees', async () => {
    const orch = new Orchestrator({ onHookError: () => {} });
    const seen: OaoEvent[] = [];
    orch.events$.subscribe((event) => {
      try {
        (event as { type: string }).type = 'TAMPERED';
      } catch {
        // frozen
      }
    });
    orch.events$.subscribe((event) => seen.push(event));
    const handle = orch.start({
      agent: async (task: string, ctx: AgentContext) => ({ output: String(await ctx.tools.echo!({ task })) }),
      task: 'x',
      tools: { echo: (args: unknown) => args },
    });
    await handle.report;
    expect(seen.map((e) => e.type)).not.toContain('TAMPERED');
    expect(handle.events().map((e) => e.type)).not.toContain('TAMPERED');
    expectValidEvents(seen);
  });

  it('the task recorded in EXECUTION_START is a copy the hooks cannot use to reach the agent', async () => {
    const task = { topic: 'governance' };
    const orch = new Orchestrator();
    orch.on('EXECUTION_START', (event) => {
      expect(() => {
        (event.payload.task as { topic: string }).topic = 'hijacked';
      }).toThrow(TypeError);
    });
    let received: unknown;
    await orch.run({ agent: (input: unknown) => ((received = input), 'ok'), task });
    expect(received).toEqual({ topic: 'governance' });
  });
});

describe('token counts never overflow', () => {
  it('refuses ctx.usage() beyond Number.MAX_SAFE_INTEGER with a typed error', async () => {
    let caught: unknown;
    const report = await new Orchestrator().run({
      agent: (_task: string, ctx: AgentContext) => {
        try {
          ctx.usage({ input: 1e308, output: 1e308 });
        } catch (error) {
          caught = error;
        }
        return 'done';
      },
      task: 'x',
    });
    expect(OaoError.isInstance(caught) && caught.code).toBe('OAO_ERR_INVALID_ARGUMENT');
    expect(report.status).toBe('SUCCESS');
    expect(report.tokenUsage.total).toBe(0);
    expectValidReport(report);
  });

  it('treats such usage in a step output as an invalid output', async () => {
    const report = await new Orchestrator().run({ agent: () => ({ output: 'x', usage: { input: 2 ** 60 } }), task: 'x' });
    expect(report.status).toBe('FAILED');
    expect(report.error?.code).toBe('OAO_ERR_INVALID_AGENT_OUTPUT');
    expectValidReport(report);
  });

  it('ends a run whose running total would pass the safe integers with max_tokens, counters still exact', async () => {
    const big = Number.MAX_SAFE_INTEGER - 10;
    const policy = new StrictPolicy({ maxTokens: Number.MAX_SAFE_INTEGER });
    const report = await new Orchestrator({ policy }).run({
      agent: (_task: string, ctx: AgentContext) => {
        ctx.usage({ output: big });
        ctx.usage({ output: big });
        return 'unreachable';
      },
      task: 'x',
    });
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_tokens' });
    expect(report.tokenUsage.total).toBe(big);
    expect(Number.isSafeInteger(report.tokenUsage.total)).toBe(true);
    expectValidReport(report);
  });
});

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

describe('tools and agents named after Object.prototype members', () => {
  it.each(PROTOTYPE_NAMES)('a per-tool limit on "%s" holds', async (name) => {
    let bodies = 0;
    const report = await new Orchestrator({ policy: { maxToolCalls: 10, tools: { maxCalls: { [name]: 1 } } } }).run({
      agent: async (_task: string, ctx: AgentContext) => {
        for (let i = 0; i < 3; i++) await ctx.callTool(name, { i });
        return 'unreachable';
      },
      task: 'x',
      tools: Object.fromEntries([[name, () => ++bodies]]),
    });
    expect(bodies).toBe(1);
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_max_calls' });
    expect(report.toolUsage.total).toBe(1);
    expect(Object.hasOwn(report.toolUsage.byTool, name)).toBe(true);
    expect(report.toolUsage.byTool[name]).toBe(1);
    expectValidReport(report);
  });

  it.each(PROTOTYPE_NAMES)('an unregistered tool "%s" is unknown, not an inherited function', async (name) => {
    let caught: unknown;
    const report = await new Orchestrator().run({
      agent: async (_task: string, ctx: AgentContext) => {
        try {
          await ctx.callTool(name, {});
        } catch (error) {
          caught = error;
        }
        return 'done';
      },
      task: 'x',
      tools: { search: () => 'r' },
    });
    expect(OaoError.isInstance(caught) && caught.code).toBe('OAO_ERR_UNKNOWN_TOOL');
    expect(report.toolUsage.total).toBe(0);
  });

  it('holds for any tool name: property over Object.prototype names and random strings', async () => {
    const names = fc.oneof(fc.constantFrom(...PROTOTYPE_NAMES), fc.string({ minLength: 1, maxLength: 12 }));
    await fc.assert(
      fc.asyncProperty(names, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 5 }), async (name, limit, attempts) => {
        let bodies = 0;
        const orch = new Orchestrator({ policy: { maxToolCalls: 10, tools: { maxCalls: Object.fromEntries([[name, limit]]) } } });
        const report = await orch.run({
          agent: async (_task: string, ctx: AgentContext) => {
            for (let i = 0; i < attempts; i++) await ctx.tools[name]!({ i });
            return 'ok';
          },
          task: 'x',
          tools: Object.fromEntries([[name, () => ++bodies]]),
        });
        expect(bodies).toBe(Math.min(limit, attempts));
        expect(report.status).toBe(attempts > limit ? 'FAILED' : 'SUCCESS');
        expect(Object.hasOwn(report.toolUsage.byTool, name) ? report.toolUsage.byTool[name] : 0).toBe(bodies);
        expectValidReport(report);
      }),
      { numRuns: 150 },
    );
  });

  it('runMulti keeps an agent named "__proto__" or "constructor" as an ordinary result', async () => {
    const agents = Object.fromEntries([
      ['__proto__', (task: string) => `a ${task}`],
      ['constructor', (task: string) => `b ${task}`],
    ]);
    const results = await new MultiAgentOrchestrator({ maxConcurrency: 2 }).runMulti({ agents, task: 't' });
    expect(Object.keys(results).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(results)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(results, '__proto__')?.value.finalOutput).toBe('a t');
    expect((results.constructor as unknown as ExecutionReport).finalOutput).toBe('b t');
  });

  it('keeps a per-tool limit named "__proto__" when narrowing and hashing', () => {
    const parsed = JSON.parse('{"tools":{"maxCalls":{"__proto__":2,"constructor":1}}}') as object;
    const policy = new StrictPolicy().narrow(parsed);
    expect(Object.keys(policy.limits.tools.maxCalls).sort()).toEqual(['__proto__', 'constructor']);
    expect(policy.canonical).toContain('"__proto__":2');
    const tighter = policy.narrow(JSON.parse('{"tools":{"maxCalls":{"__proto__":1}}}') as object);
    expect(Object.getOwnPropertyDescriptor(tighter.limits.tools.maxCalls, '__proto__')?.value).toBe(1);
  });
});

describe('a result that arrives after the deadline is a timeout', () => {
  it('fails a step that blocked the event loop past the limit (simulated)', async () => {
    const clock = manualClock();
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 200 } });
    const report = await orch.run({
      agent: async () => {
        await Promise.resolve();
        clock.block(600);
        return 'too late';
      },
      task: 'x',
    });
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('timeout');
    expect(report.finalOutput).toBeNull();
  });

  it('fails a synchronous run whose agent blocked past the limit', () => {
    const clock = manualClock();
    const report = new Orchestrator({ clock, policy: { timeoutMs: 200 } }).runSync({
      agent: () => {
        clock.block(201);
        return 'too late';
      },
      task: 'x',
    });
    expect(report.termination.reason).toBe('timeout');
  });

  it('allows a result that arrives exactly at the limit', async () => {
    const clock = manualClock();
    const report = await new Orchestrator({ clock, policy: { timeoutMs: 200 } }).run({
      agent: async () => {
        await Promise.resolve();
        clock.block(200);
        return 'on time';
      },
      task: 'x',
    });
    expect(report.status).toBe('SUCCESS');
    expect(report.executionTimeMs).toBe(200);
  });

  it('never reports SUCCESS with a time over the limit when a real step busy-waits', async () => {
    const report = await new Orchestrator({ policy: { timeoutMs: 50 } }).run({
      agent: async () => {
        await Promise.resolve();
        const until = performance.now() + 150;
        while (performance.now() < until) {
          // blocks the event loop, so the deadline's timer cannot fire
        }
        return 'late';
      },
      task: 'x',
    });
    expect(report.termination.reason).toBe('timeout');
  });

  it('a late error is a timeout too, and so is a late review', async () => {
    const clock = manualClock();
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 100 } });
    const failing = await orch.run({
      agent: async () => {
        await Promise.resolve();
        clock.block(150);
        throw new Error('late failure');
      },
      task: 'x',
    });
    expect(failing.termination.reason).toBe('timeout');
    const reviewing = await orch.run({
      agent: {
        invoke: () => 'fast',
        review: async () => {
          await Promise.resolve();
          clock.block(150);
          return { done: true };
        },
      },
      task: 'x',
    });
    expect(reviewing.termination.reason).toBe('timeout');
  });
});

describe('agent faults are agent errors, never internal errors', () => {
  const retrying = { retry: { maxRetries: 2, initialDelayMs: 0 } };
  const cases: [string, () => unknown][] = [
    [
      'a thrown object whose retryable getter throws',
      () => {
        throw Object.defineProperty(new Error('getter bomb'), 'retryable', {
          get() {
            throw new Error('no');
          },
        });
      },
    ],
    [
      'a thenable whose then throws',
      () => ({
        then() {
          throw new Error('then bomb');
        },
      }),
    ],
    [
      'a then getter that throws',
      () =>
        Object.defineProperty({}, 'then', {
          get() {
            throw new Error('then getter bomb');
          },
        }),
    ],
    [
      'a thrown Proxy',
      () => {
        throw new Proxy(
          {},
          {
            get() {
              throw new Error('proxy bomb');
            },
            getPrototypeOf() {
              throw new Error('proxy bomb');
            },
          },
        );
      },
    ],
    [
      'a rejected promise with an Error whose message getter throws',
      () =>
        Promise.reject(
          Object.defineProperty(new Error(), 'message', {
            get() {
              throw new Error('x');
            },
          }),
        ),
    ],
    ['a thrown symbol', () => Promise.reject(Symbol('s'))],
  ];

  it.each(cases)('%s', async (_name, invoke) => {
    const report = await new Orchestrator({ policy: retrying }).run({ agent: { invoke }, task: 'x' });
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('error');
    expect(report.termination.message).not.toMatch(/Internal error/);
    expect(report.error?.code).toBe('OAO_ERR_AGENT_FAILED');
    expectValidReport(report);
  });

  it('keeps the agent message when a retryable getter throws', async () => {
    const report = await new Orchestrator({ policy: retrying }).run({
      agent: () => {
        throw Object.defineProperty(new Error('getter bomb'), 'retryable', {
          get() {
            throw new Error('no');
          },
        });
      },
      task: 'x',
    });
    expect(report.termination.message).toBe('getter bomb');
    expect(report.totalSteps).toBe(1);
  });
});

describe('small contract gaps', () => {
  it('a late ctx.usage() after the run ended is a no-op, not a throw', async () => {
    let late!: AgentContext;
    const report = await new Orchestrator().run({
      agent: (_task: string, ctx: AgentContext) => {
        late = ctx;
        return 'done';
      },
      task: 'x',
    });
    expect(() => late.usage(10)).not.toThrow();
    expect(report.tokenUsage.total).toBe(0);
  });

  it('run() rejects with a typed error when the task getter throws', async () => {
    const request = Object.defineProperty({ agent: () => 'x' }, 'task', {
      get() {
        throw new Error('task bomb');
      },
    });
    await expect(new Orchestrator().run(request as never)).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_ARGUMENT', details: { field: 'task' } });
  });

  it("run() rejects with a typed error when the agent's name getter throws", async () => {
    const agent = Object.defineProperty({ invoke: () => 'x' }, 'name', {
      get() {
        throw new Error('name bomb');
      },
    });
    await expect(new Orchestrator().run({ agent, task: 'x' })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_AGENT' });
  });

  it('a plan getter that throws is a typed error, not a crash in a guard', async () => {
    const agent = Object.defineProperty({ invoke: () => 'x' }, 'plan', {
      get() {
        throw new Error('plan bomb');
      },
    });
    await expect(new Orchestrator().run({ agent, task: 'x' })).rejects.toMatchObject({ code: 'OAO_ERR_INVALID_AGENT', details: { field: 'agent.plan' } });
  });

  it('handle.cancel(reason) never throws, whatever the reason', async () => {
    const handle = new Orchestrator().start({
      agent: (_task: string, ctx: AgentContext) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      task: 'x',
    });
    const hostile = {
      toString() {
        throw new Error('toString bomb');
      },
    };
    expect(() => handle.cancel(hostile as unknown as string)).not.toThrow();
    const report: ExecutionReport = await handle.report;
    expect(report.termination.reason).toBe('cancelled');
    expectValidReport(report);
  });

  it('a batch cancel with a hostile reason never throws', async () => {
    const multi = new MultiAgentOrchestrator({ maxConcurrency: 1 });
    const handle = multi.submit([{ agent: () => new Promise(() => {}), task: 'x' }]);
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('proxy');
        },
      },
    );
    expect(() => handle.cancel(hostile as unknown as string)).not.toThrow();
    const reports = await handle.reports;
    expect(reports[0]?.termination.reason).toBe('cancelled');
  });
});
