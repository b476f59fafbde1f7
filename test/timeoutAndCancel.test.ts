import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { Orchestrator, type AgentContext } from '../src/index.js';
import { flush, settlesAtOnce, types } from './helpers.js';

/** An agent that hangs forever and ignores its signal, but remembers it. */
function hungAgent() {
  const seen: { signal?: AbortSignal; lateResult?: () => void } = {};
  const agent = {
    invoke(_: unknown, ctx: AgentContext) {
      seen.signal = ctx.signal;
      return new Promise((resolve) => {
        seen.lateResult = () => resolve('too late');
      });
    },
  };
  return { agent, seen };
}

describe('timeouts', () => {
  it('fails a hung agent with reason timeout at the deadline (simulated clock)', async () => {
    const clock = new SimulatedClock();
    const orch = new Orchestrator({ clock, policy: { timeoutMs: 5_000 } });
    const { agent, seen } = hungAgent();
    const handle = orch.start({ agent, task: 't' });
    let settled = false;
    void handle.report.then(() => (settled = true));
    clock.increment(4_999);
    await flush();
    expect(settled).toBe(false);
    expect(seen.signal?.aborted).toBe(false);
    clock.increment(1);
    // Final at once, although the agent ignores its signal and never settles.
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.status).toBe('FAILED');
    expect(report.termination).toMatchObject({ reason: 'timeout' });
    expect(report.error?.code).toBe('OAO_ERR_TIMEOUT');
    expect(report.executionTimeMs).toBe(5_000);
    expect(seen.signal?.aborted).toBe(true);
    expect((seen.signal?.reason as { code: string }).code).toBe('OAO_ERR_TIMEOUT');
    // The late result is dropped: the report and the event record do not change.
    const before = handle.events().length;
    seen.lateResult?.();
    await flush();
    expect(handle.events().length).toBe(before);
    expect(report.finalOutput).toBe(null);
  });

  it('arms a real timer on the system clock: a hung agent fails at its deadline', async () => {
    // The simulated-clock test above proves the timing; this one proves the default clock's real
    // timer is armed at all. The upper bound is only a generous cancellation deadline.
    const orch = new Orchestrator({ policy: { timeoutMs: 100 } });
    const { agent, seen } = hungAgent();
    const started = performance.now();
    const report = await orch.run({ agent, task: 't' });
    const elapsed = performance.now() - started;
    expect(report.termination.reason).toBe('timeout');
    expect(report.error?.code).toBe('OAO_ERR_TIMEOUT');
    expect(seen.signal?.aborted).toBe(true);
    expect(report.executionTimeMs).toBeGreaterThanOrEqual(99);
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('leaves no timer behind once a run finishes', async () => {
    const clock = new SimulatedClock();
    const orch = new Orchestrator({ clock });
    await orch.run({ agent: { invoke: () => 'quick' }, task: 't' });
    expect((clock as unknown as { timeouts: Map<unknown, unknown> }).timeouts.size).toBe(0);
  });
});

describe('cancellation', () => {
  it('handle.cancel() aborts the running step and ends the run cancelled', async () => {
    const orch = new Orchestrator();
    const { agent, seen } = hungAgent();
    const handle = orch.start({ agent, task: 't' });
    await flush();
    handle.cancel('user pressed stop');
    expect(await settlesAtOnce(handle.report)).toBe(true);
    const report = await handle.report;
    expect(report.status).toBe('FAILED');
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'user pressed stop' });
    expect(report.error?.code).toBe('OAO_ERR_CANCELLED');
    expect(seen.signal?.aborted).toBe(true);
    expect(types(handle.events())).toContain('EXECUTION_CANCELLED');
    handle.cancel('again');
    expect((await handle.report).termination.message).toBe('user pressed stop');
  });

  it('an AbortSignal option cancels the run, and the listener is removed afterwards', async () => {
    const controller = new AbortController();
    const orch = new Orchestrator();
    const { agent, seen } = hungAgent();
    const pending = orch.run({ agent, task: 't', signal: controller.signal });
    await flush();
    controller.abort(new Error('shutting down'));
    expect(await settlesAtOnce(pending)).toBe(true);
    const report = await pending;
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'shutting down' });
    expect(seen.signal?.aborted).toBe(true);
  });

  it('an already-aborted signal ends the run before the agent is called', async () => {
    let calls = 0;
    const report = await new Orchestrator().run({
      agent: { invoke: () => ++calls },
      task: 't',
      signal: AbortSignal.abort('not today'),
    });
    expect(calls).toBe(0);
    expect(report.termination).toEqual({ reason: 'cancelled', message: 'not today' });
    expect(report.stateHistory.map((s) => s.state)).toEqual(['INIT', 'FAILED']);
  });

  it('cancellation reaches an in-flight tool: its signal aborts and the agent sees the call end', async () => {
    let toolSignal: AbortSignal | undefined;
    let agentSaw: any;
    const orch = new Orchestrator();
    const handle = orch.start({
      agent: {
        async invoke(_: unknown, ctx: AgentContext) {
          try {
            await ctx.tools.slow!();
          } catch (e) {
            agentSaw = e;
          }
          return 'x';
        },
      },
      task: 't',
      tools: {
        slow: (_args: unknown, { signal }: { signal: AbortSignal }) => {
          toolSignal = signal;
          return new Promise(() => {});
        },
      },
    });
    await flush();
    handle.cancel();
    expect(await settlesAtOnce(handle.report)).toBe(true);
    await flush();
    expect(toolSignal?.aborted).toBe(true);
    expect(agentSaw?.code).toBe('OAO_ERR_CANCELLED');
  });

  it('cancelling a finished run changes nothing', async () => {
    const handle = new Orchestrator().start({ agent: { invoke: () => 'done' }, task: 't' });
    const report = await handle.report;
    handle.cancel();
    expect(report.status).toBe('SUCCESS');
    expect(handle.events().at(-1)?.type).toBe('EXECUTION_COMPLETE');
  });
});
