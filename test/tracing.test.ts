import { SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunTracer } from '../src/observability/tracing/RunTracer.js';
import { traceRuns } from '../src/observability/tracing/index.js';
import { Orchestrator, type AgentContext, type StepResult } from '../src/index.js';
import type { Clock } from '../src/runtime/clock.js';
import { deferred, runawayAgent } from './helpers.js';

let exporter: InMemorySpanExporter;
let provider: BasicTracerProvider;

beforeEach(() => {
  exporter = new InMemorySpanExporter();
  provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
});

afterEach(async () => {
  await provider.shutdown();
});

const tracer = () => provider.getTracer('test');
const spans = () => exporter.getFinishedSpans();
const named = (name: string) => spans().filter((s) => s.name === name);
const one = (name: string): ReadableSpan => {
  const found = named(name);
  expect(found, name).toHaveLength(1);
  return found[0] as ReadableSpan;
};
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan) => span.spanContext().spanId;

/** Two steps; each calls the fake model and the `search` tool. */
const twoStepAgent = {
  name: 'researcher',
  async invoke(task: unknown, ctx: AgentContext) {
    const call = ctx.beginModelCall({ model: 'fake', input: task });
    call.end('answer', { input_tokens: 3, output_tokens: 2 });
    await ctx.callTool('search', { q: task });
    return { output: `step ${ctx.step}` };
  },
  review(result: StepResult) {
    return { done: result.step >= 2 };
  },
};

describe('traceRuns', () => {
  it('traces a successful run: run span, state spans in order, chat and execute_tool spans under EXECUTE', async () => {
    const orch = new Orchestrator();
    const stop = traceRuns(orch, { tracer: tracer() });
    const report = await orch.run({ agent: twoStepAgent, task: 't', tools: { search: () => 'hit' } });
    stop();
    expect(report.status).toBe('SUCCESS');

    const run = one('oao.run researcher');
    expect(parentOf(run)).toBeUndefined();
    expect(run.attributes).toMatchObject({
      'oao.execution_id': report.executionId,
      'oao.agent.name': 'researcher',
      'gen_ai.agent.name': 'researcher',
      'oao.execution_hash': report.executionHash,
      'oao.policy.max_steps': 10,
      'oao.policy.max_tokens': 4000,
      'oao.policy.max_tool_calls': 5,
      'oao.policy.timeout_ms': 30000,
      'oao.status': 'SUCCESS',
      'oao.termination.reason': 'completed',
      'oao.total_steps': 2,
      'gen_ai.usage.input_tokens': 6,
      'gen_ai.usage.output_tokens': 4,
      'oao.tool_calls': 2,
    });
    expect(run.attributes['oao.termination.rule']).toBeUndefined();
    expect(run.status.code).toBe(SpanStatusCode.UNSET);

    const states = spans()
      .filter((s) => s.name.startsWith('oao.state '))
      .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
    expect(states.map((s) => s.name)).toEqual(
      ['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'EXECUTE', 'REVIEW', 'TERMINATE'].map((state) => `oao.state ${state}`),
    );
    for (const state of states) {
      expect(parentOf(state)).toBe(idOf(run));
      expect(state.spanContext().traceId).toBe(run.spanContext().traceId);
    }
    const executes = states.filter((s) => s.name === 'oao.state EXECUTE').map(idOf);

    const chats = named('chat fake');
    expect(chats).toHaveLength(2);
    expect(chats.map(parentOf)).toEqual(executes);
    expect(chats[0]?.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'fake',
      'gen_ai.usage.input_tokens': 3,
      'gen_ai.usage.output_tokens': 2,
    });

    const tools = named('execute_tool search');
    expect(tools).toHaveLength(2);
    expect(tools.map(parentOf)).toEqual(executes);
    expect(tools[0]?.attributes).toMatchObject({
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'search',
      'gen_ai.tool.call.id': expect.any(String),
    });
    expect(tools[0]?.status.code).toBe(SpanStatusCode.UNSET);
    expect(spans().every((s) => s.ended)).toBe(true);
  });

  it('uses the event timestamps of the run clock as span times', async () => {
    let now = 1_700_000_000_000;
    const clock: Clock = {
      now: () => (now += 1000),
      setTimeout: (fn, timeout) => setTimeout(fn, timeout),
      clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
    };
    const orch = new Orchestrator({ clock });
    const stop = traceRuns(orch, { tracer: tracer() });
    const events: number[] = [];
    orch.events$.subscribe((e) => {
      if (e.type === 'EXECUTION_START' || e.type === 'EXECUTION_COMPLETE') events.push(e.timestamp);
    });
    await orch.run({ agent: { invoke: () => ({ output: 'x' }) }, task: 't' });
    stop();
    const run = one('oao.run agent');
    const ms = (t: readonly [number, number]) => t[0] * 1000 + Math.round(t[1] / 1e6);
    expect([ms(run.startTime), ms(run.endTime)]).toEqual(events);
  });

  it('sets ERROR status and the rule when maxSteps is exceeded', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 1 } });
    const stop = traceRuns(orch, { tracer: tracer() });
    const report = await orch.run({ agent: runawayAgent({ cap: 10, output: () => ({ output: 'x' }) }), task: 't' });
    stop();
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });

    const run = one('oao.run agent');
    expect(run.status).toEqual({ code: SpanStatusCode.ERROR, message: report.termination.message });
    expect(run.attributes).toMatchObject({
      'oao.status': 'FAILED',
      'oao.termination.reason': 'policy_violation',
      'oao.termination.rule': 'max_steps',
    });
    const violation = run.events.find((e) => e.name === 'oao.policy_violation');
    expect(violation?.attributes).toMatchObject({ 'oao.policy.rule': 'max_steps', 'oao.policy.limit': 1 });
    // FAILED is never exited: its span ends with the run.
    expect(one('oao.state FAILED').endTime).toEqual(run.endTime);
  });

  it('records a denied tool as a span event', async () => {
    const orch = new Orchestrator({ policy: { tools: { deny: ['shell'] } } });
    const stop = traceRuns(orch, { tracer: tracer() });
    const agent = {
      async invoke(_task: unknown, ctx: AgentContext) {
        await ctx.callTool('shell', 'rm -rf /');
        return { output: 'x' };
      },
    };
    const report = await orch.run({ agent, task: 't', tools: { shell: () => 'never' } });
    stop();
    expect(report.termination).toMatchObject({ reason: 'policy_violation', rule: 'tool_denied' });

    const run = one('oao.run agent');
    const denied = run.events.find((e) => e.name === 'oao.tool_denied');
    expect(denied?.attributes).toMatchObject({ 'oao.policy.rule': 'tool_denied', 'gen_ai.tool.name': 'shell' });
    expect(named('execute_tool shell')).toHaveLength(0);
    expect(run.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('marks a failed tool call with ERROR status', async () => {
    const orch = new Orchestrator();
    const stop = traceRuns(orch, { tracer: tracer() });
    const agent = {
      async invoke(_task: unknown, ctx: AgentContext) {
        await ctx.callTool('flaky').catch(() => undefined);
        return { output: 'x' };
      },
    };
    await orch.run({ agent, task: 't', tools: { flaky: () => { throw new Error('boom'); } } });
    stop();
    const tool = one('execute_tool flaky');
    expect(tool.status.code).toBe(SpanStatusCode.ERROR);
    expect(tool.status.message).toContain('boom');
  });

  it('keeps concurrent runs in separate traces', async () => {
    const orch = new Orchestrator();
    const stop = traceRuns(orch, { tracer: tracer() });
    const gate = deferred();
    const agent = (name: string) => ({
      name,
      async invoke(_task: unknown, ctx: AgentContext) {
        await gate.promise;
        await ctx.callTool('search');
        return { output: name };
      },
    });
    const a = orch.run({ agent: agent('a'), task: 't', tools: { search: () => 'a' } });
    const b = orch.run({ agent: agent('b'), task: 't', tools: { search: () => 'b' } });
    gate.resolve();
    await Promise.all([a, b]);
    stop();

    const runA = one('oao.run a');
    const runB = one('oao.run b');
    expect(runA.spanContext().traceId).not.toBe(runB.spanContext().traceId);
    const traceIds = new Set(spans().map((s) => s.spanContext().traceId));
    expect(traceIds).toEqual(new Set([runA.spanContext().traceId, runB.spanContext().traceId]));
    for (const run of [runA, runB]) {
      const inTrace = spans().filter((s) => s.spanContext().traceId === run.spanContext().traceId);
      expect(inTrace.filter((s) => s.name === 'execute_tool search')).toHaveLength(1);
      expect(inTrace.filter((s) => s.name.startsWith('oao.run '))).toEqual([run]);
    }
  });

  it('stops tracing new runs once stopped, but ends the spans of runs in flight', async () => {
    const orch = new Orchestrator();
    const stop = traceRuns(orch, { tracer: tracer() });
    const gate = deferred();
    const slow = { name: 'slow', invoke: async () => { await gate.promise; return { output: 'x' }; } };
    const inFlight = orch.run({ agent: slow, task: 't' });
    stop();
    await orch.run({ agent: { name: 'late', invoke: () => ({ output: 'y' }) }, task: 't' });
    gate.resolve();
    await inFlight;

    expect(one('oao.run slow').ended).toBe(true);
    expect(named('oao.run late')).toHaveLength(0);
    const slowTrace = one('oao.run slow').spanContext().traceId;
    expect(spans().every((s) => s.spanContext().traceId === slowTrace)).toBe(true);
  });

  it('rejects invalid arguments eagerly', () => {
    expect(() => traceRuns({} as never)).toThrow(/Expected orchestrator/);
    expect(() => traceRuns(new Orchestrator(), null as never)).toThrow(/Expected traceRuns options/);
    expect(() => traceRuns(new Orchestrator(), { tracer: {} as never })).toThrow(/Expected tracer/);
  });
});

describe('RunTracer', () => {
  it('keeps no per-run state once runs complete, whatever their outcome', async () => {
    const orch = new Orchestrator({ policy: { maxSteps: 1 } });
    const runTracer = new RunTracer(tracer());
    const seen: number[] = [];
    const subscription = orch.events$.subscribe((event) => {
      runTracer.handle(event);
      if (event.type === 'EXECUTION_START') seen.push(runTracer.activeRuns);
    });
    const gate = deferred();
    const waiting = orch.run({ agent: { invoke: async () => { await gate.promise; return { output: 'x' }; } }, task: 't' });
    const looped = await orch.run({ agent: runawayAgent({ cap: 10, output: () => ({ output: 'x' }) }), task: 't' });
    expect(looped.termination).toMatchObject({ reason: 'policy_violation', rule: 'max_steps' });
    expect(runTracer.activeRuns).toBe(1);
    gate.resolve();
    await waiting;
    const handle = orch.start({ agent: { invoke: (_t: unknown, ctx: AgentContext) => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) }, task: 't' });
    handle.cancel('enough');
    await handle.report;
    subscription.unsubscribe();

    expect(seen).toEqual([1, 2, 1]);
    expect(runTracer.activeRuns).toBe(0);
    expect(named('oao.run agent')).toHaveLength(3);
    const cancelled = named('oao.run agent').find((s) => s.attributes['oao.termination.reason'] === 'cancelled');
    expect(cancelled?.status.code).toBe(SpanStatusCode.ERROR);
    expect(cancelled?.events.map((e) => e.name)).toContain('oao.cancelled');
  });
});
