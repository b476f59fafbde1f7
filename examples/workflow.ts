// A workflow: research, then critique and fact-check (one run per claim) in parallel, then write,
// and notify only if writing succeeded, under one shared token budget. Then the same agents
// composed the other way: a governed run invoked from a user's own XState machine.
// Run: npx tsx --conditions=oao-source examples/workflow.ts
import { assign, createActor, setup, waitFor } from 'xstate';
import { Orchestrator, createGovernedRun, defineWorkflow, type ExecutionReport } from 'open-agent-orchestrator';

const researcher = {
  name: 'researcher',
  invoke: (topic: string) => ({ output: { topic, claims: ['agents need budgets', 'tools need allow-lists'] }, usage: { input: 300, output: 200 } }),
};
const critic = { name: 'critic', invoke: (notes: unknown) => ({ output: `Two objections to ${JSON.stringify(notes)}`, usage: { input: 100, output: 50 } }) };
const checker = {
  name: 'checker',
  invoke: async (claim: string) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { output: `verified: ${claim}`, usage: { input: 40, output: 10 } };
  },
};
const writer = { name: 'writer', invoke: () => ({ output: 'An article on AI governance.', usage: { input: 200, output: 400 } }) };
const notifier = { name: 'notifier', invoke: (text: string) => ({ output: `sent "${text}"` }) };

const wf = defineWorkflow<{ topic: string }>({
  id: 'article',
  nodes: {
    research: { agent: researcher, task: ({ input }) => input.topic },
    critique: { agent: critic, needs: ['research'], task: ({ results }) => results.research.finalOutput },
    facts: { agent: checker, needs: ['research'], each: ({ results }) => results.research.finalOutput.claims },
    write: { agent: writer, needs: ['critique', 'facts'], task: ({ results }) => results.critique.finalOutput },
    notify: {
      agent: notifier,
      needs: ['write'],
      when: ({ results }) => results.write.status === 'SUCCESS',
      task: ({ results }) => results.write.finalOutput,
    },
  },
});

const orch = new Orchestrator({ policy: { maxSteps: 5 } });
orch.workflowEvents$.subscribe((event) => {
  if (event.type === 'NODE_COMPLETE') console.log(`node ${event.payload.node}: ${event.payload.status}`);
});
const result = await orch.runWorkflow(wf, { topic: 'AI governance' }, { maxConcurrency: 4, budget: { maxTokens: 20_000 } });
console.log(`workflow ${result.workflow}: ${result.status}, ${result.counts.succeeded} of ${result.counts.total} nodes, ${result.tokenUsage.total} tokens`);
console.log(`facts: ${result.nodes.facts?.reports?.map((report) => JSON.stringify(report.finalOutput)).join('; ')}`);
console.log(`notify: ${JSON.stringify(result.nodes.notify?.report?.finalOutput)}`);

// The same budget cut short: the write step crosses it, so notify never runs.
const tight = await orch.runWorkflow(wf, { topic: 'AI governance' }, { budget: { maxTokens: 1_000 } });
console.log(`tight budget: ${tight.status}, write ${tight.nodes.write?.report?.termination.reason}, notify ${tight.nodes.notify?.status} (${tight.nodes.notify?.reason?.kind})`);

// The other direction: two governed runs raced inside a user's machine; the first SUCCESS wins
// and leaving the racing state cancels the slower one.
const slow = {
  name: 'slow',
  invoke: (_task: string, ctx: { signal: AbortSignal }) =>
    new Promise<{ output: string }>((resolve, reject) => {
      const timer = setTimeout(() => resolve({ output: 'slow answer' }), 5_000);
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), reject(ctx.signal.reason as Error)), { once: true });
    }),
};
const fast = { name: 'fast', invoke: async () => ({ output: 'fast answer' }) };
const cancelled: string[] = [];
orch.on('EXECUTION_COMPLETE', (event) => {
  if (event.payload.report.termination.reason === 'cancelled') cancelled.push(event.payload.report.agentName);
});
const race = setup({
  types: { context: {} as { winner: ExecutionReport | null } },
  actors: { governedRun: createGovernedRun(orch) },
}).createMachine({
  context: { winner: null },
  initial: 'racing',
  states: {
    racing: {
      invoke: [
        { src: 'governedRun', input: { agent: slow, task: 'q' }, onDone: { guard: ({ event }) => event.output.status === 'SUCCESS', target: 'won', actions: assign({ winner: ({ event }) => event.output }) } },
        { src: 'governedRun', input: { agent: fast, task: 'q' }, onDone: { guard: ({ event }) => event.output.status === 'SUCCESS', target: 'won', actions: assign({ winner: ({ event }) => event.output }) } },
      ],
    },
    won: { type: 'final' },
  },
});
const actor = createActor(race).start();
await waitFor(actor, (snapshot) => snapshot.status === 'done');
console.log(`race won by ${actor.getSnapshot().context.winner?.agentName}: ${JSON.stringify(actor.getSnapshot().context.winner?.finalOutput)}; cancelled: ${cancelled.join(', ')}`);
