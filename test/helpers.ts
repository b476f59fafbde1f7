import { executionReportSchema, oaoEventSchema, type ExecutionReport, type OaoEvent } from '../src/index.js';

export class DummyAgent {
  invoke(task: string) {
    return { output: `Processed: ${task}` };
  }
}

/** A promise with its resolve/reject exposed, for agents that wait on the test. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Named gates for agents that must wait on the test: `gate(name).promise` is the same promise
 * until `clear()`; `openAll()` releases every run still waiting (for teardown).
 */
export function createGates() {
  const gates = new Map<string, ReturnType<typeof deferred<void>>>();
  return {
    gate: (name: string) => {
      let entry = gates.get(name);
      if (entry === undefined) {
        entry = deferred<void>();
        gates.set(name, entry);
      }
      return entry;
    },
    openAll: (): void => {
      for (const entry of gates.values()) entry.resolve();
    },
    clear: (): void => gates.clear(),
  };
}

/**
 * Resolves once `check()` holds, looking again on every turn of the event loop, or every `everyMs`
 * milliseconds where the wait is for another thread or process (spinning would take the CPU it
 * needs). Never gives up by itself: the per-test timeout bounds it.
 */
export async function waitFor(check: () => boolean, everyMs = 0): Promise<void> {
  while (!check()) await new Promise((resolve) => (everyMs === 0 ? setImmediate(resolve) : setTimeout(resolve, everyMs)));
}

/** Lets every queued microtask and promise callback run. */
export async function flush(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Whether `promise` has settled by the next turn of the event loop. How a test says "at once"
 * without a wall-clock bound: a stop that works has already settled the report, one that does not
 * fails the assertion at once instead of waiting for a test timeout.
 */
export async function settlesAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await flush();
  return settled;
}

/** Parses a report with its schema after a JSON round trip: the report must be JSON-safe. */
export function expectValidReport(report: ExecutionReport): ExecutionReport {
  return executionReportSchema.parse(JSON.parse(JSON.stringify(report)));
}

export function expectValidEvents(events: readonly OaoEvent[]): OaoEvent[] {
  return events.map((event) => oaoEventSchema.parse(JSON.parse(JSON.stringify(event))));
}

/** A log's first event, which must be its EXECUTION_START. */
export function startOf(events: readonly OaoEvent[]): Extract<OaoEvent, { type: 'EXECUTION_START' }> {
  const first = events[0];
  if (first?.type !== 'EXECUTION_START') throw new Error(`expected EXECUTION_START first, got ${first?.type ?? 'nothing'}`);
  return first;
}

export function types(events: readonly OaoEvent[]): string[] {
  return events.map((e) => e.type);
}

/**
 * Thrown by a capped test agent or loop once it runs more often than any working limit allows.
 * A synchronous runaway loop cannot be interrupted by a test timeout: the cap turns a broken limit
 * into a failed run instead of a hung suite. It is not retryable, so the run ends with reason
 * `error` at once and the test's assertion on the expected violation fails.
 */
export class RunawayCapError extends Error {
  override readonly name = 'RunawayCapError';
  readonly retryable = false;

  constructor(what: string, cap: number) {
    super(`${what} ran past its test cap of ${cap} calls: the limit that should have stopped it did not`);
  }
}

export interface CallCap {
  /** Counts one call; throws RunawayCapError on call `cap + 1`. Returns the call number. */
  tick(): number;
  /** Calls counted so far (the refused one included). */
  readonly count: number;
}

/** An iteration cap for a loop that only a policy limit should end. */
export function callCap(cap: number, what = 'A runaway test loop'): CallCap {
  if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`Expected cap to be an integer from 1 and up, got ${String(cap)}`);
  let count = 0;
  return {
    tick() {
      count += 1;
      if (count > cap) throw new RunawayCapError(what, cap);
      return count;
    },
    get count() {
      return count;
    },
  };
}

export interface RunawayAgentOptions {
  /** Steps the agent runs before it throws RunawayCapError: set it above the limit under test. */
  readonly cap: number;
  /** The agent's name; without one the run's agentName is `agent`. */
  readonly name?: string;
  /** Answer with a promise instead of synchronously. @default false */
  readonly async?: boolean;
  /** The output of call `n` (1-based, counted across every run of this agent). @default `step ${n}` */
  readonly output?: (call: number) => unknown;
}

export interface RunawayAgent {
  readonly name?: string;
  invoke(input: unknown): unknown;
  review(): { done: false };
  /** Calls of `invoke` so far, across every run of this agent. */
  readonly calls: number;
}

/**
 * An agent whose review never says done: only maxSteps (or another limit) ends its run. Past `cap`
 * steps it throws RunawayCapError, so a broken step limit fails the test instead of looping forever.
 */
export function runawayAgent(options: RunawayAgentOptions): RunawayAgent {
  const { cap, name, async = false, output = (call: number) => `step ${call}` } = options;
  const counter = callCap(cap, name === undefined ? 'A runaway agent' : `The runaway agent "${name}"`);
  const agent = {
    invoke(): unknown {
      if (async) return Promise.resolve().then(() => output(counter.tick()));
      return output(counter.tick());
    },
    review: (): { done: false } => ({ done: false }),
    get calls(): number {
      return counter.count;
    },
  };
  return name === undefined ? agent : Object.assign(agent, { name });
}
