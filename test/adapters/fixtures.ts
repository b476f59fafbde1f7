import { tool } from '@langchain/core/tools';
import { z } from 'zod';
import type { OaoEvent, Orchestrator } from '../../src/index.js';

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

/** A LangChain tool that takes 5 s unless its signal aborts; `seen.aborted` says whether it did. */
export function slowCrawlTool(seen: { aborted: boolean }) {
  return tool(
    (_: { q: string }, config) =>
      new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('late'), 5_000);
        config?.signal?.addEventListener('abort', () => {
          seen.aborted = true;
          clearTimeout(timer);
        });
      }),
    { name: 'crawl', description: 'Crawls slowly', schema: z.object({ q: z.string() }) },
  );
}
