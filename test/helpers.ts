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

/** Lets every queued microtask and promise callback run. */
export async function flush(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/** Parses a report with its schema after a JSON round trip: the report must be JSON-safe. */
export function expectValidReport(report: ExecutionReport): ExecutionReport {
  return executionReportSchema.parse(JSON.parse(JSON.stringify(report)));
}

export function expectValidEvents(events: readonly OaoEvent[]): OaoEvent[] {
  return events.map((event) => oaoEventSchema.parse(JSON.parse(JSON.stringify(event))));
}

export function types(events: readonly OaoEvent[]): string[] {
  return events.map((e) => e.type);
}
