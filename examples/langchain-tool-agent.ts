// LangChain.js under OAO: a prompt | model | parser chain, and a tool-calling agent loop whose
// model turns are governed steps. Run: npx tsx --conditions=oao-source examples/langchain-tool-agent.ts
//
// No API key needed: ScriptedChatModel stands in for a provider's chat model. With a real one,
// replace it with e.g. `new ChatOpenAI({ model: 'gpt-4o-mini' })` from @langchain/openai.
import { StringOutputParser } from '@langchain/core/output_parsers';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { tool } from '@langchain/core/tools';
import { Orchestrator } from 'open-agent-orchestrator';
import { fromChatModel, fromRunnable } from 'open-agent-orchestrator/langchain';
import { z } from 'zod';
import { ScriptedChatModel } from './support/scriptedChatModel.js';

let shellRuns = 0;
const search = tool(async ({ q }) => `OAO is a control plane that governs AI agents (3 sources for "${q}")`, {
  name: 'search',
  description: 'Searches the web',
  schema: z.object({ q: z.string() }),
});
const shell = tool(
  async ({ cmd }) => {
    shellRuns += 1;
    return `ran ${cmd}`;
  },
  { name: 'shell', description: 'Runs a shell command', schema: z.object({ cmd: z.string() }) },
);

const orch = new Orchestrator({ policy: { maxSteps: 5, maxTokens: 2_000, tools: { deny: ['shell'] } } });
orch.on('TOOL_CALL', (event) => console.log(`  tool call: ${event.payload.tool}(${JSON.stringify(event.payload.args)})`));
orch.on('TOOL_DENIED', (event) => console.log(`  tool denied: ${event.payload.tool} (${event.payload.rule})`));

// 1. Any Runnable: every model call inside the chain is metered as it happens.
const chain = ChatPromptTemplate.fromTemplate('Explain {topic} in one line.')
  .pipe(new ScriptedChatModel([{ content: 'Agent governance bounds what an agent may spend and do.', tokens: [14, 11] }]))
  .pipe(new StringOutputParser());
const explained = await orch.run({ agent: fromRunnable(chain, { name: 'explainer' }), task: { topic: 'agent governance' } });
console.log(`chain: ${explained.status}, ${explained.tokenUsage.total} tokens:`, explained.finalOutput);

// 2. A tool-calling loop: model -> tool calls -> tool results -> model. Each model turn is one step.
const researcher = fromChatModel(
  new ScriptedChatModel([
    { toolCalls: [{ name: 'search', args: { q: 'what is OAO' } }], tokens: [120, 18] },
    { content: 'OAO is a control plane that governs AI agents.', tokens: [190, 12] },
  ]),
  { name: 'researcher', tools: [search, shell], systemPrompt: 'Answer in one sentence.' },
);
const answered = await orch.run({ agent: researcher, tools: researcher.tools, task: 'What is OAO?' });
console.log(
  `researcher: ${answered.status}, ${answered.totalSteps} steps, ${answered.tokenUsage.total} tokens, tools ${JSON.stringify(answered.toolUsage.byTool)}`,
);
console.log('answer:', answered.finalOutput);

// 3. The model reaches for a denied tool: its body never runs, and the run says why it stopped.
const rogue = fromChatModel(new ScriptedChatModel([{ toolCalls: [{ name: 'shell', args: { cmd: 'rm -rf /tmp/cache' } }], tokens: [80, 9] }]), {
  name: 'rogue',
  tools: [search, shell],
});
const denied = await orch.run({ agent: rogue, tools: rogue.tools, task: 'Free some disk space' });
console.log(`rogue: ${denied.status}, ${denied.termination.reason} (${denied.termination.rule}), shell ran ${shellRuns} times`);
