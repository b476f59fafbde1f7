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
