import { createActor, type ActorLogic, type ActorSystem, type AnyActorRef, type EventObject, type Snapshot } from 'xstate';
import { agentLifecycleMachine } from '../machines/agentLifecycleMachine.js';
import type { ExecutionReport } from '../report/schema.js';
import type { Batch } from '../runtime/Batch.js';

export interface RunPoolInput {
  readonly batch: Batch;
}

export type RunPoolSnapshot = Snapshot<ExecutionReport[]> & { readonly input: RunPoolInput };

/** Sent to the pool when something outside it (a halt, a job's own signal) filed reports. */
export const POOL_CHECK = 'oao.pool.check';

const DONE_PREFIX = 'xstate.done.actor.';
const ERROR_PREFIX = 'xstate.error.actor.';

/** The run actors alive in each pool actor, by execution id. */
const livePools = new WeakMap<AnyActorRef, Map<string, AnyActorRef>>();

function fill(batch: Batch, self: AnyActorRef, live: Map<string, AnyActorRef>): void {
  for (let job = batch.nextToStart(); job !== undefined; job = batch.nextToStart()) {
    const id = job.session.executionId;
    // `parent` makes each run a child of the pool in XState's actor system: its done and error
    // events come back here, and inspectors show it under the supervisor.
    const run = createActor(agentLifecycleMachine, { id, parent: self, input: { session: job.session } });
    job.session.bindActor(run);
    live.set(id, run);
    run.start();
    run.send({ type: 'START' });
    job.session.armDeadline();
  }
}

function settled(snapshot: RunPoolSnapshot, batch: Batch): RunPoolSnapshot {
  return batch.allDone ? { status: 'done', output: batch.reports, error: undefined, input: snapshot.input } : snapshot;
}

/**
 * The supervisor's effect: keeps at most `maxConcurrency` run actors alive, each a child actor of
 * the pool, starts the next queued job as soon as one finishes, and is done with every report
 * filed. Run actors are tracked in a Map of their own instead of a machine's `children`, which
 * XState copies on every spawn and stop: at thousands of live runs that copy dominated.
 */
export const runPoolLogic: ActorLogic<RunPoolSnapshot, EventObject, RunPoolInput, ActorSystem<any>> = {
  getInitialSnapshot: (_scope, input) => ({ status: 'active', output: undefined, error: undefined, input }),
  start: (snapshot, { self }) => {
    const live = new Map<string, AnyActorRef>();
    livePools.set(self, live);
    snapshot.input.batch.setNudge(() => self.send({ type: POOL_CHECK }));
    fill(snapshot.input.batch, self, live);
    // Nothing was started (no jobs, or all closed already): no child will report back, so check now.
    if (live.size === 0) self.send({ type: POOL_CHECK });
  },
  transition: (snapshot, event, { self }) => {
    if (snapshot.status !== 'active') return snapshot;
    const batch = snapshot.input.batch;
    const live = livePools.get(self);
    if (live === undefined) return snapshot;
    const type = event.type;
    if (type === 'xstate.stop') {
      for (const run of live.values()) run.stop();
      live.clear();
      return { status: 'stopped', output: undefined, error: undefined, input: snapshot.input };
    }
    if (type.startsWith(DONE_PREFIX)) {
      const id = type.slice(DONE_PREFIX.length);
      live.delete(id);
      batch.collect(id, (event as unknown as { output: ExecutionReport }).output);
    } else if (type.startsWith(ERROR_PREFIX)) {
      const id = type.slice(ERROR_PREFIX.length);
      live.delete(id);
      batch.crash(id, (event as unknown as { error: unknown }).error);
    } else if (type !== POOL_CHECK) {
      return snapshot;
    }
    fill(batch, self, live);
    return settled(snapshot, batch);
  },
  getPersistedSnapshot: (snapshot) => snapshot,
};
