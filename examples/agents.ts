// A module of agents for the `oao` CLI: `oao run examples/agents.ts --task "..." --agent echo`
// and `oao serve examples/agents.ts`. The CLI reads the `agents` export (and `tools`, `policy`).
import type { AgentContext, PolicyOptions, StepResult, ToolSet } from 'open-agent-orchestrator';

export const agents = {
  /** Answers at once. */
  echo: {
    name: 'echo',
    description: 'Repeats the task back.',
    invoke: (task: string) => ({ output: `echo: ${task}`, usage: { input: 5, output: 5 } }),
  },
  /** Looks something up with a governed tool, over two steps. */
  researcher: {
    name: 'researcher',
    description: 'Searches twice and summarizes.',
    async invoke(task: string, ctx: AgentContext) {
      const hits = await ctx.callTool('search', { q: task });
      ctx.usage({ input: 40, output: 20 });
      return { output: `step ${ctx.step}: ${String(hits)}` };
    },
    review: (result: StepResult) => (result.step < 2 ? { done: false, input: 'follow-up question' } : { done: true }),
  },
  /** Never satisfied: the policy's maxSteps stops it. */
  runaway: {
    name: 'runaway',
    description: 'Always wants one more step.',
    invoke: (_task: string, ctx: AgentContext) => ({ output: `still going at step ${ctx.step}` }),
    review: () => ({ done: false }),
  },
  /** Takes a while, and stops when asked to. */
  slow: {
    name: 'slow',
    description: 'Works for about two seconds; honours cancellation.',
    invoke: (task: string, ctx: AgentContext) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve({ output: `slowly: ${task}` }), 2_000);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        });
      }),
  },
};

export const tools: ToolSet = {
  search: ({ q }: { q: string }) => `3 results for "${q}"`,
};

export const policy: PolicyOptions = { maxSteps: 4, maxTokens: 2_000, maxToolCalls: 4, timeoutMs: 10_000 };
