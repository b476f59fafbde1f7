import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { Orchestrator, OaoError, type AgentContext, type OaoEvent } from '../src/index.js';
import { expectValidReport, flush } from './helpers.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

const cyclic: Record<string, unknown> = { name: 'loop' };
cyclic.self = cyclic;

describe('agent errors end the run with reason error and a clear message', () => {
  it.each([
    ['a thrown Error', () => { throw new Error('model exploded'); }, 'OAO_ERR_AGENT_FAILED', /model exploded/],
    ['a thrown non-Error', () => { throw { status: 500 }; }, 'OAO_ERR_AGENT_FAILED', /non-Error value: \{"status":500\}/],
    ['a thrown string', () => { throw 'just a string'; }, 'OAO_ERR_AGENT_FAILED', /"just a string"/],
    ['a rejected promise', () => Promise.reject(new TypeError('bad response')), 'OAO_ERR_AGENT_FAILED', /bad response/],
    ['undefined output', () => undefined, 'OAO_ERR_INVALID_AGENT_OUTPUT', /undefined/],
    ['{ output: undefined }', () => ({ output: undefined }), 'OAO_ERR_INVALID_AGENT_OUTPUT', /undefined/],
    ['a function output', () => () => 1, 'OAO_ERR_INVALID_AGENT_OUTPUT', /function/],
    ['a cyclic output', () => ({ output: cyclic }), 'OAO_ERR_OUTPUT_NOT_SERIALIZABLE', /circular/i],
    ['a bigint output', () => ({ output: { n: 10n } }), 'OAO_ERR_OUTPUT_NOT_SERIALIZABLE', /BigInt/i],
    ['a NaN output', () => Number.NaN, 'OAO_ERR_OUTPUT_NOT_SERIALIZABLE', /NaN/],
    ['invalid usage', () => ({ output: 'x', usage: { input: -1 } }), 'OAO_ERR_INVALID_AGENT_OUTPUT', /non-negative/],
  ])('%s', async (_name, invoke, code, message) => {
    const report = await new Orchestrator().run({ agent: { invoke }, task: 't' });
    expectValidReport(report);
    expect(report.status).toBe('FAILED');
    expect(report.termination.reason).toBe('error');
    expect(report.termination.message).toMatch(message);
    expect(report.error?.code).toBe(code);
    await flush();
    expect(unhandled).toEqual([]);
  });

  it('errors in plan() and review() end the run too', async () => {
    const orch = new Orchestrator();
    const planFails = await orch.run({ agent: { plan: () => { throw new Error('no plan'); }, invoke: () => 'x' }, task: 't' });
    expect(planFails.termination).toMatchObject({ reason: 'error', message: 'no plan' });
    expect(planFails.totalSteps).toBe(0);
    const reviewFails = await orch.run({ agent: { invoke: () => 'x', review: async () => { throw new Error('no review'); } }, task: 't' });
    expect(reviewFails.termination).toMatchObject({ reason: 'error', message: 'no review' });
    const badDecision = await orch.run({ agent: { invoke: () => 'x', review: () => 'yes' as never }, task: 't' });
    expect(badDecision.error?.code).toBe('OAO_ERR_INVALID_AGENT_OUTPUT');
  });

  it('a late rejection from a stopped agent does not escape as an unhandled rejection', async () => {
    let rejectLater!: (e: Error) => void;
    const handle = new Orchestrator().start({
      agent: { invoke: () => new Promise((_resolve, reject) => (rejectLater = reject)) },
      task: 't',
    });
    handle.cancel();
    await handle.report;
    rejectLater(new Error('too late'));
    await flush();
    expect(unhandled).toEqual([]);
  });
});

describe('retries', () => {
  it('retries transient errors with exponential backoff on the injected clock', async () => {
    const clock = new SimulatedClock();
    const orch = new Orchestrator({ clock, policy: { retry: { maxRetries: 3, initialDelayMs: 100, backoffFactor: 2 } } });
    const attempts: number[] = [];
    const events: OaoEvent[] = [];
    orch.events$.subscribe((e) => events.push(e));
    const handle = orch.start({
      agent: {
        invoke(_: unknown, ctx: AgentContext) {
          attempts.push(clock.now());
          if (ctx.attempt < 3) throw new Error(`flaky ${ctx.attempt}`);
          return `ok on attempt ${ctx.attempt}`;
        },
      },
      task: 't',
    });
    expect(attempts).toEqual([0]);
    clock.increment(99);
    expect(attempts).toEqual([0]);
    clock.increment(1);
    expect(attempts).toEqual([0, 100]);
    clock.increment(200);
    expect(attempts).toEqual([0, 100, 300]);
    const report = await handle.report;
    expect(report.status).toBe('SUCCESS');
    expect(report.finalOutput).toBe('ok on attempt 3');
    expect(report.totalSteps).toBe(1);
    const errors = events.filter((e) => e.type === 'ERROR').map((e) => e.payload);
    expect(errors).toMatchObject([
      { phase: 'step', attempt: 1, willRetry: true, retryInMs: 100 },
      { phase: 'step', attempt: 2, willRetry: true, retryInMs: 200 },
    ]);
  });

  it('gives up after maxRetries with reason error', async () => {
    const clock = new SimulatedClock();
    let calls = 0;
    const handle = new Orchestrator({ clock, policy: { retry: { maxRetries: 2, initialDelayMs: 10 } } }).start({
      agent: { invoke: () => { calls += 1; throw new Error('always down'); } },
      task: 't',
    });
    clock.increment(10);
    clock.increment(20);
    const report = await handle.report;
    expect(calls).toBe(3);
    expect(report.termination).toMatchObject({ reason: 'error', message: 'always down' });
  });

  it('never retries a policy violation or a non-retryable error', async () => {
    let calls = 0;
    const orch = new Orchestrator({ policy: { maxToolCalls: 0, retry: { maxRetries: 5, initialDelayMs: 0 } } });
    const report = await orch.run({
      agent: { async invoke(_: unknown, ctx: AgentContext) { calls += 1; await ctx.tools.t!(); return 'x'; } },
      task: 't',
      tools: { t: () => 1 },
    });
    expect(calls).toBe(1);
    expect(report.termination.reason).toBe('policy_violation');

    let invalidCalls = 0;
    const invalid = await orch.run({ agent: { invoke: () => { invalidCalls += 1; return undefined; } }, task: 't' });
    expect(invalidCalls).toBe(1);
    expect(invalid.error?.code).toBe('OAO_ERR_INVALID_AGENT_OUTPUT');

    let markedCalls = 0;
    await orch.run({
      agent: { invoke: () => { markedCalls += 1; throw Object.assign(new Error('fatal'), { retryable: false }); } },
      task: 't',
    });
    expect(markedCalls).toBe(1);
    expect(new OaoError('OAO_ERR_AGENT_FAILED').retryable).toBe(true);
  });
});
