import { describe, expect, it } from 'vitest';
import { SimulatedClock, createActor, fromCallback, toPromise, type EventObject, type InspectionEvent } from 'xstate';
import { Orchestrator, StrictPolicy, agentLifecycleMachine, type AgentCallEvent, type AgentCallInput } from '../src/index.js';
import { prepareRun } from '../src/runtime/prepareRun.js';
import { DummyAgent, RunawayCapError, expectValidEvents, expectValidReport, types } from './helpers.js';

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
  });

  it('runs to a final state with a provided agentCall actor, under the same governance', async () => {
    // The agent's own methods must never run: the provided actor answers every phase instead.
    const unreachable = (): never => {
      throw new Error('the agent was called although agentCall was replaced');
    };
    const agent = { name: 'scripted', plan: unreachable, invoke: unreachable, review: unreachable };
    const calls: string[] = [];
    const scriptedCall = fromCallback<EventObject, AgentCallInput>(({ input, sendBack }) => {
      const { phase, value, session } = input;
      calls.push(`${phase}@${session.steps}`);
      const answer = (result: unknown): void => sendBack({ type: 'AGENT.DONE', phase, value: result } satisfies AgentCallEvent);
      if (phase === 'plan') answer(`plan for ${String(value)}`);
      else if (phase === 'step') answer({ output: `step ${session.steps} on ${String(value)}`, usage: { input: 3, output: 2, total: 5 } });
      else answer(session.steps < 2 ? { done: false, input: 'refine' } : { done: true });
    });
    const machine = agentLifecycleMachine.provide({ actors: { agentCall: scriptedCall } });

    const clock = new SimulatedClock();
    const { session } = prepareRun(
      { agent, task: 'question', executionId: 'provided-1' },
      { policy: new StrictPolicy({ maxSteps: 3, maxTokens: 100 }), clock, sink: undefined, generateId: () => 'unused', syncOnly: false, record: true },
    );
    const actor = createActor(machine, { id: session.executionId, input: { session }, clock });
    session.bindActor(actor);
    session.begin(false);
    actor.start();
    actor.send({ type: 'START' });
    const report = await toPromise(actor);

    expect(calls).toEqual(['plan@0', 'step@1', 'review@1', 'step@2', 'review@2']);
    expect(actor.getSnapshot()).toMatchObject({ status: 'done', value: 'TERMINATE' });
    expect(report).toBe(session.report);
    expectValidReport(report);
    expect(report).toMatchObject({
      executionId: 'provided-1',
      agentName: 'scripted',
      status: 'SUCCESS',
      termination: { reason: 'completed' },
      totalSteps: 2,
      tokenUsage: { input: 6, output: 4, total: 10 },
      finalOutput: 'step 2 on refine',
      executionTimeMs: 0,
      executionHash: session.executionHash,
    });
    expect(report.stateHistory.map((s) => s.state)).toEqual(['INIT', 'PLAN', 'EXECUTE', 'REVIEW', 'EXECUTE', 'REVIEW', 'TERMINATE']);
    const events = expectValidEvents(session.events);
    expect(types(events).filter((t) => t === 'STEP_COMPLETE')).toHaveLength(2);
    expect(events.find((e) => e.type === 'PLAN_COMPLETE')?.payload).toEqual({ input: 'plan for question' });
    expect(events.at(-1)?.type).toBe('EXECUTION_COMPLETE');
  });

  it('keeps the step limit when agentCall is replaced: the guard, not the agent, stops the loop', async () => {
    let steps = 0;
    const endless = fromCallback<EventObject, AgentCallInput>(({ input, sendBack }) => {
      if (input.phase === 'step') steps += 1;
      // A cap far above maxSteps: a broken guard fails the test instead of looping forever.
      if (steps > 10) {
        sendBack({ type: 'AGENT.ERROR', phase: input.phase, error: new RunawayCapError('The provided agentCall', 10) } satisfies AgentCallEvent);
        return;
      }
      const value = input.phase === 'step' ? { output: steps, usage: null } : { done: false };
      sendBack({ type: 'AGENT.DONE', phase: input.phase, value } satisfies AgentCallEvent);
    });
    const machine = agentLifecycleMachine.provide({ actors: { agentCall: endless } });
    const clock = new SimulatedClock();
    const { session } = prepareRun(
      { agent: { invoke: () => 'unused', review: () => ({ done: false }) }, task: 't' },
      { policy: new StrictPolicy({ maxSteps: 3 }), clock, sink: undefined, generateId: () => 'provided-2', syncOnly: false, record: false },
    );
    const actor = createActor(machine, { input: { session }, clock });
    session.bindActor(actor);
    session.begin(false);
    actor.start();
    actor.send({ type: 'START' });
    const report = await toPromise(actor);
    expect(steps).toBe(3);
    expect(report).toMatchObject({ status: 'FAILED', totalSteps: 3, termination: { reason: 'policy_violation', rule: 'max_steps' } });
    expect(actor.getSnapshot().value).toBe('FAILED');
  });
});
