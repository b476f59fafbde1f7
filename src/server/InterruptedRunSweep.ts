import type { AgentLike } from '../agent.js';
import { OaoError } from '../errors.js';
import { endInterrupted } from '../log/endInterrupted.js';
import type { Lease, RunStore, StoredRun } from '../store/RunStore.js';

/** What one sweep did. */
export interface SweepOutcome {
  /** Runs made live in this process again, continued by the agent of their name. */
  readonly resumed: readonly string[];
  /** Runs ended FAILED (`OAO_ERR_INTERRUPTED`): this server has no agent of their name. */
  readonly ended: readonly string[];
  /** Runs left for a later sweep because this server had no free slot. */
  readonly deferred: readonly string[];
}

export interface InterruptedRunSweepInit {
  readonly store: RunStore;
  readonly agents: ReadonlyMap<string, AgentLike>;
  /** The lease owner of this server: a run is taken over under it. */
  readonly owner: string;
  readonly leaseTtlMs: number;
  /** Time between the end of one sweep and the start of the next. */
  readonly intervalMs: number;
  /** The clock reading an ending is recorded at (ms since the epoch). */
  readonly now: () => number;
  /** Whether this process holds the run, or is setting it up: it is never taken over here. */
  readonly isHere: (executionId: string) => boolean;
  /**
   * Makes the run live here with `agent` (and the server's tools); false when the server has no
   * free slot for it. Throws what `orch.startResumed()` throws.
   */
  readonly resume: (run: StoredRun, agent: AgentLike) => Promise<boolean>;
  readonly logError: (error: unknown, message: string) => void;
  readonly logInfo: (message: string) => void;
}

/** Runs listed per store query. */
const PAGE = 100;
/** Runs remembered as impossible to resume (a damaged log): not tried again by this process. */
const MAX_GIVEN_UP = 10_000;
/** What `startResumed` answers when someone else took the run, finished it or removed it first. */
const TAKEN_ELSEWHERE: ReadonlySet<string> = new Set(['OAO_ERR_LEASE_HELD', 'OAO_ERR_RUN_FINISHED', 'OAO_ERR_RUN_NOT_FOUND', 'OAO_ERR_LEASE_LOST']);

/**
 * Takes up the runs that a process left live in the store when it stopped (status
 * `interrupted`: no report, and a lease nobody renews): on {@link start} and then every
 * `intervalMs`, until {@link stop}. A run whose agent this server has is resumed here; any other
 * is ended FAILED through its log. Every take-over goes through the run's lease, so servers that
 * share a store never take the same run twice: whoever loses the race skips the run.
 */
export class InterruptedRunSweep {
  readonly #init: InterruptedRunSweepInit;
  readonly #givenUp = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #current: Promise<SweepOutcome> | undefined;
  /** The take-over (a resume or an ending) in progress, if any. */
  #takingOver: Promise<unknown> | undefined;
  #started = false;
  #stopped = false;
  /** Whether the last sweep could not read the store: said once, until a sweep succeeds again. */
  #failing = false;

  constructor(init: InterruptedRunSweepInit) {
    this.#init = init;
  }

  /** Whether a later sweep will still try to take the run up: sweeping, and not given up on it. */
  willTakeUp(executionId: string): boolean {
    return this.#started && !this.#stopped && !this.#givenUp.has(executionId);
  }

  /** Sweeps now, then every `intervalMs` after each sweep ends. Idempotent. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#next();
  }

  /**
   * No sweep starts after this, and the one in progress takes up no further run; resolves once the
   * run it is taking up (if any) is live or ended. A sweep waiting for the store's list is not
   * waited for: it stops when the answer comes.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#takingOver?.catch(() => undefined);
  }

  /**
   * One pass over every interrupted run in the store (all pages). A sweep already in progress is
   * joined, not doubled. Rejects only when the store cannot be listed.
   */
  sweep(): Promise<SweepOutcome> {
    if (this.#current !== undefined) return this.#current;
    const current = this.#sweep();
    this.#current = current;
    const clear = () => {
      if (this.#current === current) this.#current = undefined;
    };
    current.then(clear, clear);
    return current;
  }

  #next(): void {
    void this.sweep()
      .then(
        (outcome) => {
          this.#failing = false;
          if (outcome.resumed.length > 0) this.#init.logInfo(`resumed ${outcome.resumed.length} interrupted run(s): ${outcome.resumed.join(', ')}`);
          if (outcome.ended.length > 0) this.#init.logInfo(`ended ${outcome.ended.length} interrupted run(s) without an agent here: ${outcome.ended.join(', ')}`);
        },
        (error: unknown) => {
          if (!this.#failing && !this.#stopped) this.#init.logError(error, 'the run store could not list the interrupted runs; trying again later');
          this.#failing = true;
        },
      )
      .finally(() => {
        if (this.#stopped) return;
        this.#timer = setTimeout(() => this.#next(), this.#init.intervalMs);
        this.#timer.unref();
      });
  }

  async #sweep(): Promise<SweepOutcome> {
    const resumed: string[] = [];
    const ended: string[] = [];
    const deferred: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.#init.store.list({ status: 'interrupted' }, { limit: PAGE, ...(cursor === undefined ? {} : { cursor }) });
      for (const run of page.runs) {
        if (this.#stopped) break;
        const id = run.executionId;
        if (this.#init.isHere(id) || this.#givenUp.has(id)) continue;
        const agent = this.#init.agents.get(run.agentName);
        if (agent !== undefined && deferred.length > 0) {
          // No slot was free for an earlier run: none is for this one either.
          deferred.push(id);
          continue;
        }
        const takingOver = agent === undefined ? this.#end(run) : this.#resume(run, agent);
        this.#takingOver = takingOver;
        const outcome = await takingOver;
        this.#takingOver = undefined;
        if (outcome === 'resumed') resumed.push(id);
        else if (outcome === 'ended') ended.push(id);
        else if (outcome === 'busy') deferred.push(id);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined && !this.#stopped);
    return { resumed, ended, deferred };
  }

  async #resume(run: StoredRun, agent: AgentLike): Promise<'resumed' | 'busy' | 'skipped'> {
    try {
      return (await this.#init.resume(run, agent)) ? 'resumed' : 'busy';
    } catch (error) {
      if (OaoError.isInstance(error) && TAKEN_ELSEWHERE.has(error.code)) return 'skipped';
      this.#failed(run.executionId, error, `run ${run.executionId} was interrupted and could not be resumed`);
      return 'skipped';
    }
  }

  /**
   * Ends a run no agent here can continue: FAILED with reason `error` and `OAO_ERR_INTERRUPTED`,
   * appended to its log under its lease (so no other process writes meanwhile). Skipped when
   * another process has taken or finished it first, or the store failed.
   */
  async #end(run: StoredRun): Promise<'ended' | 'skipped'> {
    const { store, owner, leaseTtlMs } = this.#init;
    const id = run.executionId;
    let lease: Lease | undefined;
    try {
      lease = await store.acquireLease(id, owner, leaseTtlMs);
      if (lease === undefined) return 'skipped';
      const events = await store.events(id);
      if (events.length === 0 || events[events.length - 1]?.type === 'EXECUTION_COMPLETE') return 'skipped';
      const names = [...this.#init.agents.keys()].join(', ');
      const error = new OaoError(
        'OAO_ERR_INTERRUPTED',
        `Run "${id}" was left unfinished by a process that stopped, and this server cannot resume it: no agent named "${run.agentName}" is registered here (it has: ${names})`,
        { details: { executionId: id, agentName: run.agentName } },
      );
      await store.append(id, endInterrupted(events, { now: this.#init.now(), owner, error: error.toJSON() }), { lease });
      return 'ended';
    } catch (error) {
      if (OaoError.isInstance(error) && (error.code === 'OAO_ERR_LEASE_LOST' || error.code === 'OAO_ERR_LOG_CONFLICT')) return 'skipped';
      this.#failed(id, error, `run ${id} was interrupted and could not be ended`);
      return 'skipped';
    } finally {
      if (lease !== undefined) {
        const taken = lease;
        await Promise.resolve()
          .then(() => store.releaseLease(taken))
          .catch((error: unknown) => this.#init.logError(error, `the run store could not release the lease of run ${id}`));
      }
    }
  }

  /** Logs the failure; a run that cannot be taken up at all (not retryable) is not tried again here. */
  #failed(executionId: string, error: unknown, message: string): void {
    this.#init.logError(error, message);
    if (OaoError.isInstance(error) && error.retryable) return;
    this.#givenUp.add(executionId);
    if (this.#givenUp.size > MAX_GIVEN_UP) {
      const oldest = this.#givenUp.values().next();
      if (oldest.done !== true) this.#givenUp.delete(oldest.value);
    }
  }
}
