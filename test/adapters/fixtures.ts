import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import type { OaoEvent, Orchestrator, RunStore } from '../../src/index.js';
import { deferred } from '../helpers.js';

/** Every event of the orchestrator's runs, in order. */
export function recording(orch: Orchestrator): OaoEvent[] {
  const events: OaoEvent[] = [];
  orch.events$.subscribe((e) => events.push(e));
  return events;
}

/** A real LangChain tool whose body counts its executions. */
export function searchTool(bodies: { count: number }) {
  return tool(
    async ({ q }: { q: string }) => {
      bodies.count += 1;
      return `3 results for "${q}"`;
    },
    { name: 'search', description: 'Searches the web', schema: z.object({ q: z.string() }) },
  );
}

/**
 * A LangChain tool that never answers on its own: only its signal can end it. `seen.started`
 * resolves once its body runs (listening to its signal); `seen.aborted` says whether it aborted.
 */
export function hangingCrawlTool() {
  const started = deferred<void>();
  const seen = { aborted: false, started: started.promise };
  const crawl = tool(
    (_: { q: string }, config) =>
      new Promise<string>(() => {
        config?.signal?.addEventListener('abort', () => (seen.aborted = true), { once: true });
        started.resolve();
      }),
    { name: 'crawl', description: 'Crawls until it is stopped', schema: z.object({ q: z.string() }) },
  );
  return { crawl, seen };
}

/**
 * A run store answering every call a macrotask later, as a database would: appends are durable only
 * when their promise settles. `durable(id)` reads what the inner store holds right now.
 */
export function asyncStore(inner: RunStore): RunStore & { durable(id: string): readonly OaoEvent[] } {
  const later =
    (fn: (...args: unknown[]) => unknown) =>
    (...args: unknown[]) =>
      new Promise((resolve, reject) => {
        setImmediate(() => {
          Promise.resolve()
            .then(() => fn(...args))
            .then(resolve, reject);
        });
      });
  const wrapped: Record<string, unknown> = { synchronous: false };
  for (const key of ['append', 'events', 'report', 'get', 'list', 'prune', 'acquireLease', 'renewLease', 'releaseLease', 'charge', 'counters', 'close'] as const) {
    const method = (inner[key] as (...args: unknown[]) => unknown).bind(inner);
    wrapped[key] = later(method);
  }
  wrapped.durable = (id: string) => inner.events(id) as readonly OaoEvent[];
  return wrapped as unknown as RunStore & { durable(id: string): readonly OaoEvent[] };
}
