import { describe, expect, it, vi } from 'vitest';
import { firstValueFrom, toArray } from 'rxjs';
import { Orchestrator, oaoEventTypes, type AgentContext, type OaoEvent, type StepResult } from '../src/index.js';
import { DummyAgent, deferred, expectValidEvents, flush, settlesAtOnce, types } from './helpers.js';

const richAgent = {
  name: 'rich',
  plan: (task: string) => `${task} (planned)`,
  async invoke(input: string, ctx: AgentContext) {
    ctx.usage({ input: 5, output: 7 });
    const found = await ctx.tools.search!({ q: input });
    return { output: `${String(found)} @${ctx.step}`, usage: { input: 1, output: 1 } };
  },
  review: (r: StepResult) => (r.step < 2 ? { done: false, input: 'second' } : { done: true }),
};

describe('the event stream of one run', () => {
  it('starts with EXECUTION_START, ends with EXECUTION_COMPLETE, seq from 0 without gaps, valid against the schema', async () => {
    const orch = new Orchestrator();
    const handle = orch.start({ agent: richAgent, task: 'topic', tools: { search: ({ q }: { q: string }) => `result for ${q}` } });
    const events = await firstValueFrom(handle.events$.pipe(toArray()));
    const report = await handle.report;
    expectValidEvents(events);
    expect(events[0]?.type).toBe('EXECUTION_START');
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i));
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expect(events.every((e) => e.executionId === report.executionId)).toBe(true);
    expect((events.at(-1) as OaoEvent & { type: 'EXECUTION_COMPLETE' }).payload.report).toEqual(report);
    const entered = events.filter((e) => e.type === 'STATE_ENTER').map((e) => (e.payload as { state: string }).state);
    expect(entered).toEqual(report.stateHistory.map((s) => s.state));
    expect(types(events)).toEqual([
      'EXECUTION_START',
      'STATE_ENTER', 'STATE_EXIT', // INIT
      'STATE_ENTER', 'PLAN_COMPLETE', 'STATE_EXIT', // PLAN
      'STATE_ENTER', 'STEP_START', 'TOKEN_USAGE', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_COMPLETE', 'TOKEN_USAGE', 'STATE_EXIT',
      'STATE_ENTER', 'REVIEW_DECISION', 'STATE_EXIT',
      'STATE_ENTER', 'STEP_START', 'TOKEN_USAGE', 'TOOL_CALL', 'TOOL_RESULT', 'STEP_COMPLETE', 'TOKEN_USAGE', 'STATE_EXIT',
      'STATE_ENTER', 'REVIEW_DECISION', 'STATE_EXIT',
      'STATE_ENTER', // TERMINATE
      'EXECUTION_COMPLETE',
    ]);
  });

  it('records every input the runtime cannot reproduce', async () => {
    const orch = new Orchestrator();
    const handle = orch.start({ agent: richAgent, task: 'topic', tools: { search: ({ q }: { q: string }) => `result for ${q}` } });
    await handle.report;
    const events = handle.events();
    const payloads = (type: string) => events.filter((e) => e.type === type).map((e) => e.payload);
    expect(payloads('PLAN_COMPLETE')).toEqual([{ input: 'topic (planned)' }]);
    expect(payloads('TOOL_RESULT').map((p: any) => p.result)).toEqual(['result for topic (planned)', 'result for second']);
    expect(payloads('STEP_COMPLETE').map((p: any) => p.output)).toEqual(['result for topic (planned) @1', 'result for second @2']);
    expect(payloads('REVIEW_DECISION')).toEqual([
      { step: 1, done: false, input: 'second' },
      { step: 2, done: true },
    ]);
    expect(payloads('TOKEN_USAGE').map((p: any) => [p.total, p.source])).toEqual([
      [12, 'reported'], [2, 'output'], [12, 'reported'], [2, 'output'],
    ]);
    // The counters in each envelope are the spend so far.
    expect(events.at(-1)?.counters).toEqual({ steps: 2, tokens: 28, toolCalls: 2 });
  });

  it('replays past events to late subscribers of handle.events$, then completes', async () => {
    const handle = new Orchestrator().start({ agent: new DummyAgent(), task: 't' });
    await handle.report;
    const late = await firstValueFrom(handle.events$.pipe(toArray()));
    expect(late).toEqual(handle.events());
    expect(late.at(-1)?.type).toBe('EXECUTION_COMPLETE');
  });

  it('delivers live events to a subscriber that joins mid-run', async () => {
    const gate = deferred<string>();
    const handle = new Orchestrator().start({ agent: { invoke: () => gate.promise }, task: 't' });
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => handle.events$.subscribe({ next: (e) => seen.push(e.type), complete: resolve }));
    gate.resolve('now');
    await done;
    expect(seen[0]).toBe('EXECUTION_START');
    expect(seen).toContain('STEP_COMPLETE');
    expect(seen.at(-1)).toBe('EXECUTION_COMPLETE');
  });

  it('documents every event type in docs/events.md', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../docs/events.md', import.meta.url), 'utf8');
    for (const type of oaoEventTypes) expect(doc).toContain(`\`${type}\``);
  });
});

describe('hooks', () => {
  it('on(type) receives only that type; on("*") receives all; off stops delivery', async () => {
    const orch = new Orchestrator();
    const calls: string[] = [];
    const all: string[] = [];
    const off = orch.on('TOOL_CALL', (e) => calls.push(e.payload.tool));
    orch.on('*', (e) => all.push(e.type));
    const agent = { invoke: async (_: unknown, ctx: AgentContext) => ctx.tools.ping!() };
    await orch.run({ agent, task: 't', tools: { ping: () => 'pong' } });
    off();
    await orch.run({ agent, task: 't', tools: { ping: () => 'pong' } });
    expect(calls).toEqual(['ping']);
    expect(all.filter((t) => t === 'EXECUTION_COMPLETE')).toHaveLength(2);
  });

  it('a hook that throws or rejects never changes the outcome, and is reported', async () => {
    const onHookError = vi.fn();
    const orch = new Orchestrator({ onHookError });
    orch.on('STATE_ENTER', () => {
      throw new Error('hook bug');
    });
    orch.on('STEP_COMPLETE', async () => {
      throw new Error('async hook bug');
    });
    const report = await orch.run({ agent: new DummyAgent(), task: 't' });
    await flush();
    expect(report.status).toBe('SUCCESS');
    expect(onHookError).toHaveBeenCalled();
    expect(onHookError.mock.calls.map((c) => (c[0] as Error).message)).toContain('async hook bug');
    expect(onHookError.mock.calls.filter((c) => (c[0] as Error).message === 'hook bug')).toHaveLength(5);
  });

  it('a slow hook does not delay the report', async () => {
    const orch = new Orchestrator();
    const never = deferred();
    let hooksStarted = 0;
    let hooksFinished = 0;
    orch.on('*', async () => {
      hooksStarted += 1;
      await never.promise;
      hooksFinished += 1;
    });
    const seen: string[] = [];
    orch.events$.subscribe((e) => seen.push(e.type));
    const pending = orch.run({ agent: { invoke: async (task: string) => `done: ${task}` }, task: 't' });
    // Every hook is still waiting, and the report is already there.
    expect(await settlesAtOnce(pending)).toBe(true);
    const report = await pending;
    expect(report.status).toBe('SUCCESS');
    expect(hooksStarted).toBe(seen.length);
    expect(seen.at(-1)).toBe('EXECUTION_COMPLETE');
    expect(hooksFinished).toBe(0);
  });

  it('rejects a hook that is not a function', () => {
    expect(() => new Orchestrator().on('ERROR', 42 as never)).toThrow(expect.objectContaining({ code: 'OAO_ERR_INVALID_ARGUMENT' }));
  });
});
