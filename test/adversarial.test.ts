import { describe, expect, it } from 'vitest';
import { MultiAgentOrchestrator } from '../src/index.js';
import { expectValidEvents, expectValidReport } from './helpers.js';
import { hostileCases, newSpy, POLICY, runHostileCase } from './hostileAgents.js';

describe('hostile agents', () => {
  it.each(hostileCases.map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    const { report, events, spy } = await runHostileCase(c);
    expect(spy.calls).toBeLessThanOrEqual(50);
    expect({ status: report.status, reason: report.termination.reason }).toEqual({ status: c.status, reason: c.reason });
    if (c.rule !== undefined) expect(report.termination.rule).toBe(c.rule);
    if (report.termination.reason === 'error') {
      expect(report.termination.message).not.toMatch(/^Internal error/);
      expect(report.error?.code).toMatch(/^OAO_ERR_/);
    }
    c.held?.(report, spy);

    // Invariants for every run.
    expectValidReport(report);
    expectValidEvents(events);
    expect(events.map((e) => e.seq)).toEqual(events.map((_e, i) => i));
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
    expect(events.filter((e) => e.type === 'EXECUTION_COMPLETE')).toHaveLength(1);
    expect(Object.isFrozen(report)).toBe(true);
    if (report.status === 'SUCCESS') {
      expect(report.totalSteps).toBeLessThanOrEqual(POLICY.maxSteps!);
      expect(report.tokenUsage.total).toBeLessThanOrEqual(POLICY.maxTokens!);
      expect(report.toolUsage.total).toBeLessThanOrEqual(POLICY.maxToolCalls!);
      expect(report.executionTimeMs).toBeLessThanOrEqual(POLICY.timeoutMs!);
    }
  });
});

describe('hostile batches', () => {
  it('a batch of every hostile agent gives exactly one report per job and never exceeds its limits', async () => {
    const runnable = hostileCases.filter((c) => c.advance === undefined);
    const spies = runnable.map(() => newSpy());
    const multi = new MultiAgentOrchestrator({
      maxConcurrency: 4,
      policy: POLICY,
      budget: { maxToolCalls: 6 },
    });
    let peak = 0;
    let running = 0;
    multi.events$.subscribe((event) => {
      if (event.type === 'JOB_STARTED') peak = Math.max(peak, ++running);
      if (event.type === 'JOB_FINISHED' && event.payload.started) running -= 1;
    });
    const reports = await multi.runAll(
      runnable.map((c, i) => ({
        name: c.kind,
        agent: c.agent(spies[i]!),
        task: 'attack',
        ...(c.tools ? { tools: c.tools(spies[i]!) } : {}),
        ...(c.policy ? { policy: c.policy } : {}),
      })),
    );
    expect(reports).toHaveLength(runnable.length);
    expect(peak).toBeLessThanOrEqual(4);
    const toolBodies = reports.reduce((sum, r) => sum + r.toolUsage.total, 0);
    expect(toolBodies).toBeLessThanOrEqual(6);
    for (const report of reports) expectValidReport(report);
  });
});
