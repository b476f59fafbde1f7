// An async agent that awaits, reports its token usage and calls a governed tool; started with
// orch.start() and watched live through handle.events$.
// Run: npx tsx --conditions=oao-source examples/async-agent.ts
import { Orchestrator, type AgentContext, type StepResult } from 'open-agent-orchestrator';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const analyst = {
  name: 'analyst',
  async invoke(input: string, ctx: AgentContext) {
    await sleep(10); // where a real agent would wait for its model
    if (ctx.step === 1) {
      // Governed: the policy is asked before the tool body runs.
      const rate = Number(await ctx.tools.exchangeRate!({ from: 'EUR', to: 'USD' }));
      ctx.usage({ input: 90, output: 30 }); // metered as it happens
      return { output: `100 EUR = ${(100 * rate).toFixed(2)} USD` };
    }
    // Usage can also come back with the output.
    return { output: `Answer: ${input} at today's rate.`, usage: { input: 60, output: 20 } };
  },
  // Step 1's result becomes step 2's input; after step 2 the agent is done.
  review: (result: StepResult) => (result.step < 2 ? { done: false, input: result.output } : { done: true }),
};

const orch = new Orchestrator({ policy: { maxSteps: 3, maxTokens: 1_000, maxToolCalls: 2, timeoutMs: 5_000 } });

const handle = orch.start({
  agent: analyst,
  task: 'How much is 100 EUR in USD?',
  tools: {
    exchangeRate: async ({ from, to }: { from: string; to: string }) => {
      await sleep(5);
      return from === 'EUR' && to === 'USD' ? 1.08 : 1;
    },
  },
});
console.log(`started run ${handle.executionId}`);

// Events already emitted are replayed first, then live ones; the stream completes with the run.
handle.events$.subscribe({
  next: (event) => console.log(`  event #${event.seq} ${event.type} (${event.state})`),
  complete: () => console.log('  events$ completed'),
});

const report = await handle.report;
console.log(`status: ${report.status} (${report.termination.reason})`);
console.log(`steps: ${report.totalSteps}, tokens: ${report.tokenUsage.total}, tool calls: ${JSON.stringify(report.toolUsage.byTool)}`);
console.log(`output: ${JSON.stringify(report.finalOutput)}`);
console.log('report:', JSON.stringify(report, null, 2));
