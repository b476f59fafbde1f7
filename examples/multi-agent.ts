// Several agents on one task under a concurrency limit and a shared token budget.
// Run: npx tsx --conditions=oao-source examples/multi-agent.ts
import { MultiAgentOrchestrator, type AgentContext } from 'open-agent-orchestrator';

const researcher = {
  name: 'researcher',
  async invoke(task: string, ctx: AgentContext) {
    ctx.usage({ input: 200, output: 120 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { output: `Research notes on "${task}"` };
  },
};

const critic = {
  name: 'critic',
  invoke(task: string) {
    return { output: `Three objections to "${task}"`, usage: { input: 150, output: 60 } };
  },
};

const multi = new MultiAgentOrchestrator({
  maxConcurrency: 2,
  policy: { maxSteps: 3 },
  budget: { maxTokens: 10_000 },
});

let finished = 0;
multi.on('JOB_FINISHED', (event) => {
  finished += 1;
  console.log(`finished ${event.payload.job.name}: ${event.payload.status}`);
});

const results = await multi.runMulti({ agents: { researcher, critic }, task: 'Discuss AI governance' });
for (const [name, report] of Object.entries(results)) {
  console.log(name, report.status, report.tokenUsage.total, JSON.stringify(report.finalOutput));
}
console.log(`jobs finished: ${finished}`);
