import { describe, expect, it } from 'vitest';
import { createActor, type InspectionEvent } from 'xstate';
import { Orchestrator, agentLifecycleMachine } from '../src/index.js';
import { DummyAgent } from './helpers.js';

describe('XState integration', () => {
  it('passes the inspect option to every run actor', async () => {
    const seen: InspectionEvent[] = [];
    const orch = new Orchestrator({ inspect: (e) => seen.push(e) });
    const handle = orch.start({ agent: new DummyAgent(), task: 't' });
    await handle.report;
    const actors = seen.filter((e) => e.type === '@xstate.actor').map((e) => (e.actorRef as { id?: string }).id);
    expect(actors).toContain(handle.executionId);
    const snapshots = seen.filter((e) => e.type === '@xstate.snapshot' && e.actorRef === handle.actor);
    expect(snapshots.at(-1)).toMatchObject({ snapshot: { value: 'TERMINATE', status: 'done' } });
    expect(seen.some((e) => e.type === '@xstate.event')).toBe(true);
  });

  it('exposes the run actor on the handle, with the report as its output', async () => {
    const handle = new Orchestrator().start({ agent: new DummyAgent(), task: 't' });
    const report = await handle.report;
    expect(handle.actor.getSnapshot().status).toBe('done');
    expect(handle.actor.getSnapshot().output).toBe(report);
  });

  it('exports the machine with the lifecycle states, for visualizing and composing', () => {
    expect(agentLifecycleMachine.id).toBe('agentLifecycle');
    expect(Object.keys(agentLifecycleMachine.root.states)).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'TERMINATE', 'FAILED']);
    expect(agentLifecycleMachine.root.states.TERMINATE?.type).toBe('final');
    expect(agentLifecycleMachine.root.states.FAILED?.type).toBe('final');
    // The machine is plain XState: its implementations can be replaced with provide().
    const strict = agentLifecycleMachine.provide({ guards: { hasPlanner: () => false } });
    expect(createActor(strict, { input: undefined })).toBeDefined();
  });
});
