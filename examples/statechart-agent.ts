// Your own XState machine as a governed agent: it runs as the EXECUTE step of an OAO run, its tool
// calls go through the policy and its token spend is metered; its output is the run's output.
// Run: npx tsx --conditions=oao-source examples/statechart-agent.ts
import {
  Orchestrator,
  fromMachine,
  oaoTool,
  type MachineAgentInput,
  type OaoMachineEmitted,
} from 'open-agent-orchestrator';
import { assign, emit, setup } from 'xstate';

/** Searches, then drafts with a (pretend) model call whose usage it reports; retries the search once. */
const researcher = setup({
  types: {
    input: {} as MachineAgentInput,
    context: {} as { question: string; sources: string[]; attempts: number; draft: string },
    output: {} as string,
    emitted: {} as OaoMachineEmitted,
  },
  actors: { 'oao.tool': oaoTool }, // OAO provides the governed implementation
  guards: { mayRetry: ({ context }) => context.attempts < 2 },
}).createMachine({
  id: 'researcher',
  context: ({ input }) => ({ question: String(input.task), sources: [], attempts: 0, draft: '' }),
  initial: 'searching',
  states: {
    searching: {
      entry: assign({ attempts: ({ context }) => context.attempts + 1 }),
      invoke: {
        src: 'oao.tool',
        input: ({ context }) => ({ name: 'search', args: { q: context.question, attempt: context.attempts } }),
        onDone: { target: 'drafting', actions: assign({ sources: ({ event }) => event.output as string[] }) },
        onError: [{ guard: 'mayRetry', target: 'searching', reenter: true }, { target: 'giveUp' }],
      },
    },
    drafting: {
      entry: [
        assign({ draft: ({ context }) => `${context.question}: see ${context.sources.join(', ')}` }),
        emit({ type: 'oao.usage', usage: { input: 320, output: 85 } }),
      ],
      always: 'done',
    },
    done: { type: 'final' },
    giveUp: { type: 'final', entry: assign({ draft: 'No sources found.' }) },
  },
  output: ({ context }) => context.draft,
});

let searches = 0;
const tools = {
  search: ({ attempt }: { q: string; attempt: number }) => {
    searches += 1;
    if (attempt === 1) throw new Error('search index warming up');
    return ['stately.ai/docs', 'github.com/statelyai/xstate'];
  },
};

const orch = new Orchestrator({ policy: { maxTokens: 1_000, maxToolCalls: 3 } });
orch.on('TOOL_RESULT', (event) => console.log(`  ${event.payload.tool}: ${event.payload.ok ? 'ok' : 'failed'}`));

const report = await orch.run({ agent: fromMachine(researcher), task: 'How do XState actors compose?', tools });
console.log(`researcher: ${report.status}, ${report.tokenUsage.total} tokens, ${report.toolUsage.total} tool calls (${searches} ran)`);
console.log('output:', report.finalOutput);

// The same machine under a stricter policy: one tool call only, so the retry is refused.
const strict = await orch.run({ agent: fromMachine(researcher), task: 'How do XState actors compose?', tools, policy: { maxToolCalls: 1 } });
console.log(`strict: ${strict.status}, ${strict.termination.reason} (${strict.termination.rule})`);
