import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import type { OaoEvent, Orchestrator } from '../../src/index.js';
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
