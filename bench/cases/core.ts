import { Orchestrator, type ExecutionReport } from 'open-agent-orchestrator';
import { createActor, toPromise } from 'xstate';
import { bareLifecycleMachine, bareSyncLifecycleMachine, DummyAgent, TASK } from '../baselines.js';
import type { BenchCase, BenchRatio, Op } from '../harness.js';

/**
 * The cost of one run of a trivial agent, from the physical floor (calling the agent) through the
 * floor for any design on XState (a bare 5-state machine) to the governed runtime.
 */

function expectSuccess(report: ExecutionReport): void {
  if (report.status !== 'SUCCESS' || report.finalOutput !== `Processed: ${TASK}`) {
    throw new Error(`bench: a governed run did not succeed: ${JSON.stringify(report.termination)}`);
  }
}

function expectOutput(output: unknown): void {
  if (output !== `Processed: ${TASK}`) throw new Error(`bench: a bare run returned ${JSON.stringify(output)}`);
}

/** An orchestrator with the default policy and one no-op subscriber on `events$`. */
function subscribedOrchestrator(): Orchestrator {
  const orch = new Orchestrator();
  orch.events$.subscribe(() => {});
  return orch;
}

export const coreCases: readonly BenchCase[] = [
  {
    kind: 'time',
    id: 'core.raw',
    group: 'core',
    label: 'raw: agent.invoke(task)',
    description: "DummyAgent's invoke called directly, back to back: the physical floor.",
    mode: 'sync',
    setup: () => {
      const agent = new DummyAgent();
      expectOutput(agent.invoke(TASK).output);
      return () => agent.invoke(TASK);
    },
  },
  {
    kind: 'time',
    id: 'core.rawAwait',
    group: 'core',
    label: 'raw: await agent.invoke(task)',
    description: 'The same call awaited: the floor for anything that awaits its result.',
    mode: 'async',
    setup: () => {
      const agent = new DummyAgent();
      return async () => agent.invoke(TASK);
    },
  },
  {
    kind: 'time',
    id: 'core.bare',
    group: 'core',
    label: 'bare XState (fromPromise)',
    description:
      'Hand-written 5-state machine (init, plan, execute, review, done; always edges; fromPromise call), ' +
      'createActor(...).start() awaited with toPromise: the floor for any design on XState.',
    mode: 'async',
    setup: async () => {
      const agent = new DummyAgent();
      const op: Op = () => toPromise(createActor(bareLifecycleMachine, { input: { agent, task: TASK } }).start());
      expectOutput(await op());
      return op;
    },
  },
  {
    kind: 'time',
    id: 'core.bareSync',
    group: 'core',
    label: 'bare XState sync (fromCallback)',
    description: 'The same machine with a fromCallback call that answers synchronously: done when start() returns.',
    mode: 'sync',
    setup: () => {
      const agent = new DummyAgent();
      const op: Op = () => {
        const snapshot = createActor(bareSyncLifecycleMachine, { input: { agent, task: TASK } }).start().getSnapshot();
        if (snapshot.status !== 'done') throw new Error('bench: the bare sync machine did not finish synchronously');
        return snapshot.output;
      };
      expectOutput(op());
      return op;
    },
  },
  {
    kind: 'time',
    id: 'core.governed',
    group: 'core',
    label: 'governed: await orch.run()',
    description: 'new Orchestrator() (default policy, default memory store), one events$ subscriber; N sequential awaited runs.',
    mode: 'async',
    setup: async () => {
      const orch = subscribedOrchestrator();
      const agent = new DummyAgent();
      expectSuccess(await orch.run({ agent, task: TASK }));
      return () => orch.run({ agent, task: TASK });
    },
  },
  {
    kind: 'time',
    id: 'core.governedSync',
    group: 'core',
    label: 'governed sync: orch.runSync()',
    description: 'The same orchestrator and subscriber, runSync(): the same machine without the event loop.',
    mode: 'sync',
    setup: () => {
      const orch = subscribedOrchestrator();
      const agent = new DummyAgent();
      expectSuccess(orch.runSync({ agent, task: TASK }));
      return () => orch.runSync({ agent, task: TASK });
    },
  },
  {
    kind: 'time',
    id: 'core.governedQuiet',
    group: 'core',
    label: 'governed, no store, no subscriber',
    description: 'await orch.run() with store: false and nobody subscribed, so no event is built: what the log and a subscriber add is the difference to "governed".',
    mode: 'async',
    setup: async () => {
      const orch = new Orchestrator({ store: false });
      const agent = new DummyAgent();
      expectSuccess(await orch.run({ agent, task: TASK }));
      return () => orch.run({ agent, task: TASK });
    },
  },
];

export const coreRatios: readonly BenchRatio[] = [
  { id: 'governed/bare', label: 'governed / bare XState', numerator: 'core.governed', denominator: 'core.bare', target: 1.2 },
  { id: 'governedSync/bare', label: 'governed sync / bare XState', numerator: 'core.governedSync', denominator: 'core.bare' },
  {
    id: 'governedSync/bareSync',
    label: 'governed sync / bare XState sync',
    numerator: 'core.governedSync',
    denominator: 'core.bareSync',
  },
  { id: 'governed/raw', label: 'governed / raw', numerator: 'core.governed', denominator: 'core.raw' },
  { id: 'bare/raw', label: 'bare XState / raw', numerator: 'core.bare', denominator: 'core.raw' },
  { id: 'governed/quiet', label: 'governed / governed, no store, no subscriber', numerator: 'core.governed', denominator: 'core.governedQuiet' },
];
